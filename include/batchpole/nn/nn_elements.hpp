// Element functions of the networks, heads, losses and optimiser: activations, the categorical
// policy head (softmax, sampling, log-probability, entropy), the per-sample loss gradients and
// the Adam update. The CPU loops (host/cpu/cpu_nn_ops.cpp) and the CUDA kernels (kernels/nn_*.cu)
// both call exactly these, so the GPU path only adds launch glue.
//
// exp and log are written with + - * and bit operations only (Cephes' single-precision
// kernels), not libm: glibc's expf and CUDA's __expf/expf differ in the last bits, and with
// these (and no FMA contraction on either side) the same logits give bit-identical
// probabilities, samples and loss terms on the CPU and the GPU.
#pragma once

#include <cstdint>

#include "batchpole/core/common.hpp"
#include "batchpole/core/portable_math.hpp"
#include "batchpole/core/random.hpp"

namespace batchpole {

enum class Activation : uint8_t { kIdentity, kRelu, kTanh };

// The categorical head keeps per-row scratch on the stack; CartPole has 2 actions.
inline constexpr int32_t kMaxActions = 16;

// Columns of the per-sample statistics matrix (rows x kStatColumns) that the loss functions
// fill and one gemv per chunk sums into the device-resident update statistics.
inline constexpr int32_t kStatWeightedLogProb = 0;  // valid ? weight * log pi(a|s) : 0
inline constexpr int32_t kStatEntropy = 1;          // valid ? H(pi(.|s)) : 0
inline constexpr int32_t kStatSquaredError = 2;     // valid ? (v(s) - target)^2 : 0
inline constexpr int32_t kStatValid = 3;            // valid ? 1 : 0
inline constexpr int32_t kStatColumns = 4;
// The clipped surrogate (PPO) keeps two more: the approximate KL divergence of the new policy
// from the one that acted, (r - 1) - log r with r the probability ratio, and whether the ratio
// was clipped. Its kStatWeightedLogProb column holds the surrogate objective.
inline constexpr int32_t kStatApproxKl = 4;
inline constexpr int32_t kStatClipped = 5;
inline constexpr int32_t kStatColumnsClipped = 6;

// ---------------------------------------------------------------------------------------------
// Portable exp and log (Cephes expf / logf), + - * only.

// exp(x) for x <= 88; arguments below -87 return about 1e-38 instead of a denormal or 0, which
// is harmless for softmax (the term is negligible next to exp(0) = 1).
BP_HD float portable_exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kC1 = 0.693359375f;  // ln 2 split so that k * kC1 is exact
  constexpr float kC2 = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: round to nearest without libm
  x = x > 88.0f ? 88.0f : x;
  x = x < -87.0f ? -87.0f : x;
  const float kf = (x * kLog2e + kRound) - kRound;
  const float r = (x - kf * kC1) - kf * kC2;
  const float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * z + r + 1.0f;
  // NaN passes the clamps above; converting it to an integer is undefined, so it takes k = 0
  // (e is NaN already, and so is the result).
  const auto k = static_cast<int32_t>(kf == kf ? kf : 0.0f);
  const float scale = bit_cast_hd<float>(static_cast<uint32_t>(k + 127) << 23U);
  return e * scale;
}

// log(x) for positive normal x (the softmax normaliser, always >= 1 here).
BP_HD float portable_log(float x) {
  constexpr float kSqrtHalf = 0.707106781186547524f;
  const uint32_t bits = bit_cast_hd<uint32_t>(x);
  auto e = static_cast<int32_t>((bits >> 23U) & 0xFFU) - 126;
  float m = bit_cast_hd<float>((bits & 0x807FFFFFU) | (126U << 23U));  // in [0.5, 1)
  if (m < kSqrtHalf) {
    e -= 1;
    m = m + m - 1.0f;
  } else {
    m = m - 1.0f;
  }
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  const auto ef = static_cast<float>(e);
  y += -2.12194440e-4f * ef;
  y += -0.5f * z;
  return (m + y) + 0.693359375f * ef;
}

// tanh(x) (Cephes tanhf): an odd polynomial below |x| = 0.625, 1 - 2 / (exp(2|x|) + 1) above
// (no cancellation there), +-1 from |x| = 9.5 on (where float tanh rounds to 1). CUDA's tanhf
// is ex2.approx and FMAs, so a tanh network calls this one on both devices.
BP_HD float portable_tanh(float x) {
  const float ax = x < 0.0f ? -x : x;
  if (ax >= 0.625f) {
    const float t = ax >= 9.5f ? 1.0f : 1.0f - 2.0f / (portable_exp(2.0f * ax) + 1.0f);
    return x < 0.0f ? -t : t;
  }
  const float z = x * x;  // NaN lands here and stays NaN
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  return p * z * x + x;
}

// ---------------------------------------------------------------------------------------------
// Activations. Backward uses the activation's output y (what forward stores), not its input.

BP_HD float activate(Activation a, float x) {
  switch (a) {
    case Activation::kRelu:
      return x > 0.0f ? x : 0.0f;
    case Activation::kTanh:
      return portable_tanh(x);
    case Activation::kIdentity:
    default:
      return x;
  }
}

// The gradient through the activation: dy * activate'(x), written in terms of the output
// y = activate(a, x). ReLU is a select, not a multiplication by 0 or 1, so that the CPU loop
// vectorises to a compare and a mask.
BP_HD float activation_backward_value(Activation a, float dy, float y) {
  switch (a) {
    case Activation::kRelu:
      return y > 0.0f ? dy : 0.0f;
    case Activation::kTanh:
      return dy * (1.0f - y * y);
    case Activation::kIdentity:
    default:
      return dy;
  }
}

// ---------------------------------------------------------------------------------------------
// Categorical policy head over one row of n logits z.

// The action count a row of room N works with: n itself for the general N, else N.
template <int32_t N>
BP_HD constexpr int32_t actions_of(int32_t n) {
  return N < kMaxActions ? N : n;
}

// The row's softmax pieces: e[j] = exp(z[j] - max), sum = sum_j e[j], so that
// pi(j) = e[j] / sum and log pi(j) = (z[j] - max) - log(sum). (Subtracting max first keeps
// log pi accurate for large logits: max + log(sum) would round at the logits' magnitude.)
//
// N is the room for the row: kMaxActions holds any count up to it; a smaller N means exactly N
// actions, so that loops have a fixed trip count and e[] stays in registers on the GPU (the
// kernels instantiate N = 2, CartPole's). The arithmetic is the same either way.
template <int32_t N = kMaxActions>
struct SoftmaxRowT {
  float e[N];
  float max;
  float sum;
  float log_sum;
  [[nodiscard]] BP_HD float log_prob(const float* z, int32_t j) const {
    return (z[j] - max) - log_sum;
  }
  [[nodiscard]] BP_HD float prob(int32_t j) const { return e[j] / sum; }
  [[nodiscard]] BP_HD float entropy(const float* z, int32_t n) const {
    float h = 0.0f;
    for (int32_t j = 0; j < actions_of<N>(n); ++j) h -= prob(j) * log_prob(z, j);
    return h;
  }
};
using SoftmaxRow = SoftmaxRowT<>;

template <int32_t N = kMaxActions>
BP_HD SoftmaxRowT<N> softmax_row(const float* z, int32_t n) {
  n = actions_of<N>(n);
  SoftmaxRowT<N> s{};
  s.max = z[0];
  for (int32_t j = 1; j < n; ++j) s.max = z[j] > s.max ? z[j] : s.max;
  s.sum = 0.0f;
  for (int32_t j = 0; j < n; ++j) {
    s.e[j] = portable_exp(z[j] - s.max);
    s.sum += s.e[j];
  }
  s.log_sum = portable_log(s.sum);
  return s;
}

// NaN for an action outside [0, n).
template <int32_t N = kMaxActions>
BP_HD float categorical_log_prob(const float* z, int32_t n, int32_t action) {
  if (action < 0 || action >= n) return bit_cast_hd<float>(0x7FC00000U);
  return softmax_row<N>(z, n).log_prob(z, action);
}

template <int32_t N = kMaxActions>
BP_HD float categorical_entropy(const float* z, int32_t n) {
  return softmax_row<N>(z, n).entropy(z, n);
}

// Inverse-CDF sampling with u in [0, 1): the first j whose cumulative weight exceeds u * sum.
// Comparing unnormalised weights avoids a division per action; the last action catches u * sum
// rounding up to the total.
template <int32_t N = kMaxActions>
BP_HD int32_t categorical_sample(const SoftmaxRowT<N>& s, int32_t n, float u) {
  n = actions_of<N>(n);
  const float target = u * s.sum;
  float cum = 0.0f;
  for (int32_t j = 0; j < n - 1; ++j) {
    cum += s.e[j];
    if (target < cum) return j;
  }
  return n - 1;
}

// The uniform number behind the action of env `env` at the trainer's step counter `step`. A pure
// function of (seed, env, step): the same on both devices and for any batch split.
BP_HD float policy_uniform(uint64_t seed, uint32_t env, uint64_t step) {
  return uniform_float(philox_draw(seed, Stream::kPolicyAction, env, step)[0]);
}

// Samples an action for one row and returns it; writes its log-probability and the row's
// entropy where asked (nullptr: not wanted).
template <int32_t N = kMaxActions>
BP_HD int32_t policy_sample_row(const float* z, int32_t n, float u, float* log_prob,
                                float* entropy) {
  n = actions_of<N>(n);
  const SoftmaxRowT<N> s = softmax_row<N>(z, n);
  const int32_t a = categorical_sample(s, n, u);
  if (log_prob != nullptr) *log_prob = s.log_prob(z, a);
  if (entropy != nullptr) *entropy = s.entropy(z, n);
  return a;
}

// The policy-gradient loss of one sample and its gradient with respect to the logits.
// The whole loss is L = -(sum_s w_s log pi(a_s|s)) / C - beta * (sum_s H_s) / C over valid
// samples, so this sample contributes
//   dL/dz_j = -(w (1[j = a] - p_j) + beta dH/dz_j) / C,   dH/dz_j = -p_j (log p_j + H).
// Invalid samples give exact zeros (selects, not multiplications, so NaN weights in masked
// slots cannot leak in). stats: one row of kStatColumns, or nullptr.
struct PolicyLossCoefs {
  float inv_count;     // 1 / C
  float entropy_coef;  // beta
};

template <int32_t N = kMaxActions>
BP_HD void policy_loss_row(const float* z, int32_t n, int32_t action, float weight, bool valid,
                           const PolicyLossCoefs& c, float* dz, float* stats) {
  n = actions_of<N>(n);
  // An action outside [0, n) makes the sample invalid rather than reading past the row (the CPU
  // refuses such actions before it gets here; the GPU cannot throw).
  valid = valid && action >= 0 && action < n;
  action = valid ? action : 0;
  const SoftmaxRowT<N> s = softmax_row<N>(z, n);
  const float h = s.entropy(z, n);
  const float logp_a = s.log_prob(z, action);
  for (int32_t j = 0; j < n; ++j) {
    const float p = s.prob(j);
    const float logp = s.log_prob(z, j);
    const float indicator = j == action ? 1.0f : 0.0f;
    const float d = -(weight * (indicator - p) - c.entropy_coef * p * (logp + h)) * c.inv_count;
    dz[j] = valid ? d : 0.0f;
  }
  if (stats != nullptr) {
    stats[kStatWeightedLogProb] = valid ? weight * logp_a : 0.0f;
    stats[kStatEntropy] = valid ? h : 0.0f;
    stats[kStatSquaredError] = 0.0f;  // value_loss_row, run after this when there is a value loss
    stats[kStatValid] = valid ? 1.0f : 0.0f;
  }
}

// PPO's clipped surrogate (Schulman et al. 2017) of one sample and its gradient with respect
// to the logits. With r = pi(a|s) / pi_old(a|s) = exp(log pi - old_log_prob) and the advantage
// A, the loss is L = -(sum_s min(r A, clip(r, 1 - eps, 1 + eps) A)) / C - beta (sum_s H_s) / C.
// The gradient flows through r A unless the clipped term is the smaller one, where it is 0:
//   dL/dz_j = -(A r [active] (1[j = a] - p_j) + beta dH/dz_j) / C,
// which is policy_loss_row's with the weight A r [active]. stats: kStatColumnsClipped columns.
template <int32_t N = kMaxActions>
BP_HD void clipped_policy_loss_row(const float* z, int32_t n, int32_t action, float advantage,
                                   float old_log_prob, float clip, bool valid,
                                   const PolicyLossCoefs& c, float* dz, float* stats) {
  n = actions_of<N>(n);
  valid = valid && action >= 0 && action < n;
  action = valid ? action : 0;
  const SoftmaxRowT<N> s = softmax_row<N>(z, n);
  const float h = s.entropy(z, n);
  const float log_ratio = s.log_prob(z, action) - old_log_prob;
  const float ratio = portable_exp(log_ratio);
  const float lo = 1.0f - clip;
  const float hi = 1.0f + clip;
  const float clipped_ratio = ratio < lo ? lo : (ratio > hi ? hi : ratio);
  const float surr1 = ratio * advantage;
  const float surr2 = clipped_ratio * advantage;
  const bool active = !(surr2 < surr1);
  const float weight = active ? advantage * ratio : 0.0f;
  for (int32_t j = 0; j < n; ++j) {
    const float p = s.prob(j);
    const float logp = s.log_prob(z, j);
    const float indicator = j == action ? 1.0f : 0.0f;
    const float d = -(weight * (indicator - p) - c.entropy_coef * p * (logp + h)) * c.inv_count;
    dz[j] = valid ? d : 0.0f;
  }
  if (stats != nullptr) {
    stats[kStatWeightedLogProb] = valid ? (surr1 < surr2 ? surr1 : surr2) : 0.0f;
    stats[kStatEntropy] = valid ? h : 0.0f;
    stats[kStatSquaredError] = 0.0f;
    stats[kStatValid] = valid ? 1.0f : 0.0f;
    stats[kStatApproxKl] = valid ? (ratio - 1.0f) - log_ratio : 0.0f;
    stats[kStatClipped] = valid && (ratio < lo || ratio > hi) ? 1.0f : 0.0f;
  }
}

// The value loss with PPO's clipping: the larger of (v - target)^2 and (v_clipped - target)^2
// with v_clipped = old_value + clip(v - old_value, -eps, eps); no gradient where the clipped
// term is the larger (v_clipped does not move with v there).
BP_HD float clipped_value_loss_row(float value, float target, float old_value, float clip,
                                   bool valid, float inv_count, float coef, float* stats) {
  const float delta = value - old_value;
  const float clipped = old_value + (delta < -clip ? -clip : (delta > clip ? clip : delta));
  const float err = value - target;
  const float err_clipped = clipped - target;
  const bool unclipped_larger = !(err_clipped * err_clipped > err * err);
  const float sq = unclipped_larger ? err * err : err_clipped * err_clipped;
  if (stats != nullptr) {
    stats[kStatSquaredError] = valid ? sq : 0.0f;
    stats[kStatValid] = valid ? 1.0f : 0.0f;
  }
  return valid && unclipped_larger ? 2.0f * coef * err * inv_count : 0.0f;
}

// The value loss coef * (sum_s (v_s - target_s)^2) / C of one sample and its gradient.
BP_HD float value_loss_row(float value, float target, bool valid, float inv_count, float coef,
                           float* stats) {
  const float err = value - target;
  if (stats != nullptr) {
    stats[kStatSquaredError] = valid ? err * err : 0.0f;
    stats[kStatValid] = valid ? 1.0f : 0.0f;
  }
  return valid ? 2.0f * coef * err * inv_count : 0.0f;
}

// ---------------------------------------------------------------------------------------------
// Gaussian policy head (continuous actions, the notebook's section 10) over one row of 2d
// outputs: z[0, d) the means mu, z[d, 2d) the log standard deviations s, one per action
// dimension (a diagonal Gaussian; the log-probability sums over dimensions, as the notebook's
// `.sum(-1)`). With u = (a - mu) / sigma, sigma = exp(s):
//   log pi(a) = sum_k -u_k^2 / 2 - s_k - log(2 pi) / 2,     H = sum_k s_k + (1 + log(2 pi)) / 2,
//   d log pi / d mu_k = u_k / sigma_k,   d log pi / d s_k = u_k^2 - 1,   dH / ds_k = 1.
// The log-probability is of the action as sampled; the environment clips it (the usual
// practice, which keeps the density exact).

inline constexpr int32_t kMaxActionDims = kMaxActions / 2;
inline constexpr float kHalfLog2Pi = 0.918938533204672742f;  // log(2 pi) / 2

BP_HD float gaussian_log_prob(const float* z, int32_t d, const float* action) {
  float lp = 0.0f;
  for (int32_t k = 0; k < d; ++k) {
    const float s = z[d + k];
    const float u = (action[k] - z[k]) * portable_exp(-s);
    lp += (-0.5f * (u * u) - s) - kHalfLog2Pi;
  }
  return lp;
}

BP_HD float gaussian_entropy(const float* z, int32_t d) {
  float h = 0.0f;
  for (int32_t k = 0; k < d; ++k) h += z[d + k] + (0.5f + kHalfLog2Pi);
  return h;
}

// Four standard normals from one Philox draw: Box-Muller on words (0, 1) and (2, 3), with
// portable log and sin/cos and IEEE sqrt, so both devices draw the same bits.
BP_HD void standard_normals(const Philox4x32::Counter& r, float* out) {
  for (int p = 0; p < 2; ++p) {
    // u1 in (0, 1] keeps the log finite; u2 in [0, 1).
    const float u1 = static_cast<float>((r[2 * p] >> 8U) + 1U) * 0x1.0p-24f;
    const float u2 = uniform_float(r[2 * p + 1]);
    const float radius = sqrtf(-2.0f * portable_log(u1));
    float sn;
    float cs;
    portable_sincos(6.28318530717958648f * u2, &sn, &cs);
    out[2 * p] = radius * cs;
    out[2 * p + 1] = radius * sn;
  }
}

// The standard normal behind dimension k of env `env`'s action at acting step `step`.
BP_HD float policy_normal(uint64_t seed, uint32_t env, uint64_t step, int32_t k) {
  float n[4];
  standard_normals(
      philox_draw(seed, Stream::kPolicyNoise, env, 2 * step + static_cast<uint64_t>(k >> 2)), n);
  return n[k & 3];
}

// Samples a = mu + sigma * eps for one row into action[0, d); writes log pi(a) and the entropy
// where asked (nullptr: not wanted).
BP_HD void gaussian_sample_row(const float* z, int32_t d, uint64_t seed, uint32_t env,
                               uint64_t step, float* action, float* log_prob, float* entropy) {
  float n[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int32_t k = 0; k < d; ++k) {
    if ((k & 3) == 0) {
      standard_normals(
          philox_draw(seed, Stream::kPolicyNoise, env, 2 * step + static_cast<uint64_t>(k >> 2)),
          n);
    }
    action[k] = z[k] + portable_exp(z[d + k]) * n[k & 3];
  }
  if (log_prob != nullptr) *log_prob = gaussian_log_prob(z, d, action);
  if (entropy != nullptr) *entropy = gaussian_entropy(z, d);
}

// The gradient of -(w log pi(a) + beta H) / C with respect to the row's means and log-stds
// (zeros for an invalid sample: selects, so that NaN in masked slots cannot leak in). Returns
// log pi(a).
BP_HD float gaussian_loss_grad_row(const float* z, int32_t d, const float* action, float weight,
                                   bool valid, const PolicyLossCoefs& c, float* dz) {
  float lp = 0.0f;
  for (int32_t k = 0; k < d; ++k) {
    const float s = z[d + k];
    const float inv_sigma = portable_exp(-s);
    const float u = (action[k] - z[k]) * inv_sigma;
    lp += (-0.5f * (u * u) - s) - kHalfLog2Pi;
    const float d_mean = -(weight * (u * inv_sigma)) * c.inv_count;
    const float d_log_std = -(weight * (u * u - 1.0f) + c.entropy_coef) * c.inv_count;
    dz[k] = valid ? d_mean : 0.0f;
    dz[d + k] = valid ? d_log_std : 0.0f;
  }
  return lp;
}

// The policy-gradient loss of one sample (policy_loss_row's, for the Gaussian head).
BP_HD void gaussian_policy_loss_row(const float* z, int32_t d, const float* action, float weight,
                                    bool valid, const PolicyLossCoefs& c, float* dz, float* stats) {
  const float lp = gaussian_loss_grad_row(z, d, action, weight, valid, c, dz);
  if (stats != nullptr) {
    stats[kStatWeightedLogProb] = valid ? weight * lp : 0.0f;
    stats[kStatEntropy] = valid ? gaussian_entropy(z, d) : 0.0f;
    stats[kStatSquaredError] = 0.0f;
    stats[kStatValid] = valid ? 1.0f : 0.0f;
  }
}

// PPO's clipped surrogate of one sample (clipped_policy_loss_row's, for the Gaussian head): the
// gradient flows through r A with r = exp(log pi(a) - old_log_prob) unless the clipped term is
// the smaller one.
BP_HD void clipped_gaussian_policy_loss_row(const float* z, int32_t d, const float* action,
                                            float advantage, float old_log_prob, float clip,
                                            bool valid, const PolicyLossCoefs& c, float* dz,
                                            float* stats) {
  const float log_ratio = gaussian_log_prob(z, d, action) - old_log_prob;
  const float ratio = portable_exp(log_ratio);
  const float lo = 1.0f - clip;
  const float hi = 1.0f + clip;
  const float clipped_ratio = ratio < lo ? lo : (ratio > hi ? hi : ratio);
  const float surr1 = ratio * advantage;
  const float surr2 = clipped_ratio * advantage;
  const bool active = !(surr2 < surr1);
  gaussian_loss_grad_row(z, d, action, active ? advantage * ratio : 0.0f, valid, c, dz);
  if (stats != nullptr) {
    stats[kStatWeightedLogProb] = valid ? (surr1 < surr2 ? surr1 : surr2) : 0.0f;
    stats[kStatEntropy] = valid ? gaussian_entropy(z, d) : 0.0f;
    stats[kStatSquaredError] = 0.0f;
    stats[kStatValid] = valid ? 1.0f : 0.0f;
    stats[kStatApproxKl] = valid ? (ratio - 1.0f) - log_ratio : 0.0f;
    stats[kStatClipped] = valid && (ratio < lo || ratio > hi) ? 1.0f : 0.0f;
  }
}

// ---------------------------------------------------------------------------------------------
// Q-learning head (DQN) over one row of n Q-values.

// The first action with the largest Q-value (NaN is never the largest).
BP_HD int32_t argmax_row(const float* q, int32_t n) {
  int32_t best = 0;
  for (int32_t j = 1; j < n; ++j) best = q[j] > q[best] ? j : best;
  return best;
}

// Epsilon-greedy: with probability epsilon a uniformly random action, else argmax Q. One draw
// (kExplore, env, step): word 0 decides, word 1 picks the random action.
BP_HD int32_t epsilon_greedy_row(const float* q, int32_t n, float epsilon, uint64_t seed,
                                 uint32_t env, uint64_t step) {
  const auto r = philox_draw(seed, Stream::kExplore, env, step);
  if (uniform_float(r[0]) < epsilon) {
    return static_cast<int32_t>((static_cast<uint64_t>(r[1]) * static_cast<uint64_t>(n)) >> 32U);
  }
  return argmax_row(q, n);
}

// The Huber loss of one sample's TD error, delta (Q(s, a) - y) / C with the Huber function
// delta (PyTorch's smooth_l1_loss for delta 1: quadratic inside [-delta, delta], linear
// outside), and its gradient with respect to the row's Q-values: clip(Q(s, a) - y, -delta,
// delta) / C at the action taken, 0 elsewhere. The target y is held fixed (the target network's,
// no gradient). stats: the Huber loss in kStatSquaredError.
BP_HD void q_loss_row(const float* q, int32_t n, int32_t action, float target, float delta,
                      bool valid, float inv_count, float* dq, float* stats) {
  valid = valid && action >= 0 && action < n;
  action = valid ? action : 0;
  const float err = q[action] - target;
  const float abs_err = err < 0.0f ? -err : err;
  const float loss = abs_err <= delta ? 0.5f * (err * err) : delta * (abs_err - 0.5f * delta);
  const float g = (err < -delta ? -delta : (err > delta ? delta : err)) * inv_count;
  for (int32_t j = 0; j < n; ++j) dq[j] = valid && j == action ? g : 0.0f;
  if (stats != nullptr) {
    stats[kStatWeightedLogProb] = 0.0f;
    stats[kStatEntropy] = 0.0f;
    stats[kStatSquaredError] = valid ? loss : 0.0f;
    stats[kStatValid] = valid ? 1.0f : 0.0f;
  }
}

// ---------------------------------------------------------------------------------------------
// Initialisation as PyTorch's nn.Linear: uniform in [-bound, bound) with bound = 1/sqrt(fan_in),
// element i of parameter block `block` taken from word i % 4 of draw (block, i / 4).
BP_HD float init_uniform_value(uint64_t seed, uint32_t block, int64_t i, float bound) {
  const auto r = philox_draw(seed, Stream::kInit, block, static_cast<uint64_t>(i) >> 2U);
  const float u = uniform_float(r[static_cast<uint32_t>(i) & 3U]);
  return (2.0f * u - 1.0f) * bound;
}

// ---------------------------------------------------------------------------------------------
// Optimiser.

// torch.nn.utils.clip_grad_norm_: gradients are scaled by max_norm / (total_norm + 1e-6) when
// total_norm exceeds max_norm. max_norm <= 0 means no clipping.
BP_HD float clip_scale(float total_norm, float max_norm) {
  return (max_norm > 0.0f && total_norm > max_norm) ? max_norm / (total_norm + 1e-6f) : 1.0f;
}

// One Adam step's scalars, worked out on the host from the step count t (PyTorch's
// torch.optim.Adam, single-tensor path): step_size = lr / (1 - beta1^t),
// bias_correction2_sqrt = sqrt(1 - beta2^t).
// 1 - beta is rounded from double, as PyTorch does with its Python-float betas: 1.0f - 0.999f
// would be off by 1.3e-5 relative.
struct AdamScalars {
  float beta2;
  float one_minus_beta1;
  float one_minus_beta2;
  float eps;
  float step_size;
  float bias_correction2_sqrt;
};

// m <- lerp(m, g, 1 - beta1) (PyTorch's form: m + (1 - beta1)(g - m)),
// v <- beta2 v + (1 - beta2) g^2,
// p <- p - step_size * m / (sqrt(v) / bias_correction2_sqrt + eps).
BP_HD void adam_update(float* p, float g, float* m, float* v, const AdamScalars& s) {
  const float m_new = *m + s.one_minus_beta1 * (g - *m);
  const float v_new = *v * s.beta2 + s.one_minus_beta2 * g * g;
  const float denom = sqrtf(v_new) / s.bias_correction2_sqrt + s.eps;
  *m = m_new;
  *v = v_new;
  *p = *p - s.step_size * (m_new / denom);
}

}  // namespace batchpole
