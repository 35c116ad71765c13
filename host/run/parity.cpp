#include "batchpole/run/parity.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <type_traits>

#include "batchpole/device/buffer.hpp"

namespace batchpole {

namespace {

// Bit for bit, so that -0 against +0 or two NaN payloads count as different.
template <class T>
bool same_bits(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    return std::bit_cast<Bits>(a) == std::bit_cast<Bits>(b);
  } else {
    return a == b;
  }
}

template <class T>
std::string text_of(T v) {
  if constexpr (sizeof(T) == 1) {
    return fmt::format("{}", static_cast<int>(v));
  } else {
    return fmt::format("{}", v);
  }
}

class EnvComparer {
 public:
  explicit EnvComparer(EnvParity& r) : r_(r) {}

  template <class T>
  void check(int64_t step, int64_t env, const char* field, T a, T b) {
    ++r_.values_compared;
    if (same_bits(a, b)) return;
    ++r_.mismatches;
    if (!r_.first) {
      r_.first = Mismatch{
          step, env, field, text_of(a), text_of(b), static_cast<double>(a), static_cast<double>(b)};
    }
  }

  // Everything one step returned and the full state it left, env by env, so that the first
  // mismatch is the lowest env's. The state is in double whatever the precision: in f64 it holds
  // bits that the float observations round away. Final observations, returns and lengths are
  // compared where either side ended an episode (elsewhere they are documented as meaningless).
  void step(int64_t step, std::span<const int32_t> actions_a, std::span<const int32_t> actions_b,
            const HostStep& a, const HostStep& b, const EnvState& sa, const EnvState& sb) {
    static constexpr std::array<const char*, 4> kObs = {"obs.x", "obs.x_dot", "obs.theta",
                                                        "obs.theta_dot"};
    static constexpr std::array<const char*, 4> kFinal = {"final_obs.x", "final_obs.x_dot",
                                                          "final_obs.theta", "final_obs.theta_dot"};
    const auto n = static_cast<int64_t>(a.reward.size());
    for (int64_t i = 0; i < n; ++i) {
      const auto u = static_cast<std::size_t>(i);
      check(step, i, "action", actions_a[u], actions_b[u]);
      for (std::size_t k = 0; k < 4; ++k) {
        check(step, i, kObs[k], a.obs[4 * u + k], b.obs[4 * u + k]);
      }
      check(step, i, "reward", a.reward[u], b.reward[u]);
      check(step, i, "terminated", a.terminated[u], b.terminated[u]);
      check(step, i, "truncated", a.truncated[u], b.truncated[u]);
      check(step, i, "state.x", sa.x[u], sb.x[u]);
      check(step, i, "state.x_dot", sa.x_dot[u], sb.x_dot[u]);
      check(step, i, "state.theta", sa.theta[u], sb.theta[u]);
      check(step, i, "state.theta_dot", sa.theta_dot[u], sb.theta_dot[u]);
      check(step, i, "state.length", sa.length[u], sb.length[u]);
      check(step, i, "state.return", sa.ret[u], sb.ret[u]);
      check(step, i, "state.episode", sa.episode[u], sb.episode[u]);
      const bool ended_a = (a.terminated[u] | a.truncated[u]) != 0;
      const bool ended_b = (b.terminated[u] | b.truncated[u]) != 0;
      if (!ended_a && !ended_b) continue;
      if (ended_a) ++r_.episodes_ended;
      for (std::size_t k = 0; k < 4; ++k) {
        check(step, i, kFinal[k], a.final_obs[4 * u + k], b.final_obs[4 * u + k]);
      }
      check(step, i, "final_return", a.final_return[u], b.final_return[u]);
      check(step, i, "final_length", a.final_length[u], b.final_length[u]);
    }
  }

 private:
  EnvParity& r_;
};

// Random rows of a rollout, made on the host and copied to both devices unchanged.
struct HostBatch {
  std::vector<float> obs, weights, targets;
  std::vector<int32_t> actions;
};

HostBatch random_batch(int64_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto uniform = [&](std::size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
  };
  const auto n = static_cast<std::size_t>(rows);
  HostBatch h;
  h.obs = uniform(4 * n, -2.0F, 2.0F);
  h.weights = uniform(n, -2.0F, 2.0F);
  h.targets = uniform(n, -1.0F, 3.0F);
  for (std::size_t i = 0; i < n; ++i) h.actions.push_back(static_cast<int32_t>(rng() & 1U));
  return h;
}

// What one device computed from the batch.
struct NetworkRun {
  std::vector<float> initial, logits, values, gradients, after_step;
  UpdateStats stats;
};

NetworkRun run_network(Device& device, const HostBatch& h, const ModelConfig& config,
                       const ModelOptions& mo, const LossConfig& loss) {
  const auto rows = static_cast<int64_t>(h.weights.size());
  const auto n = static_cast<std::size_t>(rows);
  PolicyValueModel model(device, config, mo);
  Buffer<float> obs(device, h.obs.size());
  Buffer<float> weights(device, n);
  Buffer<float> targets(device, n);
  Buffer<int32_t> actions(device, n);
  obs.from_host(h.obs);
  weights.from_host(h.weights);
  targets.from_host(h.targets);
  actions.from_host(h.actions);
  const ConstMatrix x{obs.data(), rows, 4};
  Buffer<float> logits(device, 2 * n);
  Buffer<float> values(device, n);
  model.logits(x, logits.data());
  model.values(x, values.data());

  RolloutView view;
  view.obs = x;
  view.actions = actions.data();
  view.weights = weights.data();
  view.value_targets = targets.data();
  NetworkRun r;
  r.initial = model.get_parameters();
  model.accumulate_gradients(view, loss);
  model.step();
  r.logits = logits.to_host();
  r.values = values.to_host();
  r.gradients = model.get_gradients();
  r.after_step = model.get_parameters();
  r.stats = model.stats();
  return r;
}

// |b - a|, with NaN on either side (or infinities that cancel) counted as an infinite difference
// so that it fails every tolerance.
double abs_diff(double a, double b) {
  const double d = std::abs(b - a);
  return std::isnan(d) ? INFINITY : d;
}

NetworkCheck bounded(std::string name, const Diff& d, double measure, double tolerance,
                     std::string rule) {
  return {std::move(name), d, measure, tolerance, std::move(rule), measure <= tolerance};
}

TrainPoint point_of(const UpdateRecord& r) {
  const EpisodeTally& t = r.recent;
  return {.update = r.update,
          .env_steps = r.env_steps,
          .mean_return = t.episodes > 0 ? t.return_sum / t.episodes : 0.0,
          .policy_loss = r.loss.policy_loss,
          .value_loss = r.value_loss,
          .entropy = r.loss.entropy,
          .grad_norm = r.loss.grad_norm};
}

}  // namespace

// ---- (a) environment ----------------------------------------------------------------------

EnvParity compare_env(Device& a, Device& b, int64_t envs, int64_t steps, uint64_t seed,
                      Precision precision) {
  EnvParity r;
  r.precision = precision;
  VecEnv env_a(a, envs, CartPoleParams{}, precision);
  VecEnv env_b(b, envs, CartPoleParams{}, precision);
  env_a.reset(seed);
  env_b.reset(seed);
  const auto n = static_cast<std::size_t>(envs);
  Buffer<int32_t> actions_a(a, n);
  Buffer<int32_t> actions_b(b, n);
  EnvComparer cmp(r);
  for (int64_t t = 1; t <= steps; ++t) {
    env_a.random_actions(actions_a.data());
    env_b.random_actions(actions_b.data());
    env_a.step(actions_a.data());
    env_b.step(actions_b.data());
    cmp.step(t, actions_a.to_host(), actions_b.to_host(), env_a.fetch(), env_b.fetch(),
             env_a.get_state(), env_b.get_state());
  }
  return r;
}

// ---- (b) networks -------------------------------------------------------------------------

Diff diff(std::span<const float> a, std::span<const float> b) {
  BP_REQUIRE(a.size() == b.size(), kRuntime, "sizes differ: " << a.size() << " and " << b.size());
  Diff d;
  d.size = static_cast<int64_t>(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = a[i];
    const double y = b[i];
    const double e = abs_diff(x, y);
    const double m = std::max(std::abs(x), std::abs(y));
    d.max_abs = std::max(d.max_abs, e);
    d.max_rel = std::max(d.max_rel, m > 0 ? e / m : 0.0);
    d.max_mixed = std::max(d.max_mixed, e / (1 + std::abs(x)));
    d.max_a = std::max(d.max_a, std::abs(x));
    if (e > ParityTolerance::kStep) ++d.above_step_tol;
  }
  return d;
}

bool NetworkParity::within() const {
  return std::all_of(checks.begin(), checks.end(), [](const auto& c) { return c.within; });
}

NetworkParity compare_network(Device& a, Device& b, uint64_t seed, Architecture architecture,
                              int64_t rows) {
  BP_CHECK_ARG(rows >= 1, "compare_network: rows must be positive, got " << rows);
  const TrainConfig a2c;  // the optimiser and loss of A2C training
  ModelOptions mo;
  mo.seed = seed;
  mo.adam.lr = a2c.lr;
  mo.adam.max_grad_norm = a2c.max_grad_norm;
  const LossConfig loss{a2c.entropy_coef, a2c.value_coef};
  const ModelConfig config = architecture == Architecture::kActorCritic
                                 ? ModelConfig::actor_critic()
                                 : ModelConfig::separate();
  const HostBatch batch = random_batch(rows, seed);
  const NetworkRun ra = run_network(a, batch, config, mo, loss);
  const NetworkRun rb = run_network(b, batch, config, mo, loss);

  NetworkParity p;
  p.model = architecture == Architecture::kActorCritic ? "a2c actor-critic"
                                                       : "separate policy and value networks";
  p.rows = rows;
  p.parameters = static_cast<int64_t>(ra.initial.size());
  p.lr = mo.adam.lr;
  // Both sides draw the same initial parameters with integer and +-* arithmetic: exact.
  const Diff init = diff(ra.initial, rb.initial);
  p.checks.push_back({"initial parameters", init, init.max_abs, 0.0, "bitwise equal",
                      std::equal(ra.initial.begin(), ra.initial.end(), rb.initial.begin(),
                                 rb.initial.end(), same_bits<float>)});
  const Diff logits = diff(ra.logits, rb.logits);
  p.checks.push_back(
      bounded("logits", logits, logits.max_mixed, ParityTolerance::kForward, "max |b-a|/(1+|a|)"));
  const Diff values = diff(ra.values, rb.values);
  p.checks.push_back(
      bounded("values", values, values.max_mixed, ParityTolerance::kForward, "max |b-a|/(1+|a|)"));
  const Diff grads = diff(ra.gradients, rb.gradients);
  p.checks.push_back(bounded("gradients", grads, grads.max_abs / std::max(grads.max_a, 1e-30),
                             ParityTolerance::kGradient, "max |b-a| / max |a|"));
  const std::vector<float> stats_a = {static_cast<float>(ra.stats.policy_loss),
                                      static_cast<float>(ra.stats.value_loss),
                                      static_cast<float>(ra.stats.entropy)};
  const std::vector<float> stats_b = {static_cast<float>(rb.stats.policy_loss),
                                      static_cast<float>(rb.stats.value_loss),
                                      static_cast<float>(rb.stats.entropy)};
  const Diff losses = diff(stats_a, stats_b);
  p.checks.push_back(bounded("losses (policy, value, entropy)", losses, losses.max_mixed,
                             ParityTolerance::kLoss, "max |b-a|/(1+|a|)"));
  const Diff step = diff(ra.after_step, rb.after_step);
  const double loose = static_cast<double>(step.above_step_tol) / static_cast<double>(step.size);
  NetworkCheck s =
      bounded("parameters after one Adam step", step, loose, ParityTolerance::kStepLooseFraction,
              fmt::format("share |b-a| > {:g}, all <= {:g}", ParityTolerance::kStep,
                          ParityTolerance::kStepMaxLrs * p.lr));
  s.within = s.within && step.max_abs <= ParityTolerance::kStepMaxLrs * p.lr;
  p.checks.push_back(s);
  return p;
}

// ---- (c) training -------------------------------------------------------------------------

TrainingComparison compare_training(Device& a, Device& b, Algorithm algo, int64_t envs,
                                    int64_t updates, uint64_t seed) {
  TrainingComparison c;
  c.config = TrainConfig::defaults(algo, a.plan());
  c.config.envs = envs;
  c.config.seed = seed;
  c.updates = updates;
  Trainer ta(a, c.config);
  Trainer tb(b, c.config);
  for (int64_t u = 0; u < updates; ++u) {
    c.a.push_back(point_of(ta.update()));
    c.b.push_back(point_of(tb.update()));
    const TrainPoint& pa = c.a.back();
    const TrainPoint& pb = c.b.back();
    const double dl = abs_diff(pa.policy_loss, pb.policy_loss);
    const double dr = abs_diff(pa.mean_return, pb.mean_return);
    c.max_policy_loss_diff = std::max(c.max_policy_loss_diff, dl);
    c.max_mean_return_diff = std::max(c.max_mean_return_diff, dr);
    const bool diverged = dl > ParityTolerance::kTraining * (1 + std::abs(pa.policy_loss)) ||
                          dr > ParityTolerance::kTraining * (1 + std::abs(pa.mean_return));
    if (diverged && !c.first_divergence) c.first_divergence = u;
  }
  return c;
}

}  // namespace batchpole
