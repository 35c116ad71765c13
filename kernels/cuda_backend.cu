// The CUDA implementation of Backend: one device, one stream, device-resident buffers. Each
// operation is a launcher call; no per-step host synchronisation.
#include <cuda_runtime.h>

#include <climits>
#include <memory>
#include <string>

#include "../host/cuda_entry.hpp"
#include "cuda_check.cuh"
#include "env_step.cuh"

namespace batchpole {

bool cuda_compiled() { return true; }

int cuda_device_count() {
  // Without a driver this returns cudaErrorInsufficientDriver and leaves count untouched.
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error so later calls start clean
    return 0;
  }
  return count;
}

std::string cuda_device_name(int index) {
  if (index < 0 || index >= cuda_device_count()) return "";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) return "";
  return prop.name;
}

namespace {

constexpr unsigned long long kNoBadAction = ULLONG_MAX;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const BackendOptions& options) : device_(options.cuda_device) {
    const int count = cuda_device_count();
    BP_REQUIRE(count > 0, kUnavailable,
               "CUDA was asked for, but no usable GPU was found (no device or no driver)");
    BP_REQUIRE(device_ >= 0 && device_ < count, kUnavailable,
               "GPU " << device_ << " was asked for, but only " << count << " found");
    BP_CUDA_CHECK(cudaSetDevice(device_));
    BP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    BP_CUDA_CHECK(cudaMalloc(&counters_, 2 * sizeof(unsigned long long)));
    reset_counters();
    name_ = cuda_device_name(device_);
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;
  ~CudaBackend() override {
    BP_CUDA_LOG(cudaFree(counters_));
    BP_CUDA_LOG(cudaStreamDestroy(stream_));
  }

  [[nodiscard]] DeviceKind kind() const override { return DeviceKind::kCuda; }
  [[nodiscard]] std::string description() const override {
    return "cuda:" + std::to_string(device_) + " (" + name_ + ")";
  }
  [[nodiscard]] int threads() const override { return 1; }
  [[nodiscard]] std::size_t available_memory() const override {
    std::size_t free_bytes = 0;
    std::size_t total = 0;
    BP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
    return free_bytes;
  }

  void* allocate(std::size_t bytes) override {
    void* ptr = nullptr;
    const cudaError_t err = cudaMalloc(&ptr, bytes);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      BP_REQUIRE(false, kOutOfMemory,
                 "cannot allocate " << bytes << " bytes on " << description() << ": "
                                    << cudaGetErrorString(err));
    }
    return ptr;
  }
  void deallocate(void* ptr) noexcept override { BP_CUDA_LOG(cudaFree(ptr)); }
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override {
    BP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    synchronize();
  }
  void copy_from_host(void* dst, const void* src, std::size_t bytes) override {
    // Synchronous so that the caller's host memory may be reused at once.
    BP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    BP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void copy_on_device(void* dst, const void* src, std::size_t bytes) override {
    BP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void fill_zero(void* ptr, std::size_t bytes) override {
    BP_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, stream_));
  }
  void synchronize() override {
    BP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    check_errors();
  }
  [[nodiscard]] void* native_stream() const override { return stream_; }

  void env_reset(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n) override {
    cuda::launch_env_reset(stream_, c, a, n);
  }
  void env_reset(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n) override {
    cuda::launch_env_reset(stream_, c, a, n);
  }
  void env_restart(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n) override {
    cuda::launch_env_restart(stream_, c, a, n);
  }
  void env_restart(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n) override {
    cuda::launch_env_restart(stream_, c, a, n);
  }
  void env_step(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                const int32_t* actions) override {
    cuda::launch_env_step(stream_, c, a, n, actions, bad_action());
  }
  void env_step(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                const int32_t* actions) override {
    cuda::launch_env_step(stream_, c, a, n, actions, bad_action());
  }
  uint64_t env_run_random(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                          uint64_t first_step, int32_t steps) override {
    return run_random(c, a, n, first_step, steps);
  }
  uint64_t env_run_random(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                          uint64_t first_step, int32_t steps) override {
    return run_random(c, a, n, first_step, steps);
  }
  void bench_actions(uint64_t seed, uint64_t step, int64_t n, int32_t* out) override {
    cuda::launch_bench_actions(stream_, seed, step, n, out);
  }

  void check_errors() override {
    unsigned long long bad = kNoBadAction;
    BP_CUDA_CHECK(cudaMemcpyAsync(&bad, bad_action(), sizeof(bad), cudaMemcpyDeviceToHost,
                                  stream_));
    BP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (bad == kNoBadAction) return;
    reset_counters();
    BP_CHECK_ARG(false, "invalid action " << static_cast<int32_t>(bad & 0xFFFFFFFFULL)
                                          << " for env " << (bad >> 32U)
                                          << " (CartPole actions are 0 and 1; the GPU stepped "
                                             "it as action 0)");
  }

 private:
  unsigned long long* bad_action() { return counters_; }
  unsigned long long* episodes_ended() { return counters_ + 1; }

  void reset_counters() {
    const unsigned long long init[2] = {kNoBadAction, 0ULL};
    BP_CUDA_CHECK(cudaMemcpyAsync(counters_, init, sizeof(init), cudaMemcpyHostToDevice, stream_));
    BP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  template <class Real>
  uint64_t run_random(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n,
                      uint64_t first_step, int32_t steps) {
    BP_CUDA_CHECK(cudaMemsetAsync(episodes_ended(), 0, sizeof(unsigned long long), stream_));
    cuda::launch_env_run_random(stream_, c, a, n, first_step, steps, episodes_ended());
    unsigned long long ended = 0;
    BP_CUDA_CHECK(cudaMemcpyAsync(&ended, episodes_ended(), sizeof(ended),
                                  cudaMemcpyDeviceToHost, stream_));
    synchronize();
    return ended;
  }

  int device_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  unsigned long long* counters_ = nullptr;  // [bad action, episodes ended]
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options) {
  return std::make_unique<CudaBackend>(options);
}

}  // namespace batchpole
