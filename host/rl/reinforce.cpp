// REINFORCE (the notebook's section 4): every env plays one whole episode per update; the
// returns G_t, discounted backwards inside each episode and normalised over the batch, weight
// log pi(a_t|s_t). The loss is the notebook's sum over each episode, averaged over the N
// episodes: L = -(sum_t G_t log pi(a_t|s_t)) / N.
#include "learner.hpp"

namespace batchpole {

namespace {

class Reinforce final : public Learner {
 public:
  explicit Reinforce(const TrainConfig& c) : c_(c) {}

  [[nodiscard]] RolloutSpec rollout_spec() const override {
    RolloutSpec s;
    s.continuous = c_.actions == ActionSpace::kContinuous;
    s.steps = c_.env.max_episode_steps;
    s.whole_episodes = true;
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
    const std::vector<int64_t> rows = ctx.agent_rows();
    RolloutView view;
    view.obs = ConstMatrix{ctx.rollout.obs.data(), ctx.steps * ctx.rollout.envs, 4};
    set_actions(view, ctx.rollout);
    view.weights = advantage_weights(ctx, false);
    view.mask = ctx.mask;
    view.recorded = ctx.recorded;
    // The episodes: one per env (of the whole batch with data-parallel parts).
    view.count = static_cast<float>(ctx.parts != nullptr ? ctx.config.envs : ctx.rollout.envs);
    view.agent_stride = ctx.stride();
    view.agent_rows = rows;
    ctx.model.accumulate_gradients(view, LossConfig{0.0F, 0.0F});
    combine_part_gradients(ctx);
    ctx.model.step();
    return report_of(ctx, false);
  }

 private:
  TrainConfig c_;
};

}  // namespace

std::unique_ptr<Learner> make_reinforce(const TrainConfig& config) {
  return std::make_unique<Reinforce>(config);
}

}  // namespace batchpole
