// The CPU device: aligned host memory, OpenMP tasks, and the four sets of operations as loops
// over the element functions that the CUDA kernels also call.
#pragma once

#include <memory>

#include "batchpole/device/device.hpp"

namespace batchpole {

class CpuDevice final : public Device {
 public:
  // plan: nullptr for the CPU's own.
  explicit CpuDevice(int threads, const DevicePlan* plan = nullptr);
  ~CpuDevice() override;

  [[nodiscard]] DeviceKind kind() const override { return DeviceKind::kCpu; }
  [[nodiscard]] std::string description() const override;
  [[nodiscard]] int threads() const override { return threads_; }
  [[nodiscard]] std::size_t available_memory() const override;
  void run_tasks(int64_t tasks, const std::function<void(int64_t, int)>& body) override;
  [[nodiscard]] void* native_stream() const override { return nullptr; }

 protected:
  void* do_allocate(std::size_t bytes) override;
  void do_deallocate(void* ptr) noexcept override;
  void do_copy_to_host(void* dst, const void* src, std::size_t bytes) override;
  void do_copy_from_host(void* dst, const void* src, std::size_t bytes) override;
  void do_copy_on_device(void* dst, const void* src, std::size_t bytes) override;
  void do_copy_rows_on_device(void* dst, std::size_t dst_pitch, const void* src,
                              std::size_t src_pitch, std::size_t width, std::size_t rows) override;
  void do_fill_zero(void* ptr, std::size_t bytes) override;
  void do_synchronize() override {}
  void do_check_errors() override {}

 private:
  int threads_;
};

// The CPU operations (host/cpu/cpu_*.cpp).
std::unique_ptr<Blas> make_cpu_blas(Device& device);
// The L2 norm of n contiguous floats, exactly as the CPU's Blas::nrm2 computes it (not counted:
// for operations that take norms inside themselves).
float cpu_nrm2(int n, const float* x);
std::unique_ptr<NnOps> make_cpu_nn_ops(Device& device);
std::unique_ptr<RlOps> make_cpu_rl_ops(Device& device);
std::unique_ptr<EnvOps> make_cpu_env_ops(Device& device);

// Physical memory the kernel reports as available (MemAvailable), in bytes.
std::size_t host_available_memory();

}  // namespace batchpole
