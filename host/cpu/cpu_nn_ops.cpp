// NnOps on the CPU: loops over the element functions of nn_elements.hpp (the CUDA kernels call
// the same ones), vectorised, on the calling thread. The parallelism is one level up: the model
// runs whole shards of the batch as tasks on the device's threads (host/nn/sharded_runner.cpp),
// and each task calls these loops and single-threaded OpenBLAS on its own shard.
#include <algorithm>

#include "batchpole/nn/nn_ops.hpp"
#include "cpu_device.hpp"

namespace batchpole {

namespace {

template <Activation A>
void bias_activation_loop(float* __restrict__ y, const float* __restrict__ bias, int64_t rows,
                          int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* __restrict__ row = y + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) row[c] = activate(A, row[c] + bias[c]);
  }
}

template <Activation A>
void activation_backward_loop(float* __restrict__ dy, const float* __restrict__ y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dy[i] = activation_backward_value(A, dy[i], y[i]);
}

bool row_valid(const uint8_t* mask, int64_t i) { return mask == nullptr || mask[i] != 0; }

class CpuNnOps final : public NnOps {
 public:
  explicit CpuNnOps(Device& device) : NnOps(device) {}
  [[nodiscard]] std::string description() const override { return "cpu loops"; }

 protected:
  void do_fill(float* x, int64_t n, float value) override { std::fill(x, x + n, value); }

  void do_init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block) override {
    for (int64_t i = 0; i < n; ++i) x[i] = init_uniform_value(seed, block, i, bound);
  }

  void do_bias_activation(float* y, const float* bias, int64_t rows, int64_t cols,
                          Activation act) override {
    switch (act) {
      case Activation::kRelu:
        bias_activation_loop<Activation::kRelu>(y, bias, rows, cols);
        break;
      case Activation::kTanh:
        bias_activation_loop<Activation::kTanh>(y, bias, rows, cols);
        break;
      case Activation::kIdentity:
        bias_activation_loop<Activation::kIdentity>(y, bias, rows, cols);
        break;
    }
  }

  void do_activation_backward(float* dy, const float* y, int64_t n, Activation act) override {
    switch (act) {
      case Activation::kRelu:
        activation_backward_loop<Activation::kRelu>(dy, y, n);
        break;
      case Activation::kTanh:
        activation_backward_loop<Activation::kTanh>(dy, y, n);
        break;
      case Activation::kIdentity:
        break;
    }
  }

  void do_sample_actions(const float* logits, int64_t rows, int32_t num_actions,
                         const SampleKey& key, int32_t* actions, float* log_prob,
                         float* entropy) override {
    for (int64_t i = 0; i < rows; ++i) {
      const float u = policy_uniform(key.seed, key.first_env + static_cast<uint32_t>(i), key.step);
      actions[i] = policy_sample_row(logits + i * num_actions, num_actions, u,
                                     log_prob != nullptr ? log_prob + i : nullptr,
                                     entropy != nullptr ? entropy + i : nullptr);
    }
  }

  void do_log_prob_entropy(const float* logits, int64_t rows, int32_t num_actions,
                           const int32_t* actions, float* log_prob, float* entropy) override {
    if (log_prob != nullptr) check_actions("log_prob_entropy", actions, nullptr, rows, num_actions);
    for (int64_t i = 0; i < rows; ++i) {
      const float* z = logits + i * num_actions;
      if (log_prob != nullptr) log_prob[i] = categorical_log_prob(z, num_actions, actions[i]);
      if (entropy != nullptr) entropy[i] = categorical_entropy(z, num_actions);
    }
  }

  void do_softmax(const float* logits, int64_t rows, int32_t num_actions, float* probs) override {
    for (int64_t i = 0; i < rows; ++i) {
      const SoftmaxRow s = softmax_row(logits + i * num_actions, num_actions);
      for (int32_t j = 0; j < num_actions; ++j) probs[i * num_actions + j] = s.prob(j);
    }
  }

  void do_policy_loss_grad(const PolicyLossArgs& a) override {
    check_actions("policy_loss_grad", a.actions, a.mask, a.rows, a.num_actions);
    const PolicyLossCoefs coefs{1.0f / *a.count, a.entropy_coef};
    const int32_t na = a.num_actions;
    for (int64_t i = 0; i < a.rows; ++i) {
      float* stats = a.stats != nullptr ? a.stats + i * a.stat_columns : nullptr;
      if (a.old_log_prob != nullptr) {
        clipped_policy_loss_row(a.logits + i * na, na, a.actions[i], a.weights[i],
                                a.old_log_prob[i], a.clip, row_valid(a.mask, i), coefs,
                                a.d_logits + i * na, stats);
      } else {
        policy_loss_row(a.logits + i * na, na, a.actions[i], a.weights[i], row_valid(a.mask, i),
                        coefs, a.d_logits + i * na, stats);
      }
    }
  }

  void do_value_loss_grad(const ValueLossArgs& a) override {
    const float inv_count = 1.0f / *a.count;
    for (int64_t i = 0; i < a.rows; ++i) {
      float* stats = a.stats != nullptr ? a.stats + i * a.stat_columns : nullptr;
      a.d_values[i] =
          a.old_values != nullptr
              ? clipped_value_loss_row(a.values[i], a.targets[i], a.old_values[i], a.clip,
                                       row_valid(a.mask, i), inv_count, a.value_coef, stats)
              : value_loss_row(a.values[i], a.targets[i], row_valid(a.mask, i), inv_count,
                               a.value_coef, stats);
    }
  }

  void do_sample_gaussian(const float* head, int64_t rows, int32_t action_dim, const SampleKey& key,
                          float* actions, float* log_prob, float* entropy) override {
    const int32_t d = action_dim;
    for (int64_t i = 0; i < rows; ++i) {
      gaussian_sample_row(head + i * 2 * d, d, key.seed, key.first_env + static_cast<uint32_t>(i),
                          key.step, actions + i * d, log_prob != nullptr ? log_prob + i : nullptr,
                          entropy != nullptr ? entropy + i : nullptr);
    }
  }

  void do_gaussian_log_prob_entropy(const float* head, int64_t rows, int32_t action_dim,
                                    const float* actions, float* log_prob,
                                    float* entropy) override {
    const int32_t d = action_dim;
    for (int64_t i = 0; i < rows; ++i) {
      const float* z = head + i * 2 * d;
      if (log_prob != nullptr) log_prob[i] = gaussian_log_prob(z, d, actions + i * d);
      if (entropy != nullptr) entropy[i] = gaussian_entropy(z, d);
    }
  }

  void do_gaussian_loss_grad(const GaussianLossArgs& a) override {
    const PolicyLossCoefs coefs{1.0f / *a.count, a.entropy_coef};
    const int32_t d = a.action_dim;
    for (int64_t i = 0; i < a.rows; ++i) {
      float* stats = a.stats != nullptr ? a.stats + i * a.stat_columns : nullptr;
      if (a.old_log_prob != nullptr) {
        clipped_gaussian_policy_loss_row(a.head + i * 2 * d, d, a.actions + i * d, a.weights[i],
                                         a.old_log_prob[i], a.clip, row_valid(a.mask, i), coefs,
                                         a.d_head + i * 2 * d, stats);
      } else {
        gaussian_policy_loss_row(a.head + i * 2 * d, d, a.actions + i * d, a.weights[i],
                                 row_valid(a.mask, i), coefs, a.d_head + i * 2 * d, stats);
      }
    }
  }

  void do_epsilon_greedy(const float* q, int64_t rows, int32_t num_actions, const SampleKey& key,
                         float epsilon, int32_t* actions) override {
    for (int64_t i = 0; i < rows; ++i) {
      actions[i] = epsilon_greedy_row(q + i * num_actions, num_actions, epsilon, key.seed,
                                      key.first_env + static_cast<uint32_t>(i), key.step);
    }
  }

  void do_q_loss_grad(const QLossArgs& a) override {
    check_actions("q_loss_grad", a.actions, a.mask, a.rows, a.num_actions);
    const float inv_count = 1.0f / *a.count;
    const int32_t na = a.num_actions;
    for (int64_t i = 0; i < a.rows; ++i) {
      q_loss_row(a.q + i * na, na, a.actions[i], a.targets[i], a.huber_delta, row_valid(a.mask, i),
                 inv_count, a.d_q + i * na,
                 a.stats != nullptr ? a.stats + i * a.stat_columns : nullptr);
    }
  }

  void do_count_nonzero(const uint8_t* mask, int64_t n, float* out) override {
    int64_t count = 0;
#pragma omp simd reduction(+ : count)
    for (int64_t i = 0; i < n; ++i) count += mask[i] != 0 ? 1 : 0;
    *out = static_cast<float>(count);
  }

  void do_adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                    const AdamScalars& s, const float* grad_norm, float max_grad_norm) override {
    const float scale = grad_norm != nullptr ? clip_scale(*grad_norm, max_grad_norm) : 1.0f;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) adam_update(params + i, grads[i] * scale, m + i, v + i, s);
  }

 private:
  // Out-of-range actions of valid samples would index past the row's logits: refuse them.
  // (The GPU treats such samples as invalid instead, as it cannot throw.)
  static void check_actions(const char* op, const int32_t* actions, const uint8_t* mask,
                            int64_t rows, int32_t num_actions) {
    for (int64_t i = 0; i < rows; ++i) {
      BP_CHECK_ARG(!row_valid(mask, i) || (actions[i] >= 0 && actions[i] < num_actions),
                   op << ": action " << actions[i] << " of sample " << i << " is outside [0, "
                      << num_actions << ")");
    }
  }
};

}  // namespace

std::unique_ptr<NnOps> make_cpu_nn_ops(Device& device) {
  return std::make_unique<CpuNnOps>(device);
}

}  // namespace batchpole
