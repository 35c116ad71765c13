// Proximal policy optimisation (Schulman et al. 2017; the notebook's "trust region" section and
// its next step) on the shared-trunk actor-critic: n-step rollouts of every env, GAE(lambda)
// advantages bootstrapped as A2C's (V(final obs) on truncation, nothing on termination), then
// `epochs` passes over the rollout in `minibatches` shuffled minibatches, each one Adam step on
//   -min(r A, clip(r, 1 - eps, 1 + eps) A) - entropy_coef H + value_coef (V - G)^2
// (the value loss optionally clipped too), advantages normalised per minibatch, the gradient's
// global norm clipped. Many safe steps from one large batch are what make a massive batch pay.
//
// The shuffle is counter-based (shuffle_index, keyed by seed, update and epoch) and the
// minibatches are gathered by one device operation, so results depend on neither the thread
// count nor the device's scheduling.
#include <algorithm>

#include "batchpole/device/buffer.hpp"
#include "learner.hpp"

namespace batchpole {

namespace {

// One minibatch of every agent, gathered contiguously (agent after agent).
struct Minibatch {
  Minibatch(Device& d, int64_t n, int64_t agents, bool continuous)
      : obs(d, static_cast<std::size_t>(4 * n * agents)),
        actions(d, continuous ? 0 : static_cast<std::size_t>(n * agents)),
        continuous_actions(d, continuous ? static_cast<std::size_t>(n * agents) : 0),
        log_prob(d, static_cast<std::size_t>(n * agents)),
        advantages(d, static_cast<std::size_t>(n * agents)),
        returns(d, static_cast<std::size_t>(n * agents)),
        values(d, static_cast<std::size_t>(n * agents)),
        moments(d, static_cast<std::size_t>(agents)),
        rows(n) {}
  Buffer<float> obs;
  Buffer<int32_t> actions;
  Buffer<float> continuous_actions;
  Buffer<float> log_prob, advantages, returns, values;
  Buffer<Moments> moments;
  int64_t rows;  // of each agent
};

class Ppo final : public Learner {
 public:
  explicit Ppo(const TrainConfig& c) : c_(c) {}

  [[nodiscard]] RolloutSpec rollout_spec() const override {
    RolloutSpec s;
    s.continuous = c_.actions == ActionSpace::kContinuous;
    s.steps = c_.n_steps;
    s.values = true;
    s.bootstrap = true;
    s.log_probs = true;
    s.reuses_activations = false;  // the parameters move between minibatches
    return s;
  }
  [[nodiscard]] ModelConfig model_config() const override {
    return with_action_head(ModelConfig::actor_critic(4, 2, c_.hidden), c_);
  }
  [[nodiscard]] ModelOptions model_options() const override { return model_options_for(c_, true); }

  // A target KL reads the divergence back after every epoch.
  [[nodiscard]] bool recordable() const override { return c_.target_kl <= 0.0F; }

  LearnReport learn(const LearnContext& ctx) override {
    Rollout& r = ctx.rollout;
    RlOps& rl = ctx.device.rl();
    const int64_t rows = ctx.steps * r.envs;  // of each agent
    const int64_t agents = ctx.agents();
    const auto [last_value, truncation_value] = bootstrap_values(ctx);
    gae(ctx, last_value, truncation_value, c_.gae_lambda);

    // Minibatches of ceil(rows / M) rows; the last one may be shorter.
    const int64_t per_batch = (rows + c_.minibatches - 1) / c_.minibatches;
    if (!mb_ || mb_->rows < per_batch) {
      mb_ = std::make_unique<Minibatch>(ctx.device, per_batch, agents, r.spec.continuous);
    }
    Minibatch& mb = *mb_;
    const LossConfig loss{c_.entropy_coef, c_.value_coef};
    LearnReport report = report_of(ctx, true, 0);
    // Agents still taking epochs (the target KL stops each on its own).
    std::vector<uint8_t> going(ctx.active.begin(), ctx.active.end());
    // Data-parallel parts each shuffle their own rows by (seed, part); a process of one part
    // keys its one shuffle so (more parts: ctx.seeds holds each part's seed).
    const uint64_t seed = ctx.parts != nullptr && agents == 1
                              ? part_shuffle_seed(c_.seed, ctx.parts->first_part)
                              : c_.seed;
    // Where the device records updates, the epochs' shuffle keys are copied to the device as
    // parameters, so that the gathers take the same arguments every update.
    const auto key_of = [&](int32_t epoch) {
      return make_shuffle_key(seed, static_cast<uint64_t>(ctx.update), static_cast<uint64_t>(epoch),
                              static_cast<uint64_t>(rows));
    };
    const bool keys_on_device = ctx.device.plan().graphs;
    if (keys_on_device) {
      std::vector<uint64_t> words;
      for (int32_t epoch = 0; epoch < c_.epochs; ++epoch) words.push_back(key_of(epoch).key);
      if (keys_.size() != words.size()) keys_ = Buffer<uint64_t>(ctx.device, words.size());
      ctx.device.copy_parameters(keys_.data(), words.data(), words.size() * sizeof(uint64_t));
    }
    for (int32_t epoch = 0; epoch < c_.epochs; ++epoch) {
      ShuffleKey key = key_of(epoch);
      const uint64_t* key_word = nullptr;
      if (keys_on_device) {
        key.key = 0;
        key_word = keys_.data() + epoch;
      }
      for (int64_t first = 0; first < rows; first += per_batch) {
        const int64_t n = std::min(per_batch, rows - first);
        MinibatchArgs g;
        g.key = key;
        g.key_word = key_word;
        g.seed = seed;
        g.agents = agents;
        g.agent_stride = ctx.stride();
        g.seeds = ctx.seeds;
        g.first = first;
        g.rows = n;
        g.obs = r.obs.data();
        if (r.spec.continuous) {
          g.continuous_actions = r.continuous_actions.data();
          g.out_continuous_actions = mb.continuous_actions.data();
        } else {
          g.actions = r.actions.data();
        }
        g.log_prob = r.log_prob.data();
        g.advantages = r.weights.data();
        g.returns = r.returns.data();
        g.values = r.values.data();
        g.out_obs = mb.obs.data();
        g.out_actions = mb.actions.data();
        g.out_log_prob = mb.log_prob.data();
        g.out_advantages = mb.advantages.data();
        g.out_returns = mb.returns.data();
        g.out_values = mb.values.data();
        rl.gather_minibatch(g);
        if (c_.normalize) {
          rl.moments(mb.advantages.data(), nullptr, n, mb.moments.data(), agents, n);
          // Data-parallel parts: minibatch m is every part's minibatch m together.
          combine_part_moments(ctx, mb.moments.data());
          rl.normalize(mb.advantages.data(), nullptr, n, mb.moments.data(), kNormalizeEps, agents,
                       n);
        }
        RolloutView view;
        view.obs = ConstMatrix{mb.obs.data(), n, 4};
        view.actions = mb.actions.data();
        view.continuous_actions = mb.continuous_actions.data();
        view.weights = mb.advantages.data();
        view.value_targets = mb.returns.data();
        view.old_log_prob = mb.log_prob.data();
        view.clip = c_.clip;
        if (c_.clip_value_loss) {
          view.old_values = mb.values.data();
          view.value_clip = c_.clip;
        }
        view.count = static_cast<float>(ctx.parts != nullptr ? n * ctx.config.parts : n);
        view.agent_stride = agents > 1 ? n : 0;
        ctx.model.accumulate_gradients(view, loss, GradientMode::kOverwrite);
        combine_part_gradients(ctx);
        ctx.model.step();
      }
      for (int64_t k = 0; k < agents; ++k) {
        if (going[k] != 0) ++report.epochs[k];
      }
      // The KL divergence of the last minibatch's policy from the acting one: read back once
      // per epoch, only when asked for. Agents past the target stop; the others go on.
      if (c_.target_kl > 0.0F) {
        const std::vector<UpdateStats> stats = ctx.model.agent_stats();
        bool any = false;
        for (int64_t k = 0; k < agents; ++k) {
          if (going[k] != 0 && stats[k].approx_kl > c_.target_kl) going[k] = 0;
          any = any || going[k] != 0;
        }
        if (!any) break;
        ctx.model.set_active(going);
      }
    }
    ctx.model.set_active(ctx.active);
    return report;
  }

 private:
  TrainConfig c_;
  std::unique_ptr<Minibatch> mb_;
  Buffer<uint64_t> keys_;  // the epochs' shuffle keys, where the device records updates
};

}  // namespace

std::unique_ptr<Learner> make_ppo(const TrainConfig& config) {
  return std::make_unique<Ppo>(config);
}

}  // namespace batchpole
