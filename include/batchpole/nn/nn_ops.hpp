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

#include "batchpole/core/agents.hpp"
#include "batchpole/device/device.hpp"
#include "batchpole/nn/nn_elements.hpp"

namespace batchpole {

// Where the action of row i is drawn from: philox_draw(seed, kPolicyAction, first_env + i,
// step). Trainers pass their step counter so that every step draws afresh. A population's
// agents each draw with their own seed and step counter: agent k's row i (numbered from
// first_env within the agent) draws with seeds[k] at step steps[k] + step (device arrays).
struct SampleKey {
  uint64_t seed = 0;
  uint64_t step = 0;
  uint32_t first_env = 0;
  // Data-parallel parts as agents (> 0: each part's envs): agent k's row draws as the batch's
  // env first_env + k * agent_envs + local, so that the key is the global env index.
  uint32_t agent_envs = 0;
  const uint64_t* seeds = nullptr;  // agents > 1: per agent
  // agents > 1: per agent; one agent: nullptr, or its step in device memory (added to `step`),
  // so that acting makes the same operation every update (run_recorded).
  const uint64_t* steps = nullptr;
};

// The keys of row i's draws in a sampling call laid out as `out`: its agent's seed, its env
// index within the agent (data-parallel parts: within the whole batch) and its step. Every head
// (categorical, Gaussian, epsilon-greedy) draws from these, each from its own stream.
struct SampleSite {
  uint64_t seed;
  uint32_t env;
  uint64_t step;
};

BP_HD SampleSite sample_site(const SampleKey& key, const AgentRows& out, int64_t i) {
  if (out.agents <= 1) {
    return {key.seed, key.first_env + static_cast<uint32_t>(i),
            key.steps != nullptr ? key.steps[0] + key.step : key.step};
  }
  const int64_t k = out.agent(i);
  const auto local = static_cast<uint32_t>(i - k * out.rows);
  const uint32_t env = key.first_env + static_cast<uint32_t>(k) * key.agent_envs + local;
  return {key.seeds[k], env, key.steps[k] + key.step};
}

// The uniform behind row i's action in a sampling call laid out as `out`.
BP_HD float sample_uniform(const SampleKey& key, const AgentRows& out, int64_t i) {
  const SampleSite s = sample_site(key, out, i);
  return policy_uniform(s.seed, s.env, s.step);
}

// A population's Adam step: `agents` segments of n parameters, `stride` floats apart in params
// and grads and `state_stride` apart in m and v (0: stride). Agent k steps with scalars[k] (device
// memory; nullptr: the call's scalars for every agent) and grad_norm[k * norm_stride], and only
// where active[k] is set (device memory; nullptr: every agent steps).
struct AdamAgents {
  int64_t agents = 1;
  int64_t stride = 0;
  int64_t state_stride = 0;
  int64_t norm_stride = 1;
  const AdamScalars* scalars = nullptr;
  const uint8_t* active = nullptr;
};

// A population's call covers in.agents agents of in.rows rows (rows = agents x in.rows): the
// per-row inputs (actions, weights, mask, old log-probabilities) are laid out as `in` says, the
// logits and outputs packed agent after agent, and `count` holds one divisor per agent.
struct PolicyLossArgs {
  const float* logits = nullptr;  // rows x num_actions
  int64_t rows = 0;
  int32_t num_actions = 0;
  const int32_t* actions = nullptr;  // rows, each in [0, num_actions)
  const float* weights = nullptr;    // rows: returns or advantages
  const uint8_t* mask = nullptr;     // rows, nonzero = valid; nullptr: all valid
  const float* count = nullptr;      // device scalar C, the loss's divisor (per agent)
  AgentRows in;
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
// outputs (means, then log-stds), float actions. A population as PolicyLossArgs: the per-row
// inputs laid out as `in`, the head and outputs packed, one divisor per agent.
struct GaussianLossArgs {
  const float* head = nullptr;  // rows x 2 action_dim
  int64_t rows = 0;
  int32_t action_dim = 1;
  const float* actions = nullptr;  // rows x action_dim
  const float* weights = nullptr;  // rows: returns or advantages
  const uint8_t* mask = nullptr;   // rows, nonzero = valid; nullptr: all valid
  const float* count = nullptr;    // device scalar C (per agent)
  AgentRows in;
  float entropy_coef = 0.0f;
  const float* old_log_prob = nullptr;  // PPO: the acting policy's; nullptr: policy gradient
  float clip = 0.2f;
  float* d_head = nullptr;  // rows x 2 action_dim, overwritten
  float* stats = nullptr;   // rows x stat_columns, or nullptr
  int32_t stat_columns = kStatColumns;
};

// DQN's loss: the Huber loss of Q(s, a) against fixed targets (q_loss_row). A population as
// PolicyLossArgs: actions, targets and mask laid out as `in`, q and outputs packed.
struct QLossArgs {
  const float* q = nullptr;  // rows x num_actions
  int64_t rows = 0;
  int32_t num_actions = 0;
  const int32_t* actions = nullptr;  // rows
  const float* targets = nullptr;    // rows
  const uint8_t* mask = nullptr;     // rows or nullptr
  const float* count = nullptr;      // device scalar C (per agent)
  AgentRows in;
  float huber_delta = 1.0f;
  float* d_q = nullptr;    // rows x num_actions, overwritten
  float* stats = nullptr;  // rows x stat_columns, or nullptr
  int32_t stat_columns = kStatColumns;
};

struct ValueLossArgs {
  const float* values = nullptr;   // rows (packed)
  const float* targets = nullptr;  // rows (laid out as `in`)
  const uint8_t* mask = nullptr;   // rows or nullptr (laid out as `in`)
  int64_t rows = 0;
  const float* count = nullptr;  // device scalar C (per agent)
  float value_coef = 1.0f;
  const float* value_coefs = nullptr;  // per agent, instead of value_coef; or nullptr
  AgentRows in;
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

  // x[i] = value over n floats; a population's `agents` blocks of n, `stride` floats apart.
  void fill(float* x, int64_t n, float value, int64_t agents = 1, int64_t stride = 0);
  // x[i] = init_uniform_value(seed, block, i, bound).
  void init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block);
  // y (rows x cols, row-major) = act(y + bias) with bias broadcast over rows. A population's
  // agents (blocks of rows_per_agent rows) each add their own bias, bias_stride floats apart.
  void bias_activation(float* y, const float* bias, int64_t rows, int64_t cols, Activation act,
                       int64_t rows_per_agent = 0, int64_t bias_stride = 0);
  // dy *= act'(.) written from the activation's output y; n elements.
  void activation_backward(float* dy, const float* y, int64_t n, Activation act);
  // Samples one action per row into `actions`; log_prob and entropy (rows each) where not null.
  // A population: out.agents agents of out.rows rows, the outputs laid out as `out` says.
  void sample_actions(const float* logits, int64_t rows, int32_t num_actions, const SampleKey& key,
                      int32_t* actions, float* log_prob, float* entropy, const AgentRows& out = {});
  // log pi(actions[i]) and/or the entropy of each row (either output may be null).
  void log_prob_entropy(const float* logits, int64_t rows, int32_t num_actions,
                        const int32_t* actions, float* log_prob, float* entropy);
  // rows x num_actions probabilities.
  void softmax(const float* logits, int64_t rows, int32_t num_actions, float* probs);
  void policy_loss_grad(const PolicyLossArgs& args);
  // The Gaussian head: a[i] = mu + sigma * eps with eps from policy_normal(key.seed, first_env +
  // i, step, k), rows x action_dim; log_prob and entropy (rows each) where not null. A
  // population as sample_actions.
  void sample_gaussian(const float* head, int64_t rows, int32_t action_dim, const SampleKey& key,
                       float* actions, float* log_prob, float* entropy, const AgentRows& out = {});
  // log pi(actions[i]) and/or the entropy of each row of the Gaussian head.
  void gaussian_log_prob_entropy(const float* head, int64_t rows, int32_t action_dim,
                                 const float* actions, float* log_prob, float* entropy);
  void gaussian_loss_grad(const GaussianLossArgs& args);
  // DQN: epsilon-greedy actions on rows of Q-values (epsilon_greedy_row, drawn from
  // (key.seed, kExplore, key.first_env + i, key.step)). A population as sample_actions, agent k
  // exploring with epsilons[k] (device memory) instead of epsilon; one agent with epsilons[0]
  // where epsilons is given (a recorded update's, whose arguments must not change).
  void epsilon_greedy(const float* q, int64_t rows, int32_t num_actions, const SampleKey& key,
                      float epsilon, int32_t* actions, const AgentRows& out = {},
                      const float* epsilons = nullptr);
  void q_loss_grad(const QLossArgs& args);
  void value_loss_grad(const ValueLossArgs& args);
  // *out = number of nonzero bytes in mask[0, n), as a float (exact up to 2^24), in device
  // memory. A population: out[k] counts agent k's mask[k * stride, k * stride + n).
  void count_nonzero(const uint8_t* mask, int64_t n, float* out, int64_t agents = 1,
                     int64_t stride = 0);
  // out[k * out_stride] = the L2 norm of x[k * stride, k * stride + n) for every agent k
  // (device memory).
  void norms(const float* x, int64_t n, int64_t agents, int64_t stride, float* out,
             int64_t out_stride = 1);
  // One Adam step over n parameters. The gradient used is grads[i] * clip_scale(*grad_norm,
  // max_grad_norm); grad_norm may be null (no clipping). A population: see AdamAgents.
  void adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                 const AdamScalars& s, const float* grad_norm, float max_grad_norm,
                 const AdamAgents& agents = {});

 protected:
  [[nodiscard]] Device& device() const { return *device_; }

  // Called with checked arguments and n, rows > 0.
  virtual void do_fill(float* x, int64_t n, float value, int64_t agents, int64_t stride) = 0;
  virtual void do_init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block) = 0;
  virtual void do_bias_activation(float* y, const float* bias, int64_t rows, int64_t cols,
                                  Activation act, int64_t rows_per_agent, int64_t bias_stride) = 0;
  virtual void do_activation_backward(float* dy, const float* y, int64_t n, Activation act) = 0;
  virtual void do_sample_actions(const float* logits, int64_t rows, int32_t num_actions,
                                 const SampleKey& key, int32_t* actions, float* log_prob,
                                 float* entropy, const AgentRows& out) = 0;
  virtual void do_log_prob_entropy(const float* logits, int64_t rows, int32_t num_actions,
                                   const int32_t* actions, float* log_prob, float* entropy) = 0;
  virtual void do_softmax(const float* logits, int64_t rows, int32_t num_actions, float* probs) = 0;
  virtual void do_policy_loss_grad(const PolicyLossArgs& args) = 0;
  virtual void do_value_loss_grad(const ValueLossArgs& args) = 0;
  virtual void do_sample_gaussian(const float* head, int64_t rows, int32_t action_dim,
                                  const SampleKey& key, float* actions, float* log_prob,
                                  float* entropy, const AgentRows& out) = 0;
  virtual void do_gaussian_log_prob_entropy(const float* head, int64_t rows, int32_t action_dim,
                                            const float* actions, float* log_prob,
                                            float* entropy) = 0;
  virtual void do_gaussian_loss_grad(const GaussianLossArgs& args) = 0;
  virtual void do_epsilon_greedy(const float* q, int64_t rows, int32_t num_actions,
                                 const SampleKey& key, float epsilon, int32_t* actions,
                                 const AgentRows& out, const float* epsilons) = 0;
  virtual void do_q_loss_grad(const QLossArgs& args) = 0;
  // n may be 0 here (the count is then 0).
  virtual void do_count_nonzero(const uint8_t* mask, int64_t n, float* out, int64_t agents,
                                int64_t stride) = 0;
  virtual void do_norms(const float* x, int64_t n, int64_t agents, int64_t stride, float* out,
                        int64_t out_stride) = 0;
  // agents.stride and state_stride are n for one agent; state_stride is set.
  virtual void do_adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                            const AdamScalars& s, const float* grad_norm, float max_grad_norm,
                            const AdamAgents& agents) = 0;

 private:
  Device* device_;
};

}  // namespace batchpole
