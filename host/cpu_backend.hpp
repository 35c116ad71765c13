// The CPU implementation of Backend: aligned host memory and OpenMP loops over the element
// functions that the CUDA kernels also call.
#pragma once

#include "batchpole/backend.hpp"

namespace batchpole {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads);

  [[nodiscard]] DeviceKind kind() const override { return DeviceKind::kCpu; }
  [[nodiscard]] std::string description() const override;
  [[nodiscard]] int threads() const override { return threads_; }
  [[nodiscard]] std::size_t available_memory() const override;

  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr) noexcept override;
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override;
  void copy_from_host(void* dst, const void* src, std::size_t bytes) override;
  void copy_on_device(void* dst, const void* src, std::size_t bytes) override;
  void fill_zero(void* ptr, std::size_t bytes) override;
  void synchronize() override {}
  void run_tasks(int64_t tasks, const std::function<void(int64_t, int)>& body) override;
  [[nodiscard]] void* native_stream() const override { return nullptr; }

  void env_reset(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n) override;
  void env_reset(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n) override;
  void env_restart(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n) override;
  void env_restart(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n) override;
  void env_step(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                const int32_t* actions) override;
  void env_step(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                const int32_t* actions) override;
  uint64_t env_run_random(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                          uint64_t first_step, int32_t steps) override;
  uint64_t env_run_random(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                          uint64_t first_step, int32_t steps) override;
  void bench_actions(uint64_t seed, uint64_t step, int64_t n, int32_t* out) override;
  void check_errors() override {}

 private:
  int threads_;
};

// Physical memory the kernel reports as available (MemAvailable), in bytes.
std::size_t host_available_memory();

}  // namespace batchpole
