// REINFORCE with a learned baseline (the notebook's section 6): whole episodes as REINFORCE;
// a separate value network with its own Adam learns V(s) by regression on G_t (mean squared
// error over the samples, F.mse_loss), and the policy's weights are the advantages G_t - V(s_t),
// normalised. The policy loss divides by the N episodes as REINFORCE's does.
#include <algorithm>

#include "learner.hpp"

namespace batchpole {

namespace {

class Baseline final : public Learner {
 public:
  explicit Baseline(const TrainConfig& c) : c_(c) {}

  [[nodiscard]] RolloutSpec rollout_spec() const override {
    RolloutSpec s;
    s.continuous = c_.actions == ActionSpace::kContinuous;
    s.steps = c_.env.max_episode_steps;
    s.whole_episodes = true;
    s.values = true;
    return s;
  }
  [[nodiscard]] ModelConfig model_config() const override {
    return with_action_head(ModelConfig::separate(4, 2, c_.hidden), c_);
  }
  [[nodiscard]] ModelOptions model_options() const override {
    return model_options_for(c_, false);
  }

  LearnReport learn(const LearnContext& ctx) override {
    compute_returns(ctx, nullptr, nullptr);
    // The episodes: one per env (of the whole batch with data-parallel parts).
    const auto envs = static_cast<double>(ctx.parts != nullptr ? ctx.config.envs : ctx.rollout.envs);
    const std::vector<int64_t> rows = ctx.agent_rows();
    RolloutView view;
    view.obs = ConstMatrix{ctx.rollout.obs.data(), ctx.steps * ctx.rollout.envs, 4};
    set_actions(view, ctx.rollout);
    view.weights = advantage_weights(ctx, true);
    view.value_targets = ctx.rollout.returns.data();
    view.mask = ctx.mask;
    view.recorded = ctx.recorded;
    view.count = static_cast<float>(envs);
    view.agent_stride = ctx.stride();
    view.agent_rows = rows;
    // The value term divided by the valid samples, not by the episodes: a mean, as F.mse_loss.
    std::vector<float> value_coefs;
    for (int64_t k = 0; k < ctx.agents(); ++k) {
      value_coefs.push_back(static_cast<float>(envs / std::max(valid_samples(ctx, k), 1.0)));
    }
    if (ctx.parts != nullptr) {
      // Data-parallel parts: the whole batch's valid samples, the same coefficient in every part.
      const double valid =
          sum_parts(all_parts<EpisodeTally>(*ctx.parts, ctx.tally)).length_sum;
      value_coefs.assign(value_coefs.size(), static_cast<float>(envs / std::max(valid, 1.0)));
    }
    LossConfig loss;
    loss.entropy_coef = 0.0F;
    loss.value_coef = value_coefs.front();
    if (ctx.agents() > 1) view.value_coefs = value_coefs;
    ctx.model.accumulate_gradients(view, loss);
    combine_part_gradients(ctx);
    ctx.model.step();
    return report_of(ctx, true);
  }

 private:
  TrainConfig c_;
};

}  // namespace

std::unique_ptr<Learner> make_baseline(const TrainConfig& config) {
  return std::make_unique<Baseline>(config);
}

}  // namespace batchpole
