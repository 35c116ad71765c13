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

void check_action_dim(const char* op, int32_t action_dim) {
  BP_CHECK_ARG(
      action_dim >= 1 && action_dim <= kMaxActionDims,
      op << ": " << action_dim << " action dimensions, supported are 1 to " << kMaxActionDims);
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
                            Activation act) {
  check_rows("bias_activation", rows);
  BP_CHECK_ARG(cols >= 0, "bias_activation: " << cols << " columns");
  if (rows == 0 || cols == 0) return;
  check_not_null("bias_activation", "y", y);
  check_not_null("bias_activation", "bias", bias);
  device_->count_op();
  do_bias_activation(y, bias, rows, cols, act);
}

void NnOps::activation_backward(float* dy, const float* y, int64_t n, Activation act) {
  check_rows("activation_backward", n);
  if (n == 0 || act == Activation::kIdentity) return;
  device_->count_op();
  do_activation_backward(dy, y, n, act);
}

void NnOps::sample_actions(const float* logits, int64_t rows, int32_t num_actions,
                           const SampleKey& key, int32_t* actions, float* log_prob,
                           float* entropy) {
  check_rows("sample_actions", rows);
  check_actions("sample_actions", num_actions);
  if (rows == 0) return;
  check_not_null("sample_actions", "logits", logits);
  check_not_null("sample_actions", "actions", actions);
  device_->count_op();
  do_sample_actions(logits, rows, num_actions, key, actions, log_prob, entropy);
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
  BP_CHECK_ARG(a.stat_columns >= kStatColumns,
               op << ": " << a.stat_columns << " statistics columns are too few");
  BP_CHECK_ARG(a.old_values == nullptr || a.clip > 0.0f,
               op << ": the value clip range must be positive, got " << a.clip);
  device_->count_op();
  do_value_loss_grad(a);
}

void NnOps::sample_gaussian(const float* head, int64_t rows, int32_t action_dim,
                            const SampleKey& key, float* actions, float* log_prob, float* entropy) {
  const char* op = "sample_gaussian";
  check_rows(op, rows);
  check_action_dim(op, action_dim);
  if (rows == 0) return;
  check_not_null(op, "head", head);
  check_not_null(op, "actions", actions);
  device_->count_op();
  do_sample_gaussian(head, rows, action_dim, key, actions, log_prob, entropy);
}

void NnOps::gaussian_log_prob_entropy(const float* head, int64_t rows, int32_t action_dim,
                                      const float* actions, float* log_prob, float* entropy) {
  const char* op = "gaussian_log_prob_entropy";
  check_rows(op, rows);
  check_action_dim(op, action_dim);
  if (rows == 0) return;
  check_not_null(op, "head", head);
  if (log_prob != nullptr) check_not_null(op, "actions", actions);
  device_->count_op();
  do_gaussian_log_prob_entropy(head, rows, action_dim, actions, log_prob, entropy);
}

void NnOps::gaussian_loss_grad(const GaussianLossArgs& a) {
  const char* op = "gaussian_loss_grad";
  check_rows(op, a.rows);
  check_action_dim(op, a.action_dim);
  if (a.rows == 0) return;
  check_not_null(op, "head", a.head);
  check_not_null(op, "actions", a.actions);
  check_not_null(op, "weights", a.weights);
  check_not_null(op, "count", a.count);
  check_not_null(op, "d_head", a.d_head);
  BP_CHECK_ARG(a.stat_columns >= (a.old_log_prob != nullptr ? kStatColumnsClipped : kStatColumns),
               op << ": " << a.stat_columns << " statistics columns are too few");
  BP_CHECK_ARG(a.old_log_prob == nullptr || (a.clip > 0.0f && a.clip < 1.0f),
               op << ": the clip range must be in (0, 1), got " << a.clip);
  device_->count_op();
  do_gaussian_loss_grad(a);
}

void NnOps::epsilon_greedy(const float* q, int64_t rows, int32_t num_actions, const SampleKey& key,
                           float epsilon, int32_t* actions) {
  const char* op = "epsilon_greedy";
  check_rows(op, rows);
  check_actions(op, num_actions);
  if (rows == 0) return;
  check_not_null(op, "q", q);
  check_not_null(op, "actions", actions);
  BP_CHECK_ARG(epsilon >= 0.0f && epsilon <= 1.0f,
               op << ": epsilon must be in [0, 1], got " << epsilon);
  device_->count_op();
  do_epsilon_greedy(q, rows, num_actions, key, epsilon, actions);
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
  BP_CHECK_ARG(a.stat_columns >= kStatColumns,
               op << ": " << a.stat_columns << " statistics columns are too few");
  BP_CHECK_ARG(a.huber_delta > 0.0f,
               op << ": the Huber delta must be positive, got " << a.huber_delta);
  device_->count_op();
  do_q_loss_grad(a);
}

void NnOps::count_nonzero(const uint8_t* mask, int64_t n, float* out) {
  check_rows("count_nonzero", n);
  check_not_null("count_nonzero", "out", out);
  if (n > 0) check_not_null("count_nonzero", "mask", mask);
  device_->count_op();
  do_count_nonzero(mask, n, out);
}

void NnOps::adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                      const AdamScalars& s, const float* grad_norm, float max_grad_norm) {
  check_rows("adam_step", n);
  if (n == 0) return;
  check_not_null("adam_step", "params", params);
  check_not_null("adam_step", "grads", grads);
  device_->count_op();
  do_adam_step(params, grads, m, v, n, s, grad_norm, max_grad_norm);
}

}  // namespace batchpole
