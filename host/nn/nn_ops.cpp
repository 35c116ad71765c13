// The checks and the counting of NnOps, shared by both devices; the implementations only launch.
#include "batchpole/nn/nn_ops.hpp"

namespace batchpole {

namespace {

void check_rows(const char* op, int64_t rows) {
  BP_CHECK_ARG(rows >= 0, op << ": negative row count " << rows);
}

void check_actions(const char* op, int32_t num_actions) {
  BP_CHECK_ARG(num_actions >= 1 && num_actions <= kMaxActions,
               op << ": " << num_actions << " actions, supported are 1 to " << kMaxActions);
}

void check_not_null(const char* op, const char* name, const void* p) {
  BP_CHECK_ARG(p != nullptr, op << ": " << name << " is a null pointer");
}

// A population's sampling call: out.agents blocks of out.rows rows, with per-agent keys.
void check_sample_layout(const char* op, int64_t rows, const SampleKey& key, const AgentRows& out) {
  if (out.agents <= 1) return;
  BP_CHECK_ARG(out.rows > 0 && out.agents * out.rows == rows && out.stride >= out.rows,
               op << ": " << out.agents << " agents of " << out.rows << " rows (stride "
                  << out.stride << ") for " << rows << " rows");
  check_not_null(op, "per-agent seeds", key.seeds);
  check_not_null(op, "per-agent steps", key.steps);
}

// A population's loss: in.agents blocks of in.rows rows of per-row inputs.
void check_in_layout(const char* op, int64_t rows, const AgentRows& in) {
  BP_CHECK_ARG(
      in.agents == 1 || (in.rows > 0 && in.agents * in.rows == rows && in.stride >= in.rows),
      op << ": " << in.agents << " agents of " << in.rows << " rows for " << rows);
}

void check_action_dim(const char* op, int32_t action_dim) {
  BP_CHECK_ARG(
      action_dim >= 1 && action_dim <= kMaxActionDims,
      op << ": " << action_dim << " action dimensions, supported are 1 to " << kMaxActionDims);
}

// What the categorical and the Gaussian policy losses share: per-row weights, the divisor, the
// input layout, room for the statistics, and with PPO's old log-probabilities a clip range.
template <class Args>
void check_policy_loss_inputs(const char* op, const Args& a) {
  check_not_null(op, "weights", a.weights);
  check_not_null(op, "count", a.count);
  check_in_layout(op, a.rows, a.in);
  BP_CHECK_ARG(a.stat_columns >= (a.old_log_prob != nullptr ? kStatColumnsClipped : kStatColumns),
               op << ": " << a.stat_columns << " statistics columns are too few");
  BP_CHECK_ARG(a.old_log_prob == nullptr || (a.clip > 0.0f && a.clip < 1.0f),
               op << ": the clip range must be in (0, 1), got " << a.clip);
}

}  // namespace

void NnOps::fill(float* x, int64_t n, float value, int64_t agents, int64_t stride) {
  check_rows("fill", n);
  BP_CHECK_ARG(agents >= 1 && (agents == 1 || stride >= n),
               "fill: " << agents << " agents of " << n << " values with stride " << stride);
  if (n == 0) return;
  check_not_null("fill", "x", x);
  device_->enqueue(
      "fill", [this](const auto&... op_args) { this->do_fill(op_args...); }, x, n, value, agents,
      agents > 1 ? stride : n);
}

void NnOps::init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block) {
  check_rows("init_uniform", n);
  if (n == 0) return;
  check_not_null("init_uniform", "x", x);
  device_->enqueue(
      "init_uniform", [this](const auto&... op_args) { this->do_init_uniform(op_args...); }, x, n,
      bound, seed, block);
}

void NnOps::bias_activation(float* y, const float* bias, int64_t rows, int64_t cols, Activation act,
                            int64_t rows_per_agent, int64_t bias_stride) {
  check_rows("bias_activation", rows);
  BP_CHECK_ARG(cols >= 0, "bias_activation: " << cols << " columns");
  BP_CHECK_ARG(rows_per_agent >= 0 && bias_stride >= 0, "bias_activation: negative agent layout ("
                                                            << rows_per_agent << ", " << bias_stride
                                                            << ")");
  if (rows == 0 || cols == 0) return;
  check_not_null("bias_activation", "y", y);
  check_not_null("bias_activation", "bias", bias);
  device_->enqueue(
      "bias_activation", [this](const auto&... op_args) { this->do_bias_activation(op_args...); },
      y, bias, rows, cols, act, rows_per_agent > 0 ? rows_per_agent : rows, bias_stride);
}

void NnOps::activation_backward(float* dy, const float* y, int64_t n, Activation act) {
  check_rows("activation_backward", n);
  if (n == 0 || act == Activation::kIdentity) return;
  device_->enqueue(
      "activation_backward",
      [this](const auto&... op_args) { this->do_activation_backward(op_args...); }, dy, y, n, act);
}

void NnOps::sample_actions(const float* logits, int64_t rows, int32_t num_actions,
                           const SampleKey& key, int32_t* actions, float* log_prob, float* entropy,
                           const AgentRows& out) {
  check_rows("sample_actions", rows);
  check_actions("sample_actions", num_actions);
  if (rows == 0) return;
  check_not_null("sample_actions", "logits", logits);
  check_not_null("sample_actions", "actions", actions);
  check_sample_layout("sample_actions", rows, key, out);
  device_->enqueue(
      "sample_actions", [this](const auto&... op_args) { this->do_sample_actions(op_args...); },
      logits, rows, num_actions, key, actions, log_prob, entropy, out);
}

void NnOps::log_prob_entropy(const float* logits, int64_t rows, int32_t num_actions,
                             const int32_t* actions, float* log_prob, float* entropy) {
  check_rows("log_prob_entropy", rows);
  check_actions("log_prob_entropy", num_actions);
  if (rows == 0) return;
  check_not_null("log_prob_entropy", "logits", logits);
  if (log_prob != nullptr) check_not_null("log_prob_entropy", "actions", actions);
  device_->enqueue(
      "log_prob_entropy", [this](const auto&... op_args) { this->do_log_prob_entropy(op_args...); },
      logits, rows, num_actions, actions, log_prob, entropy);
}

void NnOps::softmax(const float* logits, int64_t rows, int32_t num_actions, float* probs) {
  check_rows("softmax", rows);
  check_actions("softmax", num_actions);
  if (rows == 0) return;
  check_not_null("softmax", "logits", logits);
  check_not_null("softmax", "probs", probs);
  device_->enqueue(
      "softmax", [this](const auto&... op_args) { this->do_softmax(op_args...); }, logits, rows,
      num_actions, probs);
}

void NnOps::policy_loss_grad(const PolicyLossArgs& a) {
  const char* op = "policy_loss_grad";
  check_rows(op, a.rows);
  check_actions(op, a.num_actions);
  if (a.rows == 0) return;
  check_not_null(op, "logits", a.logits);
  check_not_null(op, "actions", a.actions);
  check_not_null(op, "d_logits", a.d_logits);
  check_policy_loss_inputs(op, a);
  device_->enqueue(
      "policy_loss_grad", [this](const auto&... op_args) { this->do_policy_loss_grad(op_args...); },
      a);
}

void NnOps::value_loss_grad(const ValueLossArgs& a) {
  const char* op = "value_loss_grad";
  check_rows(op, a.rows);
  if (a.rows == 0) return;
  check_not_null(op, "values", a.values);
  check_not_null(op, "targets", a.targets);
  check_not_null(op, "count", a.count);
  check_not_null(op, "d_values", a.d_values);
  check_in_layout(op, a.rows, a.in);
  BP_CHECK_ARG(a.stat_columns >= kStatColumns,
               op << ": " << a.stat_columns << " statistics columns are too few");
  BP_CHECK_ARG(a.old_values == nullptr || a.clip > 0.0f,
               op << ": the value clip range must be positive, got " << a.clip);
  device_->enqueue(
      "value_loss_grad", [this](const auto&... op_args) { this->do_value_loss_grad(op_args...); },
      a);
}

void NnOps::sample_gaussian(const float* head, int64_t rows, int32_t action_dim,
                            const SampleKey& key, float* actions, float* log_prob, float* entropy,
                            const AgentRows& out) {
  const char* op = "sample_gaussian";
  check_rows(op, rows);
  check_action_dim(op, action_dim);
  if (rows == 0) return;
  check_not_null(op, "head", head);
  check_not_null(op, "actions", actions);
  check_sample_layout(op, rows, key, out);
  device_->enqueue(
      "sample_gaussian", [this](const auto&... op_args) { this->do_sample_gaussian(op_args...); },
      head, rows, action_dim, key, actions, log_prob, entropy, out);
}

void NnOps::gaussian_log_prob_entropy(const float* head, int64_t rows, int32_t action_dim,
                                      const float* actions, float* log_prob, float* entropy) {
  const char* op = "gaussian_log_prob_entropy";
  check_rows(op, rows);
  check_action_dim(op, action_dim);
  if (rows == 0) return;
  check_not_null(op, "head", head);
  if (log_prob != nullptr) check_not_null(op, "actions", actions);
  device_->enqueue(
      "gaussian_log_prob_entropy",
      [this](const auto&... op_args) { this->do_gaussian_log_prob_entropy(op_args...); }, head,
      rows, action_dim, actions, log_prob, entropy);
}

void NnOps::gaussian_loss_grad(const GaussianLossArgs& a) {
  const char* op = "gaussian_loss_grad";
  check_rows(op, a.rows);
  check_action_dim(op, a.action_dim);
  if (a.rows == 0) return;
  check_not_null(op, "head", a.head);
  check_not_null(op, "actions", a.actions);
  check_not_null(op, "d_head", a.d_head);
  check_policy_loss_inputs(op, a);
  device_->enqueue(
      "gaussian_loss_grad",
      [this](const auto&... op_args) { this->do_gaussian_loss_grad(op_args...); }, a);
}

void NnOps::epsilon_greedy(const float* q, int64_t rows, int32_t num_actions, const SampleKey& key,
                           float epsilon, int32_t* actions, const AgentRows& out,
                           const float* epsilons) {
  const char* op = "epsilon_greedy";
  check_rows(op, rows);
  check_actions(op, num_actions);
  if (rows == 0) return;
  check_not_null(op, "q", q);
  check_not_null(op, "actions", actions);
  check_sample_layout(op, rows, key, out);
  if (out.agents > 1) {
    check_not_null(op, "per-agent epsilons", epsilons);
  } else if (epsilons == nullptr) {
    BP_CHECK_ARG(epsilon >= 0.0f && epsilon <= 1.0f,
                 op << ": epsilon must be in [0, 1], got " << epsilon);
  }
  device_->enqueue(
      "epsilon_greedy", [this](const auto&... op_args) { this->do_epsilon_greedy(op_args...); }, q,
      rows, num_actions, key, epsilon, actions, out, epsilons);
}

void NnOps::q_loss_grad(const QLossArgs& a) {
  const char* op = "q_loss_grad";
  check_rows(op, a.rows);
  check_actions(op, a.num_actions);
  if (a.rows == 0) return;
  check_not_null(op, "q", a.q);
  check_not_null(op, "actions", a.actions);
  check_not_null(op, "targets", a.targets);
  check_not_null(op, "count", a.count);
  check_not_null(op, "d_q", a.d_q);
  check_in_layout(op, a.rows, a.in);
  BP_CHECK_ARG(a.stat_columns >= kStatColumns,
               op << ": " << a.stat_columns << " statistics columns are too few");
  BP_CHECK_ARG(a.huber_delta > 0.0f,
               op << ": the Huber delta must be positive, got " << a.huber_delta);
  device_->enqueue(
      "q_loss_grad", [this](const auto&... op_args) { this->do_q_loss_grad(op_args...); }, a);
}

void NnOps::count_nonzero(const uint8_t* mask, int64_t n, float* out, int64_t agents,
                          int64_t stride) {
  check_rows("count_nonzero", n);
  BP_CHECK_ARG(agents >= 1 && (agents == 1 || stride >= n),
               "count_nonzero: " << agents << " agents with stride " << stride);
  check_not_null("count_nonzero", "out", out);
  if (n > 0) check_not_null("count_nonzero", "mask", mask);
  device_->enqueue(
      "count_nonzero", [this](const auto&... op_args) { this->do_count_nonzero(op_args...); }, mask,
      n, out, agents, agents > 1 ? stride : n);
}

void NnOps::norms(const float* x, int64_t n, int64_t agents, int64_t stride, float* out,
                  int64_t out_stride) {
  check_rows("norms", n);
  BP_CHECK_ARG(
      agents >= 1 && (agents == 1 || stride >= n) && out_stride >= 1,
      "norms: " << agents << " agents with stride " << stride << ", out_stride " << out_stride);
  check_not_null("norms", "out", out);
  if (n > 0) check_not_null("norms", "x", x);
  device_->enqueue(
      "norms", [this](const auto&... op_args) { this->do_norms(op_args...); }, x, n, agents,
      agents > 1 ? stride : n, out, out_stride);
}

void NnOps::adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                      const AdamScalars& s, const float* grad_norm, float max_grad_norm,
                      const AdamAgents& agents) {
  check_rows("adam_step", n);
  BP_CHECK_ARG(agents.agents >= 1 &&
                   (agents.agents == 1 || (agents.stride >= n && (agents.state_stride == 0 ||
                                                                  agents.state_stride >= n))) &&
                   agents.norm_stride >= 1,
               "adam_step: " << agents.agents << " agents with stride " << agents.stride
                             << ", norm_stride " << agents.norm_stride);
  if (n == 0) return;
  check_not_null("adam_step", "params", params);
  check_not_null("adam_step", "grads", grads);
  AdamAgents a = agents;
  if (a.agents == 1) a.stride = n;
  if (a.agents == 1 || a.state_stride == 0) a.state_stride = a.stride;
  device_->enqueue(
      "adam_step", [this](const auto&... op_args) { this->do_adam_step(op_args...); }, params,
      grads, m, v, n, s, grad_norm, max_grad_norm, a);
}

}  // namespace batchpole
