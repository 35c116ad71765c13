// NnOps on the GPU: one launcher per call (the checks are NnOps's own, host/nn/nn_ops.cpp), all
// on the device's stream. No call synchronises.
#include <memory>

#include "batchpole/nn/nn_ops.hpp"
#include "cuda_check.cuh"
#include "cuda_ops.cuh"
#include "nn_launch.cuh"

namespace batchpole {

namespace {

class CudaNnOps final : public NnOps {
 public:
  CudaNnOps(Device& device, cudaStream_t stream)
      : NnOps(device),
        stream_(stream),
        scratch_(static_cast<unsigned long long*>(device.allocate(sizeof(unsigned long long)))) {}
  CudaNnOps(const CudaNnOps&) = delete;
  CudaNnOps& operator=(const CudaNnOps&) = delete;
  ~CudaNnOps() override { device().deallocate(scratch_); }

  [[nodiscard]] std::string description() const override { return "cuda kernels"; }

 protected:
  void do_fill(float* x, int64_t n, float value) override {
    cuda::launch_fill(stream_, x, n, value);
  }
  void do_init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block) override {
    cuda::launch_init_uniform(stream_, x, n, bound, seed, block);
  }
  void do_bias_activation(float* y, const float* bias, int64_t rows, int64_t cols,
                          Activation act) override {
    cuda::launch_bias_activation(stream_, y, bias, rows, cols, act);
  }
  void do_activation_backward(float* dy, const float* y, int64_t n, Activation act) override {
    cuda::launch_activation_backward(stream_, dy, y, n, act);
  }
  void do_sample_actions(const float* logits, int64_t rows, int32_t num_actions,
                         const SampleKey& key, int32_t* actions, float* log_prob,
                         float* entropy) override {
    cuda::launch_sample_actions(stream_, logits, rows, num_actions, key, actions, log_prob,
                                entropy);
  }
  void do_log_prob_entropy(const float* logits, int64_t rows, int32_t num_actions,
                           const int32_t* actions, float* log_prob, float* entropy) override {
    cuda::launch_log_prob_entropy(stream_, logits, rows, num_actions, actions, log_prob, entropy);
  }
  void do_softmax(const float* logits, int64_t rows, int32_t num_actions, float* probs) override {
    cuda::launch_softmax(stream_, logits, rows, num_actions, probs);
  }
  void do_policy_loss_grad(const PolicyLossArgs& args) override {
    cuda::launch_policy_loss_grad(stream_, args);
  }
  void do_value_loss_grad(const ValueLossArgs& args) override {
    cuda::launch_value_loss_grad(stream_, args);
  }
  void do_sample_gaussian(const float* head, int64_t rows, int32_t action_dim, const SampleKey& key,
                          float* actions, float* log_prob, float* entropy) override {
    cuda::launch_sample_gaussian(stream_, head, rows, action_dim, key, actions, log_prob, entropy);
  }
  void do_gaussian_log_prob_entropy(const float* head, int64_t rows, int32_t action_dim,
                                    const float* actions, float* log_prob,
                                    float* entropy) override {
    cuda::launch_gaussian_log_prob_entropy(stream_, head, rows, action_dim, actions, log_prob,
                                           entropy);
  }
  void do_gaussian_loss_grad(const GaussianLossArgs& args) override {
    cuda::launch_gaussian_loss_grad(stream_, args);
  }
  void do_epsilon_greedy(const float* q, int64_t rows, int32_t num_actions, const SampleKey& key,
                         float epsilon, int32_t* actions) override {
    cuda::launch_epsilon_greedy(stream_, q, rows, num_actions, key, epsilon, actions);
  }
  void do_q_loss_grad(const QLossArgs& args) override { cuda::launch_q_loss_grad(stream_, args); }
  void do_count_nonzero(const uint8_t* mask, int64_t n, float* out) override {
    cuda::launch_count_nonzero(stream_, mask, n, out, scratch_);
  }
  void do_adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                    const AdamScalars& s, const float* grad_norm, float max_grad_norm) override {
    cuda::launch_adam_step(stream_, params, grads, m, v, n, s, grad_norm, max_grad_norm);
  }

 private:
  cudaStream_t stream_;
  unsigned long long* scratch_;  // count_nonzero's counter
};

}  // namespace

}  // namespace batchpole

namespace batchpole::cuda {

std::unique_ptr<NnOps> make_nn_ops(Device& device, cudaStream_t stream) {
  return std::make_unique<CudaNnOps>(device, stream);
}

}  // namespace batchpole::cuda
