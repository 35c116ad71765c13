// What the learners share: returns, advantages and their normalisation, the valid count.
#include <algorithm>

#include "learner.hpp"

namespace batchpole {

namespace {
constexpr float kNormalizeEps = 1e-8F;
}  // namespace

void compute_returns(const LearnContext& ctx, const float* last_value,
                     const float* truncation_value) {
  Rollout& r = ctx.rollout;
  ReturnsArgs a;
  a.rewards = r.rewards.data();
  a.terminated = r.terminated.data();
  a.truncated = r.truncated.data();
  a.last_value = last_value;
  a.truncation_value = truncation_value;
  a.gamma = ctx.config.gamma;
  a.steps = ctx.steps;
  a.envs = r.envs;
  a.returns = r.returns.data();
  ctx.device.rl().returns(a);
}

const float* advantage_weights(const LearnContext& ctx, bool subtract_values) {
  Rollout& r = ctx.rollout;
  RlOps& rl = ctx.device.rl();
  const int64_t rows = ctx.steps * r.envs;
  const float* weights = r.returns.data();
  if (subtract_values) {
    rl.subtract(r.returns.data(), r.values.data(), rows, r.weights.data());
    weights = r.weights.data();
  } else if (ctx.config.normalize) {
    ctx.device.copy_on_device(r.weights.data(), r.returns.data(),
                              static_cast<std::size_t>(rows) * sizeof(float));
    weights = r.weights.data();
  }
  if (ctx.config.normalize) {
    rl.moments(weights, ctx.mask, rows, r.moments.data());
    rl.normalize(r.weights.data(), ctx.mask, rows, r.moments.data(), kNormalizeEps);
  }
  return weights;
}

double valid_samples(const LearnContext& ctx) {
  return ctx.mask != nullptr ? ctx.tally.length_sum
                             : static_cast<double>(ctx.steps * ctx.rollout.envs);
}

}  // namespace batchpole
