// NnOps on the CPU: loops over the element functions of nn_elements.hpp (the CUDA kernels call
// the same ones), vectorised, on the calling thread. The parallelism is one level up: the model
// runs whole shards of the batch as tasks on the device's threads (host/nn/sharded_runner.cpp),
// and each task calls these loops and single-threaded OpenBLAS on its own shard.
#include <algorithm>

#include "batchpole/nn/blas.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "cpu_device.hpp"

namespace batchpole {

namespace {

// Rows of rows_per_agent each add the bias of their agent (bias_stride floats apart).
template <Activation A>
void bias_activation_loop(float* __restrict__ y, const float* __restrict__ bias, int64_t rows,
                          int64_t cols, int64_t rows_per_agent, int64_t bias_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    float* __restrict__ row = y + r * cols;
    const float* __restrict__ b = bias + (r / rows_per_agent) * bias_stride;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) row[c] = activate(A, row[c] + b[c]);
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
  void do_fill(float* x, int64_t n, float value, int64_t agents, int64_t stride) override {
    for (int64_t k = 0; k < agents; ++k) std::fill(x + k * stride, x + k * stride + n, value);
  }

  void do_init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block) override {
    for (int64_t i = 0; i < n; ++i) x[i] = init_uniform_value(seed, block, i, bound);
  }

  void do_bias_activation(float* y, const float* bias, int64_t rows, int64_t cols, Activation act,
                          int64_t rows_per_agent, int64_t bias_stride) override {
    switch (act) {
      case Activation::kRelu:
        bias_activation_loop<Activation::kRelu>(y, bias, rows, cols, rows_per_agent, bias_stride);
        break;
      case Activation::kTanh:
        bias_activation_loop<Activation::kTanh>(y, bias, rows, cols, rows_per_agent, bias_stride);
        break;
      case Activation::kIdentity:
        bias_activation_loop<Activation::kIdentity>(y, bias, rows, cols, rows_per_agent,
                                                    bias_stride);
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
                         const SampleKey& key, int32_t* actions, float* log_prob, float* entropy,
                         const AgentRows& out) override {
    for (int64_t i = 0; i < rows; ++i) {
      const float u = sample_uniform(key, out, i);
      const int64_t o = out.at(i);
      actions[o] = policy_sample_row(logits + i * num_actions, num_actions, u,
                                     log_prob != nullptr ? log_prob + o : nullptr,
                                     entropy != nullptr ? entropy + o : nullptr);
    }
  }

  void do_log_prob_entropy(const float* logits, int64_t rows, int32_t num_actions,
                           const int32_t* actions, float* log_prob, float* entropy) override {
    if (log_prob != nullptr) {
      for (int64_t i = 0; i < rows; ++i) {
        BP_CHECK_ARG(actions[i] >= 0 && actions[i] < num_actions,
                     "log_prob_entropy: action " << actions[i] << " of sample " << i
                                                 << " is outside [0, " << num_actions << ")");
      }
    }
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
    check_actions("policy_loss_grad", a.actions, a.mask, a.rows, a.num_actions, a.in);
    const int32_t na = a.num_actions;
    for (int64_t i = 0; i < a.rows; ++i) {
      const PolicyLossCoefs coefs{1.0f / a.count[a.in.agent(i)], a.entropy_coef};
      const int64_t k = a.in.at(i);
      float* stats = a.stats != nullptr ? a.stats + i * a.stat_columns : nullptr;
      if (a.old_log_prob != nullptr) {
        clipped_policy_loss_row(a.logits + i * na, na, a.actions[k], a.weights[k],
                                a.old_log_prob[k], a.clip, row_valid(a.mask, k), coefs,
                                a.d_logits + i * na, stats);
      } else {
        policy_loss_row(a.logits + i * na, na, a.actions[k], a.weights[k], row_valid(a.mask, k),
                        coefs, a.d_logits + i * na, stats);
      }
    }
  }

  void do_value_loss_grad(const ValueLossArgs& a) override {
    for (int64_t i = 0; i < a.rows; ++i) {
      const int64_t agent = a.in.agent(i);
      const float inv_count = 1.0f / a.count[agent];
      const float coef = a.value_coefs != nullptr ? a.value_coefs[agent] : a.value_coef;
      const int64_t k = a.in.at(i);
      float* stats = a.stats != nullptr ? a.stats + i * a.stat_columns : nullptr;
      a.d_values[i] =
          a.old_values != nullptr
              ? clipped_value_loss_row(a.values[i], a.targets[k], a.old_values[k], a.clip,
                                       row_valid(a.mask, k), inv_count, coef, stats)
              : value_loss_row(a.values[i], a.targets[k], row_valid(a.mask, k), inv_count, coef,
                               stats);
    }
  }

  void do_sample_gaussian(const float* head, int64_t rows, int32_t action_dim, const SampleKey& key,
                          float* actions, float* log_prob, float* entropy,
                          const AgentRows& out) override {
    const int32_t d = action_dim;
    for (int64_t i = 0; i < rows; ++i) {
      const SampleSite site = sample_site(key, out, i);
      const int64_t o = out.at(i);
      gaussian_sample_row(head + i * 2 * d, d, site.seed, site.env, site.step, actions + o * d,
                          log_prob != nullptr ? log_prob + o : nullptr,
                          entropy != nullptr ? entropy + o : nullptr);
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
    const int32_t d = a.action_dim;
    for (int64_t i = 0; i < a.rows; ++i) {
      const PolicyLossCoefs coefs{1.0f / a.count[a.in.agent(i)], a.entropy_coef};
      const int64_t k = a.in.at(i);
      float* stats = a.stats != nullptr ? a.stats + i * a.stat_columns : nullptr;
      if (a.old_log_prob != nullptr) {
        clipped_gaussian_policy_loss_row(a.head + i * 2 * d, d, a.actions + k * d, a.weights[k],
                                         a.old_log_prob[k], a.clip, row_valid(a.mask, k), coefs,
                                         a.d_head + i * 2 * d, stats);
      } else {
        gaussian_policy_loss_row(a.head + i * 2 * d, d, a.actions + k * d, a.weights[k],
                                 row_valid(a.mask, k), coefs, a.d_head + i * 2 * d, stats);
      }
    }
  }

  void do_epsilon_greedy(const float* q, int64_t rows, int32_t num_actions, const SampleKey& key,
                         float epsilon, int32_t* actions, const AgentRows& out,
                         const float* epsilons) override {
    for (int64_t i = 0; i < rows; ++i) {
      const SampleSite site = sample_site(key, out, i);
      const float eps = epsilons != nullptr ? epsilons[out.agent(i)] : epsilon;
      actions[out.at(i)] =
          epsilon_greedy_row(q + i * num_actions, num_actions, eps, site.seed, site.env, site.step);
    }
  }

  void do_q_loss_grad(const QLossArgs& a) override {
    check_actions("q_loss_grad", a.actions, a.mask, a.rows, a.num_actions, a.in);
    const int32_t na = a.num_actions;
    for (int64_t i = 0; i < a.rows; ++i) {
      const int64_t k = a.in.at(i);
      q_loss_row(a.q + i * na, na, a.actions[k], a.targets[k], a.huber_delta, row_valid(a.mask, k),
                 1.0f / a.count[a.in.agent(i)], a.d_q + i * na,
                 a.stats != nullptr ? a.stats + i * a.stat_columns : nullptr);
    }
  }

  void do_count_nonzero(const uint8_t* mask, int64_t n, float* out, int64_t agents,
                        int64_t stride) override {
    for (int64_t k = 0; k < agents; ++k) {
      const uint8_t* m = mask + k * stride;
      int64_t count = 0;
#pragma omp simd reduction(+ : count)
      for (int64_t i = 0; i < n; ++i) count += m[i] != 0 ? 1 : 0;
      out[k] = static_cast<float>(count);
    }
  }

  // Through the device's BLAS, one agent at a time: the norm an agent alone would get.
  void do_norms(const float* x, int64_t n, int64_t agents, int64_t stride, float* out,
                int64_t out_stride) override {
    for (int64_t k = 0; k < agents; ++k) {
      out[k * out_stride] = cpu_nrm2(static_cast<int>(n), x + k * stride);
    }
  }

  void do_adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                    const AdamScalars& s, const float* grad_norm, float max_grad_norm,
                    const AdamAgents& agents) override {
    for (int64_t k = 0; k < agents.agents; ++k) {
      if (agents.active != nullptr && agents.active[k] == 0) continue;
      const float scale = grad_norm != nullptr
                              ? clip_scale(grad_norm[k * agents.norm_stride], max_grad_norm)
                              : 1.0f;
      const AdamScalars& sk = agents.scalars != nullptr ? agents.scalars[k] : s;
      float* p = params + k * agents.stride;
      const float* g = grads + k * agents.stride;
      float* mk = m + k * agents.state_stride;
      float* vk = v + k * agents.state_stride;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) adam_update(p + i, g[i] * scale, mk + i, vk + i, sk);
    }
  }

 private:
  // Out-of-range actions of valid samples would index past the row's logits: refuse them.
  // (The GPU treats such samples as invalid instead, as it cannot throw.)
  static void check_actions(const char* op, const int32_t* actions, const uint8_t* mask,
                            int64_t rows, int32_t num_actions, const AgentRows& in) {
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t k = in.at(i);
      BP_CHECK_ARG(!row_valid(mask, k) || (actions[k] >= 0 && actions[k] < num_actions),
                   op << ": action " << actions[k] << " of sample " << i << " is outside [0, "
                      << num_actions << ")");
    }
  }
};

}  // namespace

std::unique_ptr<NnOps> make_cpu_nn_ops(Device& device) {
  return std::make_unique<CpuNnOps>(device);
}

}  // namespace batchpole
