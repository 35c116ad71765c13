// NnOps on the GPU: argument checks (shared with the CPU), then one launcher per call, all on
// the backend's stream. No call synchronises.
#include <memory>

#include "../host/nn_impl.hpp"
#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole {

namespace {

class CudaNnOps final : public NnOps {
 public:
  // (Buffer<T> is C++20, these files C++17: the counter is allocated directly.)
  explicit CudaNnOps(Backend& backend)
      : backend_(&backend),
        stream_(static_cast<cudaStream_t>(backend.native_stream())),
        scratch_(static_cast<unsigned long long*>(backend.allocate(sizeof(unsigned long long)))) {}
  CudaNnOps(const CudaNnOps&) = delete;
  CudaNnOps& operator=(const CudaNnOps&) = delete;
  ~CudaNnOps() override { backend_->deallocate(scratch_); }

  [[nodiscard]] std::string description() const override { return "cuda kernels"; }

  void fill(float* x, int64_t n, float value) override {
    nn_check::rows("fill", n);
    cuda::launch_fill(stream_, x, n, value);
  }
  void init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block) override {
    nn_check::rows("init_uniform", n);
    cuda::launch_init_uniform(stream_, x, n, bound, seed, block);
  }
  void bias_activation(float* y, const float* bias, int64_t rows, int64_t cols,
                       Activation act) override {
    nn_check::rows("bias_activation", rows);
    cuda::launch_bias_activation(stream_, y, bias, rows, cols, act);
  }
  void activation_backward(float* dy, const float* y, int64_t n, Activation act) override {
    nn_check::rows("activation_backward", n);
    cuda::launch_activation_backward(stream_, dy, y, n, act);
  }
  void sample_actions(const float* logits, int64_t rows, int32_t num_actions, const SampleKey& key,
                      int32_t* actions, float* log_prob, float* entropy) override {
    nn_check::rows("sample_actions", rows);
    nn_check::actions("sample_actions", num_actions);
    cuda::launch_sample_actions(stream_, logits, rows, num_actions, key, actions, log_prob,
                                entropy);
  }
  void log_prob_entropy(const float* logits, int64_t rows, int32_t num_actions,
                        const int32_t* actions, float* log_prob, float* entropy) override {
    nn_check::rows("log_prob_entropy", rows);
    nn_check::actions("log_prob_entropy", num_actions);
    cuda::launch_log_prob_entropy(stream_, logits, rows, num_actions, actions, log_prob, entropy);
  }
  void softmax(const float* logits, int64_t rows, int32_t num_actions, float* probs) override {
    nn_check::rows("softmax", rows);
    nn_check::actions("softmax", num_actions);
    cuda::launch_softmax(stream_, logits, rows, num_actions, probs);
  }
  void policy_loss_grad(const PolicyLossArgs& args) override {
    nn_check::policy_loss(args);
    cuda::launch_policy_loss_grad(stream_, args);
  }
  void value_loss_grad(const ValueLossArgs& args) override {
    nn_check::value_loss(args);
    cuda::launch_value_loss_grad(stream_, args);
  }
  void count_nonzero(const uint8_t* mask, int64_t n, float* out) override {
    nn_check::rows("count_nonzero", n);
    cuda::launch_count_nonzero(stream_, mask, n, out, scratch_);
  }
  void adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                 const AdamScalars& s, const float* grad_norm, float max_grad_norm) override {
    nn_check::rows("adam_step", n);
    cuda::launch_adam_step(stream_, params, grads, m, v, n, s, grad_norm, max_grad_norm);
  }

 private:
  Backend* backend_;
  cudaStream_t stream_;
  unsigned long long* scratch_;  // count_nonzero's counter
};

}  // namespace

std::unique_ptr<NnOps> make_cuda_nn_ops(Backend& backend) {
  return std::make_unique<CudaNnOps>(backend);
}

}  // namespace batchpole
