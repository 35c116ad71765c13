// What the learners share: returns, advantages and their normalisation, the valid count. Each
// covers every agent of a population in one operation per step (rl_ops.hpp); an agent's part is
// what the same step computes for the agent alone.
#include <algorithm>

#include "learner.hpp"

namespace batchpole {

std::vector<int64_t> LearnContext::agent_rows() const {
  std::vector<int64_t> rows(agent_steps.begin(), agent_steps.end());
  for (int64_t& r : rows) r *= rollout.envs;
  return rows;
}

void Learner::check_state(const std::vector<std::vector<unsigned char>>& agents) const {
  BP_CHECK_ARG(agents.empty(), "the checkpoint holds learner state (of "
                                   << agents.size()
                                   << " agents) that this algorithm does not have");
}

ModelOptions model_options_for(const TrainConfig& c, bool clip_gradients) {
  ModelOptions o;
  o.seed = c.seed;
  o.chunk_rows = c.chunk_rows;
  o.adam.lr = c.lr;
  if (clip_gradients) o.adam.max_grad_norm = c.max_grad_norm;
  o.value_adam.lr = c.value_lr;
  return o;
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
  a.agents = ctx.agents();
  a.agent_stride = ctx.stride();
  ctx.device.rl().returns(a);
}

const float* advantage_weights(const LearnContext& ctx, bool subtract_values) {
  Rollout& r = ctx.rollout;
  RlOps& rl = ctx.device.rl();
  const int64_t rows = ctx.steps * r.envs;
  const int64_t agents = ctx.agents();
  const int64_t stride = ctx.stride();
  const float* weights = r.returns.data();
  if (subtract_values) {
    rl.subtract(r.returns.data(), r.values.data(), ctx.span_rows(), r.weights.data());
    weights = r.weights.data();
    rl.moments(r.returns.data(), ctx.mask, rows, r.fit.data(), agents, stride);
    rl.moments(r.weights.data(), ctx.mask, rows, r.fit.data() + agents, agents, stride);
  } else if (ctx.config.normalize) {
    ctx.device.copy_on_device(r.weights.data(), r.returns.data(),
                              static_cast<std::size_t>(ctx.span_rows()) * sizeof(float));
    weights = r.weights.data();
  }
  if (ctx.config.normalize) {
    rl.moments(weights, ctx.mask, rows, r.moments.data(), agents, stride);
    combine_part_moments(ctx, r.moments.data());
    rl.normalize(r.weights.data(), ctx.mask, rows, r.moments.data(), kNormalizeEps, agents, stride);
  }
  return weights;
}

std::pair<const float*, const float*> bootstrap_values(const LearnContext& ctx) {
  Rollout& r = ctx.rollout;
  const int64_t stride = ctx.stride();
  const float* last_value = nullptr;
  if (ctx.mask == nullptr) {
    // V(s_T): each agent's row T, packed agent after agent.
    const float* obs_t = ctx.agents() > 1 ? r.obs.data() + 4 * ctx.steps * r.envs : ctx.env.obs();
    ctx.model.values(ConstMatrix{obs_t, r.envs, 4}, r.last_value.data(), stride, r.envs);
    last_value = r.last_value.data();
  }
  // Without the tally (sync-free updates) the pass runs over every row: the values are used
  // only where an episode was truncated, so the returns are the same either way.
  const bool truncations =
      ctx.tally.empty() || std::any_of(ctx.tally.begin(), ctx.tally.end(),
                                       [](const EpisodeTally& t) { return t.truncations > 0; });
  const float* truncation_value = nullptr;
  if (truncations) {
    const std::vector<int64_t> rows = ctx.agent_rows();
    ctx.model.values(ConstMatrix{r.final_obs.data(), ctx.steps * r.envs, 4},
                     r.truncation_value.data(), stride, stride, rows);
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
  a.agents = ctx.agents();
  a.agent_stride = ctx.stride();
  RlOps& rl = ctx.device.rl();
  rl.gae(a);
  const int64_t rows = ctx.steps * r.envs;
  rl.moments(r.returns.data(), ctx.mask, rows, r.fit.data(), ctx.agents(), ctx.stride());
  rl.moments(r.weights.data(), ctx.mask, rows, r.fit.data() + ctx.agents(), ctx.agents(),
             ctx.stride());
}

const float* normalized_advantages(const LearnContext& ctx) {
  Rollout& r = ctx.rollout;
  if (ctx.config.normalize) {
    const int64_t rows = ctx.steps * r.envs;
    RlOps& rl = ctx.device.rl();
    rl.moments(r.weights.data(), ctx.mask, rows, r.moments.data(), ctx.agents(), ctx.stride());
    combine_part_moments(ctx, r.moments.data());
    rl.normalize(r.weights.data(), ctx.mask, rows, r.moments.data(), kNormalizeEps, ctx.agents(),
                 ctx.stride());
  }
  return r.weights.data();
}

double valid_samples(const LearnContext& ctx, int64_t agent) {
  const auto k = static_cast<std::size_t>(agent);
  BP_CHECK_ARG(ctx.mask == nullptr || !ctx.tally.empty(),
               "valid_samples: whole-episode rollouts read the tally before learning");
  return ctx.mask != nullptr ? ctx.tally[k].length_sum
                             : static_cast<double>(ctx.agent_steps[k] * ctx.rollout.envs);
}

void combine_part_moments(const LearnContext& ctx, Moments* m) {
  if (ctx.parts == nullptr) return;
  const auto k = static_cast<std::size_t>(ctx.agents());
  std::vector<Moments> mine(k);
  ctx.device.copy_to_host(mine.data(), m, k * sizeof(Moments));
  const std::vector<Moments> sum(k, sum_parts(all_parts<Moments>(*ctx.parts, mine)));
  ctx.device.copy_from_host(m, sum.data(), k * sizeof(Moments));
}

void combine_part_gradients(const LearnContext& ctx) {
  if (ctx.parts == nullptr) return;
  const std::vector<float> mine = ctx.model.part_blocks();
  ctx.model.set_part_blocks(
      sum_parts(all_parts<float>(*ctx.parts, mine), ctx.model.part_block()));
}

float part_loss_count(const LearnContext& ctx) {
  if (ctx.parts == nullptr) return 0.0F;
  // Whole episodes: the valid samples of every part (their first episodes' steps); n steps:
  // every row. (A float, as the count the device makes for one batch.)
  if (ctx.mask != nullptr) {
    return static_cast<float>(sum_parts(all_parts<EpisodeTally>(*ctx.parts, ctx.tally)).length_sum);
  }
  return static_cast<float>(ctx.steps * ctx.config.envs);
}

LearnReport report_of(const LearnContext& ctx, bool fit, int32_t epochs) {
  LearnReport r;
  r.fit = fit;
  r.epochs.assign(static_cast<std::size_t>(ctx.agents()), epochs);
  return r;
}

}  // namespace batchpole
