// Advantage actor-critic (the notebook's section 7), batched: the shared-trunk actor-critic
// acts for n steps of every env; returns are bootstrapped from V(s_n) ("up to n-step" returns),
// from V(final obs) where an episode was truncated and from nothing where it terminated; the
// advantages G - V(s) are normalised. One Adam step on the mean over samples of
//   -A log pi(a|s) - entropy_coef H(pi(.|s)) + value_coef (V(s) - G)^2,
// after clipping the gradient's global norm. With n_steps = 0 every env plays one whole episode
// (the notebook's variant).
#include "learner.hpp"

namespace batchpole {

namespace {

class A2C final : public Learner {
 public:
  explicit A2C(const TrainConfig& c) : c_(c) {}

  [[nodiscard]] RolloutSpec rollout_spec() const override {
    RolloutSpec s;
    s.continuous = c_.actions == ActionSpace::kContinuous;
    s.whole_episodes = c_.n_steps == 0;
    s.steps = s.whole_episodes ? c_.env.max_episode_steps : c_.n_steps;
    s.values = true;
    s.bootstrap = true;
    return s;
  }
  [[nodiscard]] ModelConfig model_config() const override {
    return with_action_head(ModelConfig::actor_critic(4, 2, c_.hidden), c_);
  }
  [[nodiscard]] ModelOptions model_options() const override {
    return model_options_for(c_, true);
  }

  LearnReport learn(const LearnContext& ctx) override {
    Rollout& r = ctx.rollout;
    const int64_t rows = ctx.steps * r.envs;
    const auto [last_value, truncation_value] = bootstrap_values(ctx);
    const float* weights = nullptr;
    if (c_.gae_lambda < 1.0F) {
      gae(ctx, last_value, truncation_value, c_.gae_lambda);
      weights = normalized_advantages(ctx);
    } else {
      compute_returns(ctx, last_value, truncation_value);
      weights = advantage_weights(ctx, true);
    }
    const std::vector<int64_t> agent_rows = ctx.agent_rows();
    RolloutView view;
    view.obs = ConstMatrix{r.obs.data(), rows, 4};
    set_actions(view, r);
    view.weights = weights;
    view.value_targets = r.returns.data();
    view.mask = ctx.mask;
    view.recorded = ctx.recorded;
    view.count = part_loss_count(ctx);  // 0: the valid samples, counted on the device
    view.agent_stride = ctx.stride();
    view.agent_rows = agent_rows;
    ctx.model.accumulate_gradients(view, LossConfig{c_.entropy_coef, c_.value_coef});
    combine_part_gradients(ctx);
    ctx.model.step();
    return report_of(ctx, true);
  }

 private:
  TrainConfig c_;
};

}  // namespace

std::unique_ptr<Learner> make_a2c(const TrainConfig& config) {
  return std::make_unique<A2C>(config);
}

}  // namespace batchpole
