#include "batchpole/rl/train_config.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace batchpole {

std::string to_string(Algorithm a) { return algorithm_names().at(static_cast<std::size_t>(a)); }

const std::vector<std::string>& algorithm_names() {
  static const std::vector<std::string> names = {"reinforce", "baseline", "a2c", "ppo", "dqn"};
  return names;
}

std::string to_string(ActionSpace a) {
  return a == ActionSpace::kContinuous ? "continuous" : "discrete";
}

ActionSpace parse_action_space(const std::string& s) {
  if (s == "discrete") return ActionSpace::kDiscrete;
  if (s == "continuous") return ActionSpace::kContinuous;
  BP_CHECK_ARG(false, "unknown action space '" << s << "' (expected discrete or continuous)");
  return ActionSpace::kDiscrete;
}

Algorithm parse_algorithm(const std::string& s) {
  const auto& names = algorithm_names();
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == s) return static_cast<Algorithm>(i);
  }
  BP_CHECK_ARG(false,
               "unknown algorithm '" << s << "' (expected reinforce, baseline, a2c, ppo or dqn)");
  return Algorithm::kA2C;
}

TrainConfig TrainConfig::defaults(Algorithm a, const DevicePlan& plan) {
  TrainConfig c;
  c.algorithm = a;
  c.envs = plan.train_envs;
  if (a == Algorithm::kReinforce || a == Algorithm::kBaseline) {
    c.lr = 1e-3F;  // the notebook's REINFORCE learning rate
  }
  if (a == Algorithm::kPpo) {
    c.gae_lambda = 0.95F;
    c.apply_ppo_recipe();
  }
  if (a == Algorithm::kDqn) {
    // CleanRL's DQN on CartPole (one gradient step of 128 transitions per 10 env steps, lr
    // 2.5e-4), as 8 envs x 10 steps per update: it solved CartPole-v1 in 5 of 5 seeds on the CPU
    // (EXPERIMENTS.md, "Exercise 3"). The same on every device: DQN's batch is its minibatch.
    c.envs = 8;
    c.n_steps = 10;
    c.lr = 2.5e-4F;
    c.max_grad_norm = 10.0F;
  }
  return c;
}

void TrainConfig::apply_ppo_recipe(const std::vector<std::string>& keep) {
  const auto kept = [&](const char* key) {
    return std::find(keep.begin(), keep.end(), key) != keep.end();
  };
  // About 4096 rows per update at small batches (the rollout shortens as envs grow, down to 8
  // steps), 8 minibatches, and a learning rate of 1e-3 below 256 envs, 3e-3 from there on:
  // the best of lr {1e-3, 3e-3} x minibatches {4, 8} at 32, 256 and 4096 envs (EXPERIMENTS.md,
  // "Massive batch").
  if (!kept("n_steps")) {
    n_steps = static_cast<int32_t>(std::clamp<int64_t>(4096 / std::max<int64_t>(envs, 1), 8, 128));
  }
  if (!kept("minibatches")) minibatches = 8;
  if (!kept("lr")) lr = envs >= 256 ? 3e-3F : 1e-3F;
}

TrainConfig TrainConfig::notebook(Algorithm a) {
  TrainConfig c;
  c.algorithm = a;
  c.envs = 1;
  c.n_steps = 0;
  c.lr = a == Algorithm::kA2C ? 3e-4F : 1e-3F;
  c.value_lr = 1e-3F;
  c.gamma = 0.99F;
  c.entropy_coef = 0.01F;
  c.value_coef = 0.5F;
  c.max_grad_norm = 0.5F;
  c.normalize = true;
  c.hidden = 64;
  c.env.reward_mode = RewardMode::kNotebook;
  c.env.max_episode_steps = 500;
  return c;
}

void TrainConfig::validate() const {
  // Each field's own range, whether it came through the table or was set in code.
  for (const auto& f : train_config_fields()) {
    if (!f.input_only) f.check(f.get(*this));
  }
  env.validate();
  constexpr int64_t kMaxEnvs = std::numeric_limits<int32_t>::max();  // VecEnv's
  BP_CHECK_ARG(envs * agents <= kMaxEnvs, agents << " agents of " << envs << " environments are "
                                                 << envs * agents << " environments; at most "
                                                 << kMaxEnvs);
  BP_CHECK_ARG(algorithm != Algorithm::kPpo || n_steps > 0,
               "ppo needs a rollout length (n_steps >= 1)");
  BP_CHECK_ARG(algorithm != Algorithm::kPpo || clip < 1.0F, "clip must be below 1, got " << clip);
  BP_CHECK_ARG(
      algorithm != Algorithm::kPpo || minibatches <= envs * n_steps,
      "ppo: " << minibatches << " minibatches of a rollout of only " << envs * n_steps << " rows");
  const bool dqn = algorithm == Algorithm::kDqn;
  BP_CHECK_ARG(!dqn || actions == ActionSpace::kDiscrete,
               "dqn needs discrete actions (--actions discrete): it takes an argmax over them");
  BP_CHECK_ARG(!dqn || n_steps > 0, "dqn needs env steps per update (n_steps >= 1)");
  BP_CHECK_ARG(!dqn || envs * n_steps <= buffer_size,
               "dqn: an update's " << envs * n_steps << " transitions do not fit the replay "
                                   << "buffer of " << buffer_size);
  const bool episodic = !dqn && (algorithm == Algorithm::kReinforce ||
                                 algorithm == Algorithm::kBaseline || n_steps == 0);
  if (parts > 1) {
    BP_CHECK_ARG(!dqn, "parts: data-parallel training covers reinforce, baseline, a2c and ppo; "
                       "dqn (its replay buffer) is not cut into parts");
    BP_CHECK_ARG(algorithm != Algorithm::kPpo || minibatches <= envs / parts * n_steps,
                 "parts: " << minibatches << " minibatches of a part's rollout of only "
                           << envs / parts * n_steps << " rows");
    BP_CHECK_ARG(agents == 1, "parts: data-parallel training is of one agent, not of a "
                              "population of "
                                  << agents);
    BP_CHECK_ARG(envs % parts == 0, "parts: " << envs << " envs do not cut into " << parts
                                              << " equal parts (envs must be a multiple of "
                                                 "parts)");
  }
  BP_CHECK_ARG(!episodic || env.max_episode_steps > 0,
               "whole-episode rollouts (" << to_string(algorithm)
                                          << (algorithm == Algorithm::kA2C ? " with n_steps 0" : "")
                                          << ") need a time limit (max_episode_steps > 0)");
}

namespace {

using F = Field<TrainConfig>;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

F choice(std::string key, std::string help, std::vector<std::string> choices,
         std::function<std::string(const TrainConfig&)> get,
         std::function<void(TrainConfig&, const std::string&)> set) {
  F f;
  f.key = std::move(key);
  f.kind = FieldKind::kChoice;
  f.help = std::move(help);
  f.choices = std::move(choices);
  f.get = [get](const TrainConfig& c) { return FieldValue(get(c)); };
  f.set = [set](TrainConfig& c, const FieldValue& v) { set(c, field_word(v)); };
  return f;
}

template <class T>
F integer(std::string key, std::string help, int64_t lo, int64_t hi, T TrainConfig::*member) {
  F f;
  f.key = std::move(key);
  f.kind = FieldKind::kInt;
  f.help = std::move(help);
  f.int_min = lo;
  f.int_max = hi;
  f.get = [member](const TrainConfig& c) { return FieldValue(static_cast<int64_t>(c.*member)); };
  f.set = [member](TrainConfig& c, const FieldValue& v) {
    c.*member = static_cast<T>(field_int(v));
  };
  return f;
}

F real(std::string key, std::string help, double lo, bool lo_open, double hi,
       float TrainConfig::*member) {
  F f;
  f.key = std::move(key);
  f.kind = FieldKind::kFloat;
  f.help = std::move(help);
  f.real_min = lo;
  f.real_min_open = lo_open;
  f.real_max = hi;
  f.get = [member](const TrainConfig& c) { return FieldValue(c.*member); };
  f.set = [member](TrainConfig& c, const FieldValue& v) {
    c.*member = static_cast<float>(field_real(v));
  };
  return f;
}

F boolean(std::string key, std::string help, std::string negated_flag, bool TrainConfig::*member) {
  F f;
  f.key = std::move(key);
  f.kind = FieldKind::kBool;
  f.help = std::move(help);
  f.negated_flag = std::move(negated_flag);
  f.get = [member](const TrainConfig& c) { return FieldValue(c.*member); };
  f.set = [member](TrainConfig& c, const FieldValue& v) { c.*member = field_bool(v); };
  return f;
}

std::vector<F> make_fields() {
  std::vector<F> t;
  t.push_back(choice(
      "algo", "reinforce, baseline, a2c, ppo or dqn", algorithm_names(),
      [](const TrainConfig& c) { return to_string(c.algorithm); },
      [](TrainConfig& c, const std::string& s) { c.algorithm = parse_algorithm(s); }));
  t.push_back(integer("envs", "Environments stepped together (of each agent)", 1, kInt32Max,
                      &TrainConfig::envs));
  t.push_back(integer("agents",
                      "Independent agents trained at once (a population); agent k trains with "
                      "seed + k, exactly as alone",
                      1, 65535, &TrainConfig::agents));
  t.push_back(integer("parts",
                      "Data-parallel: the envs cut into this many parts, their gradients summed "
                      "in part order (train --distributed: one part per rank)",
                      1, 65535, &TrainConfig::parts));
  t.push_back(integer("n_steps", "A2C rollout length; 0 = whole episodes (the notebook's variant)",
                      0, 1'000'000, &TrainConfig::n_steps));
  t.push_back(real("lr", "Learning rate (the policy's or the actor-critic's)", 0, true, kInf,
                   &TrainConfig::lr));
  t.push_back(real("value_lr", "Learning rate of the baseline's value network", 0, true, kInf,
                   &TrainConfig::value_lr));
  t.push_back(real("gamma", "Discount factor", 0, true, 1, &TrainConfig::gamma));
  t.push_back(
      real("entropy_coef", "A2C entropy bonus", 0, false, kInf, &TrainConfig::entropy_coef));
  t.push_back(
      real("value_coef", "A2C value-loss coefficient", 0, false, kInf, &TrainConfig::value_coef));
  t.push_back(real("max_grad_norm", "A2C gradient-norm clipping (<= 0: off)", -kInf, false, kInf,
                   &TrainConfig::max_grad_norm));
  t.push_back(boolean("normalize", "Normalise returns (REINFORCE) or advantages", "--no-normalize",
                      &TrainConfig::normalize));
  t.push_back(integer("hidden", "Hidden units per layer", 1, 65536, &TrainConfig::hidden));
  {
    F f;
    f.key = "seed";
    f.kind = FieldKind::kUInt;
    f.help = "Seed of parameters, environments and sampling";
    f.get = [](const TrainConfig& c) { return FieldValue(c.seed); };
    f.set = [](TrainConfig& c, const FieldValue& v) { c.seed = field_uint(v); };
    t.push_back(f);
  }
  t.push_back(choice(
      "precision", "Physics precision", {"f32", "f64"},
      [](const TrainConfig& c) { return to_string(c.precision); },
      [](TrainConfig& c, const std::string& s) { c.precision = parse_precision(s); }));
  t.push_back(choice(
      "reward", "Reward: v1 (CartPole-v1), notebook (0 on the last step), sutton-barto",
      {"v1", "notebook", "sutton-barto"},
      [](const TrainConfig& c) { return to_string(c.env.reward_mode); },
      [](TrainConfig& c, const std::string& s) { c.env.reward_mode = parse_reward_mode(s); }));
  t.push_back(choice(
      "integrator", "Integrator: euler (CartPole-v1) or semi-implicit", {"euler", "semi-implicit"},
      [](const TrainConfig& c) { return to_string(c.env.integrator); },
      [](TrainConfig& c, const std::string& s) { c.env.integrator = parse_integrator(s); }));
  {
    F f;
    f.key = "theta_threshold";
    f.kind = FieldKind::kDouble;
    f.help = "Pole angle limit in radians";
    f.real_min = 0;
    f.real_min_open = true;
    f.json_only = true;  // the flag is --theta-threshold-deg
    f.get = [](const TrainConfig& c) { return FieldValue(c.env.theta_threshold); };
    f.set = [](TrainConfig& c, const FieldValue& v) { c.env.theta_threshold = field_real(v); };
    t.push_back(f);
  }
  {
    F f;
    f.key = "theta_threshold_deg";
    f.kind = FieldKind::kDouble;
    f.help = "Pole angle limit in degrees (CartPole-v1: 12; the notebook's exercise: 6)";
    f.real_min = 0;
    f.real_min_open = true;
    f.real_max = 180;
    f.input_only = true;
    f.get = [](const TrainConfig& c) {
      return FieldValue(c.env.theta_threshold * 360.0 / (2.0 * 3.141592653589793));
    };
    f.set = [](TrainConfig& c, const FieldValue& v) {
      c.env.theta_threshold = degrees_to_radians(field_real(v));
    };
    t.push_back(f);
  }
  {
    F f;
    f.key = "x_threshold";
    f.kind = FieldKind::kDouble;
    f.help = "Cart position limit (CartPole-v1: 2.4)";
    f.real_min = 0;
    f.real_min_open = true;
    f.get = [](const TrainConfig& c) { return FieldValue(c.env.x_threshold); };
    f.set = [](TrainConfig& c, const FieldValue& v) { c.env.x_threshold = field_real(v); };
    t.push_back(f);
  }
  {
    F f = integer("max_episode_steps", "Time limit (0 = none; CartPole-v1: 500)", 0, kInt32Max,
                  &TrainConfig::n_steps);
    f.get = [](const TrainConfig& c) {
      return FieldValue(static_cast<int64_t>(c.env.max_episode_steps));
    };
    f.set = [](TrainConfig& c, const FieldValue& v) {
      c.env.max_episode_steps = static_cast<int32_t>(field_int(v));
    };
    t.push_back(f);
  }
  t.push_back(integer("chunk_rows", "Rows per network pass (a memory bound; 0 = the device's)", 0,
                      (int64_t{1} << 31) / 256, &TrainConfig::chunk_rows));
  t.push_back(boolean("reuse_activations",
                      "Keep the activations of acting for the update (one forward pass fewer)",
                      "--no-reuse-activations", &TrainConfig::reuse_activations));
  t.push_back(real("gae_lambda", "GAE lambda (A2C, PPO); 1 = n-step returns", 0, false, 1,
                   &TrainConfig::gae_lambda));
  t.push_back(
      real("clip", "PPO: clip range of the probability ratio", 0, true, 1, &TrainConfig::clip));
  t.push_back(integer("epochs", "PPO: epochs over each rollout", 1, 1000, &TrainConfig::epochs));
  t.push_back(integer("minibatches", "PPO: minibatches per epoch", 1, 1'000'000,
                      &TrainConfig::minibatches));
  {
    F f = boolean("clip_value_loss", "PPO: clip the value loss as the probability ratio", "",
                  &TrainConfig::clip_value_loss);
    t.push_back(f);
  }
  t.push_back(real("target_kl",
                   "PPO: stop an update's epochs once the KL divergence passes this "
                   "(0 = never)",
                   0, false, kInf, &TrainConfig::target_kl));
  t.push_back(integer("lr_anneal_steps",
                      "Env steps over which the learning rate falls linearly to 0 (0 = constant)",
                      0, std::numeric_limits<int64_t>::max(), &TrainConfig::lr_anneal_steps));
  t.push_back(choice(
      "actions",
      "discrete (CartPole-v1) or continuous (force = clip(a, -1, 1) x force_mag, Gaussian "
      "policy; not dqn)",
      {"discrete", "continuous"}, [](const TrainConfig& c) { return to_string(c.actions); },
      [](TrainConfig& c, const std::string& s) { c.actions = parse_action_space(s); }));
  t.push_back(choice(
      "log_std",
      "Gaussian policy's log-std: parameter (a learned vector, as the notebook) or state (a "
      "network output)",
      {"parameter", "state"},
      [](const TrainConfig& c) {
        return std::string(c.state_dependent_std ? "state" : "parameter");
      },
      [](TrainConfig& c, const std::string& s) { c.state_dependent_std = s == "state"; }));
  t.push_back(real("log_std_init", "Gaussian policy's initial log-std", -20, false, 20,
                   &TrainConfig::log_std_init));
  t.push_back(integer("buffer_size", "DQN: replay buffer capacity (transitions)", 1,
                      int64_t{1} << 31, &TrainConfig::buffer_size));
  t.push_back(integer("batch_size", "DQN: transitions per minibatch", 1, 1 << 24,
                      &TrainConfig::batch_size));
  t.push_back(integer("learning_starts", "DQN: env steps stored before the first gradient step", 0,
                      std::numeric_limits<int64_t>::max(), &TrainConfig::learning_starts));
  t.push_back(integer("gradient_steps", "DQN: gradient steps per update", 1, 1'000'000,
                      &TrainConfig::gradient_steps));
  t.push_back(integer("target_update", "DQN: gradient steps between target-network updates", 1,
                      std::numeric_limits<int64_t>::max(), &TrainConfig::target_update));
  t.push_back(real("tau", "DQN: target update target = tau online + (1 - tau) target (1 = copy)", 0,
                   true, 1, &TrainConfig::tau));
  t.push_back(real("epsilon_start", "DQN: exploration epsilon at the start", 0, false, 1,
                   &TrainConfig::epsilon_start));
  t.push_back(real("epsilon_end", "DQN: exploration epsilon after the decay", 0, false, 1,
                   &TrainConfig::epsilon_end));
  t.push_back(integer("epsilon_decay_steps", "DQN: env steps over which epsilon falls linearly", 0,
                      std::numeric_limits<int64_t>::max(), &TrainConfig::epsilon_decay_steps));
  t.push_back(boolean("double_dqn", "DQN: double-DQN targets (the online network picks a')",
                      "--no-double-dqn", &TrainConfig::double_dqn));
  t.push_back(real("huber_delta", "DQN: Huber loss threshold (1 = smooth L1)", 0, true, kInf,
                   &TrainConfig::huber_delta));
  return t;
}

}  // namespace

const std::vector<Field<TrainConfig>>& train_config_fields() {
  static const std::vector<Field<TrainConfig>> fields = make_fields();
  return fields;
}

}  // namespace batchpole
