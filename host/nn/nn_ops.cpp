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

}  // namespace

void NnOps::fill(float* x, int64_t n, float value) {
  check_rows("fill", n);
  if (n == 0) return;
  check_not_null("fill", "x", x);
  device_->count_op();
  do_fill(x, n, value);
}

void NnOps::init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block) {
  check_rows("init_uniform", n);
  if (n == 0) return;
  check_not_null("init_uniform", "x", x);
  device_->count_op();
  do_init_uniform(x, n, bound, seed, block);
}

void NnOps::bias_activation(float* y, const float* bias, int64_t rows, int64_t cols,
                            Activation act, int64_t rows_per_agent, int64_t bias_stride) {
  check_rows("bias_activation", rows);
  BP_CHECK_ARG(cols >= 0, "bias_activation: " << cols << " columns");
  BP_CHECK_ARG(rows_per_agent >= 0 && bias_stride >= 0,
               "bias_activation: negative agent layout (" << rows_per_agent << ", " << bias_stride
                                                          << ")");
  if (rows == 0 || cols == 0) return;
  check_not_null("bias_activation", "y", y);
  check_not_null("bias_activation", "bias", bias);
  device_->count_op();
  do_bias_activation(y, bias, rows, cols, act, rows_per_agent > 0 ? rows_per_agent : rows,
                     bias_stride);
}

void NnOps::activation_backward(float* dy, const float* y, int64_t n, Activation act) {
  check_rows("activation_backward", n);
  if (n == 0 || act == Activation::kIdentity) return;
  device_->count_op();
  do_activation_backward(dy, y, n, act);
}

void NnOps::sample_actions(const float* logits, int64_t rows, int32_t num_actions,
                           const SampleKey& key, int32_t* actions, float* log_prob,
                           float* entropy, const AgentRows& out) {
  check_rows("sample_actions", rows);
  check_actions("sample_actions", num_actions);
  if (rows == 0) return;
  check_not_null("sample_actions", "logits", logits);
  check_not_null("sample_actions", "actions", actions);
  if (out.agents > 1) {
    BP_CHECK_ARG(out.rows > 0 && out.agents * out.rows == rows && out.stride >= out.rows,
                 "sample_actions: " << out.agents << " agents of " << out.rows
                                    << " rows (stride " << out.stride << ") for " << rows
                                    << " rows");
    check_not_null("sample_actions", "per-agent seeds", key.seeds);
    check_not_null("sample_actions", "per-agent steps", key.steps);
  }
  device_->count_op();
  do_sample_actions(logits, rows, num_actions, key, actions, log_prob, entropy, out);
}

void NnOps::log_prob_entropy(const float* logits, int64_t rows, int32_t num_actions,
                             const int32_t* actions, float* log_prob, float* entropy) {
  check_rows("log_prob_entropy", rows);
  check_actions("log_prob_entropy", num_actions);
  if (rows == 0) return;
  check_not_null("log_prob_entropy", "logits", logits);
  if (log_prob != nullptr) check_not_null("log_prob_entropy", "actions", actions);
  device_->count_op();
  do_log_prob_entropy(logits, rows, num_actions, actions, log_prob, entropy);
}

void NnOps::softmax(const float* logits, int64_t rows, int32_t num_actions, float* probs) {
  check_rows("softmax", rows);
  check_actions("softmax", num_actions);
  if (rows == 0) return;
  check_not_null("softmax", "logits", logits);
  check_not_null("softmax", "probs", probs);
  device_->count_op();
  do_softmax(logits, rows, num_actions, probs);
}

void NnOps::policy_loss_grad(const PolicyLossArgs& a) {
  const char* op = "policy_loss_grad";
  check_rows(op, a.rows);
  check_actions(op, a.num_actions);
  if (a.rows == 0) return;
  check_not_null(op, "logits", a.logits);
  check_not_null(op, "actions", a.actions);
  check_not_null(op, "weights", a.weights);
  check_not_null(op, "count", a.count);
  check_not_null(op, "d_logits", a.d_logits);
  BP_CHECK_ARG(a.in.agents == 1 || (a.in.rows > 0 && a.in.agents * a.in.rows == a.rows &&
                                    a.in.stride >= a.in.rows),
               op << ": " << a.in.agents << " agents of " << a.in.rows << " rows for " << a.rows);
  BP_CHECK_ARG(a.stat_columns >= (a.old_log_prob != nullptr ? kStatColumnsClipped : kStatColumns),
               op << ": " << a.stat_columns << " statistics columns are too few");
  BP_CHECK_ARG(a.old_log_prob == nullptr || (a.clip > 0.0f && a.clip < 1.0f),
               op << ": the clip range must be in (0, 1), got " << a.clip);
  device_->count_op();
  do_policy_loss_grad(a);
}

void NnOps::value_loss_grad(const ValueLossArgs& a) {
  const char* op = "value_loss_grad";
  check_rows(op, a.rows);
  if (a.rows == 0) return;
  check_not_null(op, "values", a.values);
  check_not_null(op, "targets", a.targets);
  check_not_null(op, "count", a.count);
  check_not_null(op, "d_values", a.d_values);
  BP_CHECK_ARG(a.in.agents == 1 || (a.in.rows > 0 && a.in.agents * a.in.rows == a.rows &&
                                    a.in.stride >= a.in.rows),
               op << ": " << a.in.agents << " agents of " << a.in.rows << " rows for " << a.rows);
  BP_CHECK_ARG(a.stat_columns >= kStatColumns,
               op << ": " << a.stat_columns << " statistics columns are too few");
  BP_CHECK_ARG(a.old_values == nullptr || a.clip > 0.0f,
               op << ": the value clip range must be positive, got " << a.clip);
  device_->count_op();
  do_value_loss_grad(a);
}

void NnOps::count_nonzero(const uint8_t* mask, int64_t n, float* out, int64_t agents,
                          int64_t stride) {
  check_rows("count_nonzero", n);
  BP_CHECK_ARG(agents >= 1 && (agents == 1 || stride >= n),
               "count_nonzero: " << agents << " agents with stride " << stride);
  check_not_null("count_nonzero", "out", out);
  if (n > 0) check_not_null("count_nonzero", "mask", mask);
  device_->count_op();
  do_count_nonzero(mask, n, out, agents, agents > 1 ? stride : n);
}

void NnOps::norms(const float* x, int64_t n, int64_t agents, int64_t stride, float* out,
                  int64_t out_stride) {
  check_rows("norms", n);
  BP_CHECK_ARG(agents >= 1 && (agents == 1 || stride >= n) && out_stride >= 1,
               "norms: " << agents << " agents with stride " << stride << ", out_stride "
                         << out_stride);
  check_not_null("norms", "out", out);
  if (n > 0) check_not_null("norms", "x", x);
  device_->count_op();
  do_norms(x, n, agents, agents > 1 ? stride : n, out, out_stride);
}

void NnOps::adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                      const AdamScalars& s, const float* grad_norm, float max_grad_norm,
                      const AdamAgents& agents) {
  check_rows("adam_step", n);
  BP_CHECK_ARG(agents.agents >= 1 &&
                   (agents.agents == 1 ||
                    (agents.stride >= n && (agents.state_stride == 0 || agents.state_stride >= n))) &&
                   agents.norm_stride >= 1,
               "adam_step: " << agents.agents << " agents with stride " << agents.stride
                             << ", norm_stride " << agents.norm_stride);
  if (n == 0) return;
  check_not_null("adam_step", "params", params);
  check_not_null("adam_step", "grads", grads);
  device_->count_op();
  AdamAgents a = agents;
  if (a.agents == 1) a.stride = n;
  if (a.agents == 1 || a.state_stride == 0) a.state_stride = a.stride;
  do_adam_step(params, grads, m, v, n, s, grad_norm, max_grad_norm, a);
}

}  // namespace batchpole
