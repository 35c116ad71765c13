// NnOps on the GPU: one launcher per call (the checks are NnOps's own, host/nn/nn_ops.cpp), all
// on the device's stream. No call synchronises.
#include <memory>
#include <vector>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "cuda_check.cuh"
#include "cuda_ops.cuh"
#include "nn_launch.cuh"

namespace batchpole {

namespace {

class CudaNnOps final : public NnOps {
 public:
  CudaNnOps(Device& device, cudaStream_t stream) : NnOps(device), stream_(stream) {}

  [[nodiscard]] std::string description() const override { return "cuda kernels"; }

 protected:
  void do_fill(float* x, int64_t n, float value, int64_t agents, int64_t stride) override {
    cuda::launch_fill(stream_, x, n, value, agents, stride);
  }
  void do_init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block) override {
    cuda::launch_init_uniform(stream_, x, n, bound, seed, block);
  }
  void do_bias_activation(float* y, const float* bias, int64_t rows, int64_t cols, Activation act,
                          int64_t rows_per_agent, int64_t bias_stride) override {
    cuda::launch_bias_activation(stream_, y, bias, rows, cols, act, rows_per_agent, bias_stride);
  }
  void do_activation_backward(float* dy, const float* y, int64_t n, Activation act) override {
    cuda::launch_activation_backward(stream_, dy, y, n, act);
  }
  void do_sample_actions(const float* logits, int64_t rows, int32_t num_actions,
                         const SampleKey& key, int32_t* actions, float* log_prob, float* entropy,
                         const AgentRows& out) override {
    cuda::launch_sample_actions(stream_, logits, rows, num_actions, key, actions, log_prob, entropy,
                                out);
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
                          float* actions, float* log_prob, float* entropy,
                          const AgentRows& out) override {
    cuda::launch_sample_gaussian(stream_, head, rows, action_dim, key, actions, log_prob, entropy,
                                 out);
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
                         float epsilon, int32_t* actions, const AgentRows& out,
                         const float* epsilons) override {
    cuda::launch_epsilon_greedy(stream_, q, rows, num_actions, key, epsilon, actions, out,
                                epsilons);
  }
  void do_q_loss_grad(const QLossArgs& args) override { cuda::launch_q_loss_grad(stream_, args); }
  void do_count_nonzero(const uint8_t* mask, int64_t n, float* out, int64_t agents,
                        int64_t stride) override {
    cuda::launch_count_nonzero(stream_, mask, n, out, agents, stride, counters(agents));
  }
  void do_norms(const float* x, int64_t n, int64_t agents, int64_t stride, float* out,
                int64_t out_stride) override {
    cuda::launch_norms(stream_, x, n, agents, stride, out, out_stride);
  }
  void do_adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                    const AdamScalars& s, const float* grad_norm, float max_grad_norm,
                    const AdamAgents& agents) override {
    cuda::launch_adam_step(stream_, params, grads, m, v, n, s, grad_norm, max_grad_norm, agents);
  }

 private:
  // count_nonzero's counters, one per agent (grown, never shrunk, and what it outgrew kept: a
  // recorded update's graph may still name it).
  unsigned long long* counters(int64_t agents) {
    const auto need = static_cast<std::size_t>(agents);
    if (scratch_.size() < need) {
      outgrown_.push_back(std::move(scratch_));
      scratch_ = Buffer<unsigned long long>(device(), need);
    }
    return scratch_.data();
  }

  cudaStream_t stream_;
  Buffer<unsigned long long> scratch_;
  std::vector<Buffer<unsigned long long>> outgrown_;
};

}  // namespace

}  // namespace batchpole

namespace batchpole::cuda {

std::unique_ptr<NnOps> make_nn_ops(Device& device, cudaStream_t stream) {
  return std::make_unique<CudaNnOps>(device, stream);
}

}  // namespace batchpole::cuda
