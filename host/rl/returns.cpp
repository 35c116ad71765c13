// What the learners share: returns, advantages and their normalisation, the valid count.
#include <algorithm>

#include "learner.hpp"

namespace batchpole {

void Learner::restore_state(const std::vector<unsigned char>& bytes) {
  BP_CHECK_ARG(bytes.empty(), "the checkpoint holds " << bytes.size()
                                                      << " bytes of learner state that this "
                                                         "algorithm does not have");
}

ModelConfig with_action_head(const ModelConfig& config, const TrainConfig& c) {
  if (c.actions == ActionSpace::kDiscrete) return config;
  return config.with_gaussian_head(1, c.state_dependent_std, c.log_std_init);
}

void set_actions(RolloutView& view, Rollout& rollout) {
  if (rollout.spec.continuous) {
    view.continuous_actions = rollout.continuous_actions.data();
  } else {
    view.actions = rollout.actions.data();
  }
}

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
    rl.moments(r.returns.data(), ctx.mask, rows, r.fit.data());
    rl.moments(r.weights.data(), ctx.mask, rows, r.fit.data() + 1);
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

std::pair<const float*, const float*> bootstrap_values(const LearnContext& ctx) {
  Rollout& r = ctx.rollout;
  const float* last_value = nullptr;
  if (ctx.mask == nullptr) {
    ctx.model.values(ConstMatrix{ctx.env.obs(), r.envs, 4}, r.last_value.data());
    last_value = r.last_value.data();
  }
  const float* truncation_value = nullptr;
  if (ctx.tally.truncations > 0) {
    ctx.model.values(ConstMatrix{r.final_obs.data(), ctx.steps * r.envs, 4},
                     r.truncation_value.data());
    truncation_value = r.truncation_value.data();
  }
  return {last_value, truncation_value};
}

void gae(const LearnContext& ctx, const float* last_value, const float* truncation_value,
         float lambda) {
  Rollout& r = ctx.rollout;
  GaeArgs a;
  a.rewards = r.rewards.data();
  a.terminated = r.terminated.data();
  a.truncated = r.truncated.data();
  a.values = r.values.data();
  a.last_value = last_value;
  a.truncation_value = truncation_value;
  a.gamma = ctx.config.gamma;
  a.lambda = lambda;
  a.steps = ctx.steps;
  a.envs = r.envs;
  a.advantages = r.weights.data();
  a.returns = r.returns.data();
  RlOps& rl = ctx.device.rl();
  rl.gae(a);
  const int64_t rows = ctx.steps * r.envs;
  rl.moments(r.returns.data(), ctx.mask, rows, r.fit.data());
  rl.moments(r.weights.data(), ctx.mask, rows, r.fit.data() + 1);
}

const float* normalized_advantages(const LearnContext& ctx) {
  Rollout& r = ctx.rollout;
  if (ctx.config.normalize) {
    const int64_t rows = ctx.steps * r.envs;
    RlOps& rl = ctx.device.rl();
    rl.moments(r.weights.data(), ctx.mask, rows, r.moments.data());
    rl.normalize(r.weights.data(), ctx.mask, rows, r.moments.data(), kNormalizeEps);
  }
  return r.weights.data();
}

double valid_samples(const LearnContext& ctx) {
  return ctx.mask != nullptr ? ctx.tally.length_sum
                             : static_cast<double>(ctx.steps * ctx.rollout.envs);
}

}  // namespace batchpole
