// EnvOps on the GPU: the environment launchers (kernels/env_step.cu) on the device's stream.
#include <memory>

#include "batchpole/env/env_ops.hpp"
#include "cuda_check.cuh"
#include "cuda_ops.cuh"
#include "env_step.cuh"

namespace batchpole {

namespace {

class CudaEnvOps final : public EnvOps {
 public:
  CudaEnvOps(Device& device, cudaStream_t stream, unsigned long long* bad_action)
      : EnvOps(device),
        stream_(stream),
        bad_action_(bad_action),
        ended_(static_cast<unsigned long long*>(device.allocate(sizeof(unsigned long long)))) {}
  CudaEnvOps(const CudaEnvOps&) = delete;
  CudaEnvOps& operator=(const CudaEnvOps&) = delete;
  ~CudaEnvOps() override { device().deallocate(ended_); }

 protected:
  void do_reset(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n) override {
    cuda::launch_env_reset(stream_, c, a, n);
  }
  void do_reset(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n) override {
    cuda::launch_env_reset(stream_, c, a, n);
  }
  void do_restart(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n) override {
    cuda::launch_env_restart(stream_, c, a, n);
  }
  void do_restart(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n) override {
    cuda::launch_env_restart(stream_, c, a, n);
  }
  void do_next_episode(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                       const uint8_t* mask) override {
    cuda::launch_env_next_episode(stream_, c, a, n, mask);
  }
  void do_next_episode(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                       const uint8_t* mask) override {
    cuda::launch_env_next_episode(stream_, c, a, n, mask);
  }
  void do_step(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
               const int32_t* actions) override {
    cuda::launch_env_step(stream_, c, a, n, actions, bad_action_);
  }
  void do_step(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
               const int32_t* actions) override {
    cuda::launch_env_step(stream_, c, a, n, actions, bad_action_);
  }
  void do_step_continuous(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                          const float* actions) override {
    cuda::launch_env_step_continuous(stream_, c, a, n, actions);
  }
  void do_step_continuous(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                          const float* actions) override {
    cuda::launch_env_step_continuous(stream_, c, a, n, actions);
  }
  uint64_t do_run_random(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                         uint64_t first_step, int32_t steps) override {
    return run_random(c, a, n, first_step, steps);
  }
  uint64_t do_run_random(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                         uint64_t first_step, int32_t steps) override {
    return run_random(c, a, n, first_step, steps);
  }
  void do_bench_actions(uint64_t seed, uint64_t step, int64_t n, int32_t* out) override {
    cuda::launch_bench_actions(stream_, seed, step, n, out);
  }

 private:
  template <class Real>
  uint64_t run_random(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n,
                      uint64_t first_step, int32_t steps) {
    BP_CUDA_CHECK(cudaMemsetAsync(ended_, 0, sizeof(unsigned long long), stream_));
    cuda::launch_env_run_random(stream_, c, a, n, first_step, steps, ended_);
    unsigned long long ended = 0;
    BP_CUDA_CHECK(cudaMemcpyAsync(&ended, ended_, sizeof(ended), cudaMemcpyDeviceToHost, stream_));
    BP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return ended;
  }

  cudaStream_t stream_;
  unsigned long long* bad_action_;
  unsigned long long* ended_;  // run_random's episode counter
};

}  // namespace

}  // namespace batchpole

namespace batchpole::cuda {

std::unique_ptr<EnvOps> make_env_ops(Device& device, cudaStream_t stream,
                                     unsigned long long* bad_action) {
  return std::make_unique<CudaEnvOps>(device, stream, bad_action);
}

}  // namespace batchpole::cuda
