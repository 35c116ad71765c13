// The device-agnostic layer: a Backend owns a device's memory and stream and runs the batched
// operations. CpuBackend (host/) and CudaBackend (kernels/) implement it; everything above
// (VecEnv, networks, trainers) is written once against this interface and never branches on the
// device. No CUDA type appears here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "batchpole/env_kernels.hpp"

namespace batchpole {

enum class DeviceKind : uint8_t { kCpu, kCuda };

// "cpu", "cuda" or "auto" (the GPU when one is usable, else the CPU).
struct DeviceRequest {
  enum class Choice : uint8_t { kAuto, kCpu, kCuda } choice = Choice::kAuto;
  static DeviceRequest parse(const std::string& s);  // throws Error(kInvalidArgument)
};

std::string to_string(DeviceKind kind);

// Whether this build carries the CUDA path, and how many GPUs the driver reports (0 without a
// driver or without CUDA support; never throws).
bool cuda_compiled();
int cuda_device_count();
std::string cuda_device_name(int index);  // "" when unavailable

struct BackendOptions {
  DeviceRequest device;
  int threads = 0;      // CPU worker threads; 0 = all hardware threads
  int cuda_device = 0;  // GPU ordinal
  bool allow_tf32 = false;  // cuBLAS math mode; plain FP32 unless asked
};

class Backend {
 public:
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;
  virtual ~Backend() = default;

  [[nodiscard]] virtual DeviceKind kind() const = 0;
  [[nodiscard]] virtual std::string description() const = 0;  // e.g. "cpu (2 threads)"
  [[nodiscard]] virtual int threads() const = 0;               // CPU threads; 1 on the GPU
  // Bytes that can still be allocated on this device (an estimate, read now).
  [[nodiscard]] virtual std::size_t available_memory() const = 0;

  // Memory. allocate() throws Error(kOutOfMemory) naming the size; deallocate never throws.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr) noexcept = 0;
  virtual void copy_to_host(void* dst, const void* src, std::size_t bytes) = 0;  // synchronises
  virtual void copy_from_host(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy_on_device(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void fill_zero(void* ptr, std::size_t bytes) = 0;
  virtual void synchronize() = 0;
  // Runs body(task, worker) for every task in [0, tasks). On the CPU the tasks run on up to
  // threads() OpenMP threads (worker = the thread's index, so a caller can give each worker its
  // own scratch); on the GPU they run in order on the calling thread (worker 0), each task
  // enqueuing its work on the stream. Which worker runs a task is not fixed, so results must
  // not depend on it. The first exception a task throws is rethrown here after all have ended.
  virtual void run_tasks(int64_t tasks, const std::function<void(int64_t task, int worker)>& body);
  // The device stream as an opaque handle (a cudaStream_t on the GPU, nullptr on the CPU), for
  // the layers that bind their own library handles to it (cuBLAS).
  [[nodiscard]] virtual void* native_stream() const = 0;

  // Environment operations over envs [0, n) (element logic in env_kernels.hpp).
  virtual void env_reset(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n) = 0;
  virtual void env_reset(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n) = 0;
  // env_restart_episode over envs [0, n).
  virtual void env_restart(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n) = 0;
  virtual void env_restart(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n) = 0;
  // Actions must be 0 or 1. The CPU checks before stepping and throws; the GPU steps (treating
  // anything but 1 as 0, as Gymnasium's `action == 1` does) and raises the error at the next
  // synchronising call (check_errors, copy_to_host).
  virtual void env_step(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                        const int32_t* actions) = 0;
  virtual void env_step(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                        const int32_t* actions) = 0;
  // `steps` steps with the benchmark's random actions, state kept close to the core; returns
  // the number of episodes that ended.
  virtual uint64_t env_run_random(const EnvConfig<float>& c, const EnvArrays<float>& a,
                                  int64_t n, uint64_t first_step, int32_t steps) = 0;
  virtual uint64_t env_run_random(const EnvConfig<double>& c, const EnvArrays<double>& a,
                                  int64_t n, uint64_t first_step, int32_t steps) = 0;
  // out[i] = bench_action(seed, i, step).
  virtual void bench_actions(uint64_t seed, uint64_t step, int64_t n, int32_t* out) = 0;
  // Throws a pending asynchronous error (the GPU's invalid-action report), if any.
  virtual void check_errors() = 0;
};

// Throws Error(kUnavailable) when CUDA is asked for and not usable, with the reason.
std::unique_ptr<Backend> make_backend(const BackendOptions& options = {});

}  // namespace batchpole
