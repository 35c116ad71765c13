// `batchpole compare`: the same configuration on two backends from the same seed, side by side:
// (a) environment parity, bit for bit, over a long random-action run in both precisions;
// (b) network parity of the A2C actor-critic (forward, gradients, one Adam step) within stated
//     tolerances; (c) a short training run of each algorithm, reported, not judged.
// The two backends are the CPU and the GPU; without a GPU, a 1-thread CPU backend and a
// multi-threaded one, so that the command still checks what it can (and exits 3 to say so).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "batchpole/buffer.hpp"
#include "batchpole/trainer.hpp"
#include "batchpole/vec_env.hpp"
#include "commands.hpp"

namespace batchpole::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Exit status beyond main()'s: every check held, but there was no GPU to compare against.
constexpr int kExitNoGpu = 3;

// Network tolerances, the numbers of the CPU-vs-GPU parity test (tests/test_policy_value.cpp,
// ModelParity.CpuAndGpuAgree): the two devices use different BLAS libraries, so sums are
// reassociated and agree only to float rounding.
//   forward (logits, values): |b - a| <= kForwardTol * (1 + |a|) per element;
//   gradients:                |b - a| <= kGradientTol * max_i |a_i| (relative to the largest);
//   loss statistics:          |b - a| <= kLossTol * (1 + |a|);
//   parameters after one Adam step: at most kStepLooseFraction of them differ by more than
//     kStepTol, none by more than kStepMaxLrs * lr. Adam moves every parameter by about lr
//     whatever the gradient's size, so where a gradient is near zero its sign is rounding.
constexpr double kForwardTol = 1e-5;
constexpr double kGradientTol = 1e-4;
constexpr double kLossTol = 1e-4;
constexpr double kStepTol = 1e-6;
constexpr double kStepLooseFraction = 0.01;
constexpr double kStepMaxLrs = 2.0;
// Rows of random input for the network check (as in the parity test).
constexpr int64_t kNetworkRows = 4096;
// Training is reported, not judged: once a sampled action differs the runs part ways. An update
// "diverges" when its policy loss or mean return differs by more than this times (1 + |a|).
constexpr double kTrainingTol = 1e-4;

struct CompareOptions {
  int64_t envs = 4096;
  int32_t steps = 1000;
  uint64_t seed = 0;
  int threads = 0;
  bool json = false;
  std::string metrics_out;
  bool skip_training = false;
};

// One side of the comparison: a backend and a short label for tables and file names.
struct Side {
  std::string label;
  std::unique_ptr<Backend> backend;
};

std::unique_ptr<Backend> make_side_backend(DeviceRequest::Choice choice, int threads) {
  BackendOptions o;
  o.device.choice = choice;
  o.threads = threads;
  return make_backend(o);
}

// ---- (a) environment parity -------------------------------------------------------------------

struct Mismatch {
  int64_t step = 0;  // 1-based: the step whose outputs or resulting state differ
  int64_t env = 0;
  std::string field;
  std::string a, b;    // shortest round-trip text of each value
  double a_value = 0;  // the same as numbers (every field converts exactly to double)
  double b_value = 0;
};

struct EnvParity {
  Precision precision = Precision::kF32;
  int64_t values_compared = 0;
  int64_t mismatches = 0;
  int64_t episodes_ended = 0;  // on side a: the final observations compared
  std::optional<Mismatch> first;
  [[nodiscard]] bool equal() const { return mismatches == 0 && values_compared > 0; }
};

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

EnvParity compare_env(Backend& a, Backend& b, const CompareOptions& o, Precision precision) {
  EnvParity r;
  r.precision = precision;
  VecEnv env_a(a, o.envs, CartPoleParams{}, precision);
  VecEnv env_b(b, o.envs, CartPoleParams{}, precision);
  env_a.reset(o.seed);
  env_b.reset(o.seed);
  const auto n = static_cast<std::size_t>(o.envs);
  Buffer<int32_t> actions_a(a, n);
  Buffer<int32_t> actions_b(b, n);
  EnvComparer cmp(r);
  for (int64_t t = 1; t <= o.steps; ++t) {
    env_a.random_actions(actions_a.data());
    env_b.random_actions(actions_b.data());
    env_a.step(actions_a.data());
    env_b.step(actions_b.data());
    cmp.step(t, actions_a.to_host(), actions_b.to_host(), env_a.fetch(), env_b.fetch(),
             env_a.get_state(), env_b.get_state());
  }
  return r;
}

// ---- (b) network parity -----------------------------------------------------------------------

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

NetworkRun run_network(Backend& backend, const HostBatch& h, const ModelOptions& mo,
                       const LossConfig& loss) {
  const auto rows = static_cast<int64_t>(h.weights.size());
  const auto n = static_cast<std::size_t>(rows);
  PolicyValueModel model(backend, ModelConfig::actor_critic(), mo);
  Buffer<float> obs(backend, h.obs.size());
  Buffer<float> weights(backend, n);
  Buffer<float> targets(backend, n);
  Buffer<int32_t> actions(backend, n);
  obs.from_host(h.obs);
  weights.from_host(h.weights);
  targets.from_host(h.targets);
  actions.from_host(h.actions);
  const ConstMatrix x{obs.data(), rows, 4};
  Buffer<float> logits(backend, 2 * n);
  Buffer<float> values(backend, n);
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

struct Diff {
  double max_abs = 0;          // max |b - a|
  double max_rel = 0;          // max |b - a| / max(|a|, |b|) (0 where both are 0)
  double max_mixed = 0;        // max |b - a| / (1 + |a|)
  double max_a = 0;            // max |a|
  int64_t above_step_tol = 0;  // elements with |b - a| > kStepTol
  int64_t size = 0;
};

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
    if (e > kStepTol) ++d.above_step_tol;
  }
  return d;
}

struct NetworkCheck {
  std::string name;
  Diff diff;
  double measure = 0;  // what the tolerance bounds
  double tolerance = 0;
  std::string rule;  // how measure is defined and bounded
  bool within = false;
};

NetworkCheck bounded(std::string name, const Diff& d, double measure, double tolerance,
                     std::string rule) {
  return {std::move(name), d, measure, tolerance, std::move(rule), measure <= tolerance};
}

struct NetworkParity {
  int64_t parameters = 0;
  double lr = 0;
  std::vector<NetworkCheck> checks;
  [[nodiscard]] bool within() const {
    return std::all_of(checks.begin(), checks.end(), [](const auto& c) { return c.within; });
  }
};

NetworkParity compare_network(Backend& a, Backend& b, uint64_t seed) {
  const TrainConfig a2c;  // the optimiser and loss of A2C training
  ModelOptions mo;
  mo.seed = seed;
  mo.adam.lr = a2c.lr;
  mo.adam.max_grad_norm = a2c.max_grad_norm;
  const LossConfig loss{a2c.entropy_coef, a2c.value_coef};
  const HostBatch batch = random_batch(kNetworkRows, seed);
  const NetworkRun ra = run_network(a, batch, mo, loss);
  const NetworkRun rb = run_network(b, batch, mo, loss);

  NetworkParity p;
  p.parameters = static_cast<int64_t>(ra.initial.size());
  p.lr = mo.adam.lr;
  // Both sides draw the same initial parameters with integer and +-* arithmetic: exact.
  const Diff init = diff(ra.initial, rb.initial);
  p.checks.push_back({"initial parameters", init, init.max_abs, 0.0, "bitwise equal",
                      std::equal(ra.initial.begin(), ra.initial.end(), rb.initial.begin(),
                                 rb.initial.end(), same_bits<float>)});
  const Diff logits = diff(ra.logits, rb.logits);
  p.checks.push_back(bounded("logits", logits, logits.max_mixed, kForwardTol, "max |b-a|/(1+|a|)"));
  const Diff values = diff(ra.values, rb.values);
  p.checks.push_back(bounded("values", values, values.max_mixed, kForwardTol, "max |b-a|/(1+|a|)"));
  const Diff grads = diff(ra.gradients, rb.gradients);
  p.checks.push_back(bounded("gradients", grads, grads.max_abs / std::max(grads.max_a, 1e-30),
                             kGradientTol, "max |b-a| / max |a|"));
  const std::vector<float> stats_a = {static_cast<float>(ra.stats.policy_loss),
                                      static_cast<float>(ra.stats.value_loss),
                                      static_cast<float>(ra.stats.entropy)};
  const std::vector<float> stats_b = {static_cast<float>(rb.stats.policy_loss),
                                      static_cast<float>(rb.stats.value_loss),
                                      static_cast<float>(rb.stats.entropy)};
  const Diff losses = diff(stats_a, stats_b);
  p.checks.push_back(bounded("losses (policy, value, entropy)", losses, losses.max_mixed, kLossTol,
                             "max |b-a|/(1+|a|)"));
  const Diff step = diff(ra.after_step, rb.after_step);
  const double loose = static_cast<double>(step.above_step_tol) / static_cast<double>(step.size);
  NetworkCheck s =
      bounded("parameters after one Adam step", step, loose, kStepLooseFraction,
              fmt::format("share |b-a| > {:g}, all <= {:g}", kStepTol, kStepMaxLrs * p.lr));
  s.within = s.within && step.max_abs <= kStepMaxLrs * p.lr;
  p.checks.push_back(s);
  return p;
}

// ---- (c) training side by side ----------------------------------------------------------------

struct TrainPoint {
  int64_t update = 0;
  int64_t env_steps = 0;
  double mean_return = 0;  // of the recent episodes, as in train's metrics.csv (0 before any)
  double policy_loss = 0;
  double value_loss = 0;
  double entropy = 0;
  double grad_norm = 0;
};

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

struct TrainingComparison {
  TrainConfig config;
  int64_t updates = 0;
  std::vector<TrainPoint> a, b;
  std::optional<int64_t> first_divergence;  // index into a and b
  double max_policy_loss_diff = 0;
  double max_mean_return_diff = 0;
};

TrainingComparison compare_training(Backend& a, Backend& b, Algorithm algo, int64_t envs,
                                    int64_t updates, uint64_t seed) {
  TrainingComparison c;
  c.config.algorithm = algo;
  c.config.envs = envs;
  c.config.seed = seed;
  if (algo != Algorithm::kA2C) c.config.lr = 1e-3F;  // as `train` does: the notebook's rate
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
    const bool diverged = dl > kTrainingTol * (1 + std::abs(pa.policy_loss)) ||
                          dr > kTrainingTol * (1 + std::abs(pa.mean_return));
    if (diverged && !c.first_divergence) c.first_divergence = u;
  }
  return c;
}

std::string write_training_csv(const fs::path& dir, const TrainingComparison& c,
                               const std::string& label, const std::vector<TrainPoint>& points) {
  const fs::path path =
      dir / fmt::format("compare_{}_{}.csv", to_string(c.config.algorithm), label);
  std::ofstream out(path, std::ios::trunc);
  out << "update,env_steps,mean_return,policy_loss,value_loss,entropy,grad_norm\n";
  for (const TrainPoint& p : points) {
    out << fmt::format("{},{},{:.8g},{:.8g},{:.8g},{:.8g},{:.8g}\n", p.update, p.env_steps,
                       p.mean_return, p.policy_loss, p.value_loss, p.entropy, p.grad_norm);
  }
  BP_REQUIRE(out.good(), kRuntime, "cannot write " << path.string());
  return path.string();
}

// ---- the report -------------------------------------------------------------------------------

json to_json(const TrainPoint& p) {
  return {{"update", p.update},           {"env_steps", p.env_steps},
          {"mean_return", p.mean_return}, {"policy_loss", p.policy_loss},
          {"value_loss", p.value_loss},   {"entropy", p.entropy},
          {"grad_norm", p.grad_norm}};
}

json to_json(const EnvParity& r) {
  json j = {{"equal", r.equal()},
            {"values_compared", r.values_compared},
            {"episodes_ended", r.episodes_ended},
            {"mismatches", r.mismatches},
            {"first_mismatch", nullptr}};
  if (r.first) {
    j["first_mismatch"] = {{"step", r.first->step},
                           {"env", r.first->env},
                           {"field", r.first->field},
                           {"a", r.first->a_value},
                           {"b", r.first->b_value}};
  }
  return j;
}

json to_json(const NetworkParity& p) {
  json checks = json::array();
  for (const NetworkCheck& c : p.checks) {
    checks.push_back({{"name", c.name},
                      {"max_abs", c.diff.max_abs},
                      {"max_rel", c.diff.max_rel},
                      {"measure", c.measure},
                      {"tolerance", c.tolerance},
                      {"rule", c.rule},
                      {"within", c.within}});
  }
  return {{"model", "a2c actor-critic"}, {"parameters", p.parameters},
          {"rows", kNetworkRows},        {"lr", p.lr},
          {"within", p.within()},        {"checks", checks}};
}

json to_json(const TrainingComparison& c, const std::string& label_a, const std::string& label_b) {
  json per_update = json::array();
  for (std::size_t i = 0; i < c.a.size(); ++i) {
    per_update.push_back({{label_a, to_json(c.a[i])}, {label_b, to_json(c.b[i])}});
  }
  json first = nullptr;
  if (c.first_divergence) {
    const auto i = static_cast<std::size_t>(*c.first_divergence);
    first = {{"update", c.a[i].update},
             {"policy_loss_diff", abs_diff(c.a[i].policy_loss, c.b[i].policy_loss)},
             {"mean_return_diff", abs_diff(c.a[i].mean_return, c.b[i].mean_return)}};
  }
  return {{"algo", to_string(c.config.algorithm)},
          {"envs", c.config.envs},
          {"updates", c.updates},
          {"first_divergence", first},
          {"max_policy_loss_diff", c.max_policy_loss_diff},
          {"max_mean_return_diff", c.max_mean_return_diff},
          {"final_mean_return",
           {{label_a, c.a.empty() ? 0.0 : c.a.back().mean_return},
            {label_b, c.b.empty() ? 0.0 : c.b.back().mean_return}}},
          {"per_update", per_update}};
}

void print_env(const CompareOptions& o, const std::vector<EnvParity>& env) {
  fmt::print("\nenvironment parity: {} envs x {} steps, random actions, bit for bit\n", o.envs,
             o.steps);
  fmt::print("  {:<9} {:>15} {:>14} {:>10}  {}\n", "precision", "values compared", "episodes ended",
             "mismatches", "result");
  for (const EnvParity& r : env) {
    fmt::print("  {:<9} {:>15} {:>14} {:>10}  {}\n", to_string(r.precision), r.values_compared,
               r.episodes_ended, r.mismatches, r.equal() ? "equal" : "DIFFERENT");
  }
  for (const EnvParity& r : env) {
    if (!r.first) continue;
    const Mismatch& m = *r.first;
    fmt::print("  {} first mismatch: step {}, env {}, {}: {} vs {}\n", to_string(r.precision),
               m.step, m.env, m.field, m.a, m.b);
  }
}

void print_network(const NetworkParity& p) {
  fmt::print(
      "\nnetwork parity: A2C actor-critic ({} parameters), {} random rows, one Adam step "
      "(lr {:g})\n",
      p.parameters, kNetworkRows, p.lr);
  fmt::print("  {:<31} {:>9} {:>9}  {:<33} {:>9} {:>9}  {}\n", "quantity", "max abs", "max rel",
             "checked", "measure", "tolerance", "ok");
  for (const NetworkCheck& c : p.checks) {
    fmt::print("  {:<31} {:>9.2e} {:>9.2e}  {:<33} {:>9.2e} {:>9.2e}  {}\n", c.name, c.diff.max_abs,
               c.diff.max_rel, c.rule, c.measure, c.tolerance, c.within ? "yes" : "NO");
  }
}

void print_training(const std::vector<TrainingComparison>& runs, const std::string& label_a,
                    const std::string& label_b) {
  fmt::print(
      "\ntraining, same seed, side by side (per-update values: --json, --metrics-out); "
      "diverged: |b-a| > {:g}(1+|a|)\n",
      kTrainingTol);
  fmt::print("  {:<9} {:>5} {:>7}  {:<34} {:>12} {:>12}  {}\n", "algo", "envs", "updates",
             "first divergence", "max |d loss|", "max |d ret|",
             fmt::format("final return {} / {}", label_a, label_b));
  for (const TrainingComparison& c : runs) {
    std::string first = "none";
    if (c.first_divergence) {
      const auto i = static_cast<std::size_t>(*c.first_divergence);
      first = fmt::format("update {}: loss {:.2e}, return {:.3g}", c.a[i].update,
                          abs_diff(c.a[i].policy_loss, c.b[i].policy_loss),
                          abs_diff(c.a[i].mean_return, c.b[i].mean_return));
    }
    fmt::print("  {:<9} {:>5} {:>7}  {:<34} {:>12.3e} {:>12.3g}  {:.2f} / {:.2f}\n",
               to_string(c.config.algorithm), c.config.envs, c.updates, first,
               c.max_policy_loss_diff, c.max_mean_return_diff, c.a.back().mean_return,
               c.b.back().mean_return);
  }
}

int run_compare(const CompareOptions& o) {
  BP_CHECK_ARG(o.envs > 0, "--envs must be positive, got " << o.envs);
  BP_CHECK_ARG(o.steps > 0, "--steps must be positive, got " << o.steps);
  BP_CHECK_ARG(o.threads >= 0, "--threads must be >= 0 (0 = all), got " << o.threads);
  if (!o.metrics_out.empty()) {
    std::error_code ec;
    fs::create_directories(o.metrics_out, ec);
    BP_CHECK_ARG(!ec && fs::is_directory(o.metrics_out),
                 "--metrics-out " << o.metrics_out << " cannot be created: "
                                  << (ec ? ec.message() : "not a directory"));
  }

  // The two sides: the CPU against the GPU, or without one, 1 CPU thread against --threads.
  const bool gpu = cuda_device_count() > 0;
  Side a;
  Side b;
  std::string no_gpu_reason;
  if (gpu) {
    a = {"cpu", make_side_backend(DeviceRequest::Choice::kCpu, o.threads)};
    b = {"gpu", make_side_backend(DeviceRequest::Choice::kCuda, 0)};
  } else {
    no_gpu_reason = cuda_compiled() ? "no CUDA device found" : "this build has no CUDA";
    a = {"cpu-serial", make_side_backend(DeviceRequest::Choice::kCpu, 1)};
    b = {"cpu-parallel", make_side_backend(DeviceRequest::Choice::kCpu, o.threads)};
    fmt::print(stderr,
               "batchpole compare: no GPU ({}): comparing {} with {} instead; exit status {} "
               "when every check holds\n",
               no_gpu_reason, a.backend->description(), b.backend->description(), kExitNoGpu);
  }
  Backend& ba = *a.backend;
  Backend& bb = *b.backend;

  std::vector<EnvParity> env;
  for (const Precision p : {Precision::kF32, Precision::kF64}) {
    env.push_back(compare_env(ba, bb, o, p));
  }
  const NetworkParity net = compare_network(ba, bb, o.seed);

  std::vector<TrainingComparison> training;
  json csv_files = json::array();
  if (!o.skip_training) {
    struct Size {
      Algorithm algo;
      int64_t envs, updates;
    };
    for (const Size s : {Size{Algorithm::kReinforce, 16, 10}, Size{Algorithm::kBaseline, 16, 10},
                         Size{Algorithm::kA2C, 64, 50}}) {
      training.push_back(compare_training(ba, bb, s.algo, s.envs, s.updates, o.seed));
      if (!o.metrics_out.empty()) {
        csv_files.push_back(
            write_training_csv(o.metrics_out, training.back(), a.label, training.back().a));
        csv_files.push_back(
            write_training_csv(o.metrics_out, training.back(), b.label, training.back().b));
      }
    }
  }

  const bool env_equal =
      std::all_of(env.begin(), env.end(), [](const EnvParity& r) { return r.equal(); });
  const bool passed = env_equal && net.within();
  const int code = !passed ? 1 : (gpu ? 0 : kExitNoGpu);

  if (o.json) {
    json j;
    j["command"] = "compare";
    j["sides"] = {{a.label, {{"device", ba.description()}, {"threads", ba.threads()}}},
                  {b.label, {{"device", bb.description()}, {"threads", bb.threads()}}}};
    j["order"] = {a.label, b.label};  // "a" and "b" in the differences below
    j["gpu"] = {{"available", gpu}, {"reason", gpu ? nullptr : json(no_gpu_reason)}};
    j["seed"] = o.seed;
    j["env"] = {{"envs", o.envs}, {"steps", o.steps}};
    for (const EnvParity& r : env) j["env"][to_string(r.precision)] = to_json(r);
    j["network"] = to_json(net);
    j["training"] = json::array();
    for (const auto& t : training) j["training"].push_back(to_json(t, a.label, b.label));
    j["metrics_files"] = csv_files;
    j["env_parity"] = env_equal;
    j["network_within_tolerance"] = net.within();
    j["passed"] = passed;
    j["exit_code"] = code;
    j["version"] = BATCHPOLE_VERSION;
    fmt::print("{}\n", j.dump(2));
    return code;
  }
  fmt::print("batchpole compare, seed {}: a = {} [{}], b = {} [{}]\n", o.seed, a.label,
             ba.description(), b.label, bb.description());
  if (!gpu) {
    fmt::print("no GPU ({}): two CPU configurations stand in for CPU and GPU\n", no_gpu_reason);
  }
  print_env(o, env);
  print_network(net);
  if (!training.empty()) print_training(training, a.label, b.label);
  for (const auto& f : csv_files) fmt::print("wrote {}\n", f.get<std::string>());
  fmt::print("\nenvironment parity {}; network {}; exit status {}{}\n",
             env_equal ? "holds" : "FAILS", net.within() ? "within tolerance" : "OUTSIDE tolerance",
             code, code == kExitNoGpu ? " (no GPU)" : "");
  return code;
}

}  // namespace

void add_compare_command(CLI::App& app) {
  auto o = std::make_shared<CompareOptions>();
  auto* cmd =
      app.add_subcommand("compare",
                         "Run the same configuration on the CPU and the GPU from the same seed and "
                         "compare: environment bits, network outputs, training curves");
  cmd->footer(
      "Exit status: 0 when the environments agree bit for bit and the network differences are "
      "within tolerance, 1 when not. Without a GPU, a 1-thread CPU backend is compared with a "
      "--threads one instead and the exit status is 3 when every check holds.");
  cmd->add_option("--envs", o->envs, "Environments of the parity run")->capture_default_str();
  cmd->add_option("--steps", o->steps, "Steps of the parity run")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of environments, networks and training")
      ->capture_default_str();
  cmd->add_option(
         "--threads", o->threads,
         "CPU threads of the CPU side (without a GPU: of the multi-threaded side); 0 = all")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON (keys env_parity, network_within_tolerance)");
  cmd->add_option("--metrics-out", o->metrics_out,
                  "Directory for per-update CSVs of both sides (compare_ALGO_SIDE.csv)");
  cmd->add_flag("--skip-training", o->skip_training, "Leave out the short training runs");
  cmd->callback([o] {
    const int code = run_compare(*o);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace batchpole::cli
