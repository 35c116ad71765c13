// The batched element operations of the networks, heads, losses and optimiser: one call runs
// one element function of nn_kernels.hpp over a whole batch, on the backend's device and
// stream (asynchronous on the GPU). Everything above (Mlp, the policy and value models, the
// trainers) is written once against this and Blas, and never branches on the device.
//
// Pointers are device pointers of the backend the ops were made for. Scalars that the GPU
// produces and consumes (the loss divisor, gradient norms) stay in device memory as `const
// float*`, so no call here synchronises with the host.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "batchpole/backend.hpp"
#include "batchpole/nn_kernels.hpp"

namespace batchpole {

// Where the action of row i is drawn from: philox_draw(seed, kPolicyAction, first_env + i,
// step). Trainers pass their step counter so that every step draws afresh.
struct SampleKey {
  uint64_t seed = 0;
  uint64_t step = 0;
  uint32_t first_env = 0;
};

struct PolicyLossArgs {
  const float* logits = nullptr;  // rows x num_actions
  int64_t rows = 0;
  int32_t num_actions = 0;
  const int32_t* actions = nullptr;  // rows, each in [0, num_actions)
  const float* weights = nullptr;    // rows: returns or advantages
  const uint8_t* mask = nullptr;     // rows, nonzero = valid; nullptr: all valid
  const float* count = nullptr;      // device scalar C, the loss's divisor
  float entropy_coef = 0.0f;
  float* d_logits = nullptr;  // rows x num_actions, overwritten
  float* stats = nullptr;     // rows x kStatColumns or nullptr
};

struct ValueLossArgs {
  const float* values = nullptr;   // rows
  const float* targets = nullptr;  // rows
  const uint8_t* mask = nullptr;   // rows or nullptr
  int64_t rows = 0;
  const float* count = nullptr;  // device scalar C
  float value_coef = 1.0f;
  float* d_values = nullptr;  // rows, overwritten
  float* stats = nullptr;     // rows x kStatColumns or nullptr
};

class NnOps {
 public:
  NnOps() = default;
  NnOps(const NnOps&) = delete;
  NnOps& operator=(const NnOps&) = delete;
  virtual ~NnOps() = default;

  [[nodiscard]] virtual std::string description() const = 0;

  virtual void fill(float* x, int64_t n, float value) = 0;
  // x[i] = init_uniform_value(seed, block, i, bound).
  virtual void init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block) = 0;
  // y (rows x cols, row-major) = act(y + bias) with bias broadcast over rows.
  virtual void bias_activation(float* y, const float* bias, int64_t rows, int64_t cols,
                               Activation act) = 0;
  // dy *= act'(.) written from the activation's output y; n elements.
  virtual void activation_backward(float* dy, const float* y, int64_t n, Activation act) = 0;
  // Samples one action per row into `actions`; log_prob and entropy (rows each) where not null.
  virtual void sample_actions(const float* logits, int64_t rows, int32_t num_actions,
                              const SampleKey& key, int32_t* actions, float* log_prob,
                              float* entropy) = 0;
  // log pi(actions[i]) and/or the entropy of each row (either output may be null).
  virtual void log_prob_entropy(const float* logits, int64_t rows, int32_t num_actions,
                                const int32_t* actions, float* log_prob, float* entropy) = 0;
  // rows x num_actions probabilities.
  virtual void softmax(const float* logits, int64_t rows, int32_t num_actions, float* probs) = 0;
  virtual void policy_loss_grad(const PolicyLossArgs& args) = 0;
  virtual void value_loss_grad(const ValueLossArgs& args) = 0;
  // *out = number of nonzero bytes in mask[0, n), as a float.
  virtual void count_nonzero(const uint8_t* mask, int64_t n, float* out) = 0;
  // One Adam step over n parameters. The gradient used is grads[i] * clip_scale(*grad_norm,
  // max_grad_norm); grad_norm may be null (no clipping).
  virtual void adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                         const AdamScalars& s, const float* grad_norm, float max_grad_norm) = 0;
};

// The CPU loops (vectorised, on the calling thread: see host/cpu_nn_ops.cpp) or the CUDA
// kernels on the backend's stream. Throws Error(kUnavailable) for a GPU backend in a build
// without CUDA.
std::unique_ptr<NnOps> make_nn_ops(Backend& backend);

}  // namespace batchpole
