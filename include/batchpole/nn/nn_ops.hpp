// The batched element operations of the networks, heads, losses and optimiser: one call runs
// one element function of nn_elements.hpp over a whole batch, on the device's stream
// (asynchronous on the GPU). Everything above (Mlp, the policy and value model, the trainers)
// is written once against this and Blas, and never branches on the device.
//
// The public calls check their arguments and count one stream operation, here (host/nn/
// nn_ops.cpp), for both implementations (host/cpu/cpu_nn_ops.cpp, kernels/cuda_nn_ops.cu).
// Pointers are device pointers of the device the ops belong to. Scalars that the GPU produces
// and consumes (the loss divisor, gradient norms) stay in device memory as `const float*`, so
// no call here synchronises with the host.
#pragma once

#include <cstdint>
#include <string>

#include "batchpole/device/device.hpp"
#include "batchpole/nn/nn_elements.hpp"

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
  // PPO: the log-probabilities of the policy that acted, and the clip range eps. With them the
  // loss is the clipped surrogate (clipped_policy_loss_row, kStatColumnsClipped columns of
  // statistics); without, the policy gradient with `weights` (policy_loss_row).
  const float* old_log_prob = nullptr;  // rows, or nullptr
  float clip = 0.2f;
  float* d_logits = nullptr;  // rows x num_actions, overwritten
  float* stats = nullptr;     // rows x stat_columns, or nullptr
  int32_t stat_columns = kStatColumns;
};

// The Gaussian head's loss (policy_loss_grad's twin for continuous actions): rows of 2 d head
// outputs (means, then log-stds), float actions.
struct GaussianLossArgs {
  const float* head = nullptr;  // rows x 2 action_dim
  int64_t rows = 0;
  int32_t action_dim = 1;
  const float* actions = nullptr;  // rows x action_dim
  const float* weights = nullptr;  // rows: returns or advantages
  const uint8_t* mask = nullptr;   // rows, nonzero = valid; nullptr: all valid
  const float* count = nullptr;    // device scalar C
  float entropy_coef = 0.0f;
  const float* old_log_prob = nullptr;  // PPO: the acting policy's; nullptr: policy gradient
  float clip = 0.2f;
  float* d_head = nullptr;  // rows x 2 action_dim, overwritten
  float* stats = nullptr;   // rows x stat_columns, or nullptr
  int32_t stat_columns = kStatColumns;
};

// DQN's loss: the Huber loss of Q(s, a) against fixed targets (q_loss_row).
struct QLossArgs {
  const float* q = nullptr;  // rows x num_actions
  int64_t rows = 0;
  int32_t num_actions = 0;
  const int32_t* actions = nullptr;  // rows
  const float* targets = nullptr;    // rows
  const uint8_t* mask = nullptr;     // rows or nullptr
  const float* count = nullptr;      // device scalar C
  float huber_delta = 1.0f;
  float* d_q = nullptr;    // rows x num_actions, overwritten
  float* stats = nullptr;  // rows x stat_columns, or nullptr
  int32_t stat_columns = kStatColumns;
};

struct ValueLossArgs {
  const float* values = nullptr;   // rows
  const float* targets = nullptr;  // rows
  const uint8_t* mask = nullptr;   // rows or nullptr
  int64_t rows = 0;
  const float* count = nullptr;  // device scalar C
  float value_coef = 1.0f;
  // PPO's clipped value loss: the values when the data was collected, and the clip range.
  const float* old_values = nullptr;  // rows, or nullptr (the plain squared error)
  float clip = 0.2f;
  float* d_values = nullptr;  // rows, overwritten
  float* stats = nullptr;     // rows x stat_columns, or nullptr
  int32_t stat_columns = kStatColumns;
};

class NnOps {
 public:
  explicit NnOps(Device& device) : device_(&device) {}
  NnOps(const NnOps&) = delete;
  NnOps& operator=(const NnOps&) = delete;
  virtual ~NnOps() = default;

  [[nodiscard]] virtual std::string description() const = 0;

  void fill(float* x, int64_t n, float value);
  // x[i] = init_uniform_value(seed, block, i, bound).
  void init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block);
  // y (rows x cols, row-major) = act(y + bias) with bias broadcast over rows.
  void bias_activation(float* y, const float* bias, int64_t rows, int64_t cols, Activation act);
  // dy *= act'(.) written from the activation's output y; n elements.
  void activation_backward(float* dy, const float* y, int64_t n, Activation act);
  // Samples one action per row into `actions`; log_prob and entropy (rows each) where not null.
  void sample_actions(const float* logits, int64_t rows, int32_t num_actions, const SampleKey& key,
                      int32_t* actions, float* log_prob, float* entropy);
  // log pi(actions[i]) and/or the entropy of each row (either output may be null).
  void log_prob_entropy(const float* logits, int64_t rows, int32_t num_actions,
                        const int32_t* actions, float* log_prob, float* entropy);
  // rows x num_actions probabilities.
  void softmax(const float* logits, int64_t rows, int32_t num_actions, float* probs);
  void policy_loss_grad(const PolicyLossArgs& args);
  // The Gaussian head: a[i] = mu + sigma * eps with eps from policy_normal(key.seed, first_env +
  // i, step, k), rows x action_dim; log_prob and entropy (rows each) where not null.
  void sample_gaussian(const float* head, int64_t rows, int32_t action_dim, const SampleKey& key,
                       float* actions, float* log_prob, float* entropy);
  // log pi(actions[i]) and/or the entropy of each row of the Gaussian head.
  void gaussian_log_prob_entropy(const float* head, int64_t rows, int32_t action_dim,
                                 const float* actions, float* log_prob, float* entropy);
  void gaussian_loss_grad(const GaussianLossArgs& args);
  // DQN: epsilon-greedy actions on rows of Q-values (epsilon_greedy_row, drawn from
  // (key.seed, kExplore, key.first_env + i, key.step)).
  void epsilon_greedy(const float* q, int64_t rows, int32_t num_actions, const SampleKey& key,
                      float epsilon, int32_t* actions);
  void q_loss_grad(const QLossArgs& args);
  void value_loss_grad(const ValueLossArgs& args);
  // *out = number of nonzero bytes in mask[0, n), as a float (exact up to 2^24), in device
  // memory.
  void count_nonzero(const uint8_t* mask, int64_t n, float* out);
  // One Adam step over n parameters. The gradient used is grads[i] * clip_scale(*grad_norm,
  // max_grad_norm); grad_norm may be null (no clipping).
  void adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                 const AdamScalars& s, const float* grad_norm, float max_grad_norm);

 protected:
  [[nodiscard]] Device& device() const { return *device_; }

  // Called with checked arguments and n, rows > 0.
  virtual void do_fill(float* x, int64_t n, float value) = 0;
  virtual void do_init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block) = 0;
  virtual void do_bias_activation(float* y, const float* bias, int64_t rows, int64_t cols,
                                  Activation act) = 0;
  virtual void do_activation_backward(float* dy, const float* y, int64_t n, Activation act) = 0;
  virtual void do_sample_actions(const float* logits, int64_t rows, int32_t num_actions,
                                 const SampleKey& key, int32_t* actions, float* log_prob,
                                 float* entropy) = 0;
  virtual void do_log_prob_entropy(const float* logits, int64_t rows, int32_t num_actions,
                                   const int32_t* actions, float* log_prob, float* entropy) = 0;
  virtual void do_softmax(const float* logits, int64_t rows, int32_t num_actions, float* probs) = 0;
  virtual void do_policy_loss_grad(const PolicyLossArgs& args) = 0;
  virtual void do_value_loss_grad(const ValueLossArgs& args) = 0;
  virtual void do_sample_gaussian(const float* head, int64_t rows, int32_t action_dim,
                                  const SampleKey& key, float* actions, float* log_prob,
                                  float* entropy) = 0;
  virtual void do_gaussian_log_prob_entropy(const float* head, int64_t rows, int32_t action_dim,
                                            const float* actions, float* log_prob,
                                            float* entropy) = 0;
  virtual void do_gaussian_loss_grad(const GaussianLossArgs& args) = 0;
  virtual void do_epsilon_greedy(const float* q, int64_t rows, int32_t num_actions,
                                 const SampleKey& key, float epsilon, int32_t* actions) = 0;
  virtual void do_q_loss_grad(const QLossArgs& args) = 0;
  // n may be 0 here (the count is then 0).
  virtual void do_count_nonzero(const uint8_t* mask, int64_t n, float* out) = 0;
  virtual void do_adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                            const AdamScalars& s, const float* grad_norm, float max_grad_norm) = 0;

 private:
  Device* device_;
};

}  // namespace batchpole
