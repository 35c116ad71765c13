// The policy/value models of both architectures: the loss gradient against float64 finite
// differences, chunked accumulation, masks and divisors, statistics, the optimiser step against
// a host Adam, acting, memory bounds, shape errors, and CPU-vs-GPU parity.
#include <cmath>
#include <limits>
#include <random>

#include "batchpole/policy_value.hpp"
#include "nn_reference.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

using test::random_vec;

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// A rollout on the host (for the reference) and on a device (for the model).
struct HostRollout {
  int64_t rows = 0;
  int32_t obs_dim = 4;
  std::vector<float> obs, weights, targets;
  std::vector<int32_t> actions;
  std::vector<uint8_t> mask;
  float count = 0;

  static HostRollout make(int64_t rows, int32_t obs_dim, int32_t num_actions, uint32_t seed,
                          bool with_value, bool with_mask) {
    HostRollout r;
    r.rows = rows;
    r.obs_dim = obs_dim;
    r.obs = random_vec(static_cast<std::size_t>(rows * obs_dim), seed, -2.0f, 2.0f);
    r.weights = random_vec(static_cast<std::size_t>(rows), seed + 1, -2.0f, 2.0f);
    if (with_value) r.targets = random_vec(static_cast<std::size_t>(rows), seed + 2, -1.0f, 3.0f);
    std::mt19937 rng(seed + 3);
    for (int64_t i = 0; i < rows; ++i) {
      r.actions.push_back(static_cast<int32_t>(rng() % static_cast<uint32_t>(num_actions)));
    }
    if (with_mask) {
      for (int64_t i = 0; i < rows; ++i) r.mask.push_back(rng() % 4 == 0 ? 0 : 1);
      // Garbage in masked slots must not matter (observations stay finite).
      for (int64_t i = 0; i < rows; ++i) {
        if (r.mask[i] != 0) continue;
        r.weights[i] = std::numeric_limits<float>::quiet_NaN();
        if (with_value) r.targets[i] = std::numeric_limits<float>::infinity();
        r.actions[i] = -3;
      }
    }
    return r;
  }

  [[nodiscard]] ref::Rollout to_ref() const {
    ref::Rollout o;
    o.rows = rows;
    o.obs = to_double(obs);
    o.actions = actions;
    o.weights = to_double(weights);
    o.targets = to_double(targets);
    o.mask = mask;
    o.count = count;
    return o;
  }
};

struct DeviceRollout {
  Buffer<float> obs, weights, targets;
  Buffer<int32_t> actions;
  Buffer<uint8_t> mask;
  RolloutView view;
  DeviceRollout(Backend& b, const HostRollout& h) {
    obs = Buffer<float>(b, h.obs.size());
    obs.from_host(h.obs);
    weights = Buffer<float>(b, h.weights.size());
    weights.from_host(h.weights);
    actions = Buffer<int32_t>(b, h.actions.size());
    actions.from_host(h.actions);
    view.obs = {obs.data(), h.rows, h.obs_dim};
    view.actions = actions.data();
    view.weights = weights.data();
    if (!h.targets.empty()) {
      targets = Buffer<float>(b, h.targets.size());
      targets.from_host(h.targets);
      view.value_targets = targets.data();
    }
    if (!h.mask.empty()) {
      mask = Buffer<uint8_t>(b, h.mask.size());
      mask.from_host(h.mask);
      view.mask = mask.data();
    }
    view.count = h.count;
  }
};

ModelConfig small(Architecture arch, Activation act = Activation::kRelu) {
  ModelConfig c = arch == Architecture::kSeparate ? ModelConfig::separate(4, 3, 6)
                                                  : ModelConfig::actor_critic(4, 3, 6);
  c.activation = act;
  return c;
}

struct GradCase {
  const char* name;
  ModelConfig config;
  bool with_value;
  bool with_mask;
  float count;  // 0: counted
  LossConfig loss;
};

std::vector<GradCase> grad_cases() {
  return {
      {"separate, REINFORCE with baseline",
       small(Architecture::kSeparate),
       true,
       false,
       0,
       {0.0f, 1.0f}},
      {"separate, masked, entropy, fixed divisor",
       small(Architecture::kSeparate),
       true,
       true,
       40,
       {0.03f, 1.0f}},
      {"actor-critic, A2C loss", small(Architecture::kActorCritic), true, false, 0, {0.01f, 0.5f}},
      {"actor-critic, masked, counted divisor",
       small(Architecture::kActorCritic),
       true,
       true,
       0,
       {0.2f, 0.5f}},
      {"actor-critic tanh, policy loss only",
       small(Architecture::kActorCritic, Activation::kTanh),
       false,
       false,
       0,
       {0.05f, 0.5f}},
  };
}

class ModelTest : public ::testing::TestWithParam<std::string> {};

// Every parameter's gradient of the full loss (policy term, entropy bonus, value term; masks and
// divisors) against central differences of the float64 reference loss, processed in chunks of
// 7 rows so that accumulation across chunks is part of what is checked.
TEST_P(ModelTest, LossGradientMatchesFloat64FiniteDifferences) {
  BP_BACKEND_OR_SKIP(backend, GetParam());
  uint32_t seed = 500;
  for (const GradCase& k : grad_cases()) {
    SCOPED_TRACE(k.name);
    ModelOptions o;
    o.seed = 9;
    o.chunk_rows = 7;
    PolicyValueModel model(*backend, k.config, o);
    HostRollout h = HostRollout::make(24, 4, 3, seed += 10, k.with_value, k.with_mask);
    h.count = k.count;
    DeviceRollout d(*backend, h);
    model.accumulate_gradients(d.view, k.loss);
    const auto g = model.get_gradients();
    const auto p = to_double(model.get_parameters());
    const ref::Rollout r = h.to_ref();

    std::vector<int64_t> all(p.size());
    for (std::size_t i = 0; i < p.size(); ++i) all[i] = static_cast<int64_t>(i);
    const auto fd = ref::finite_difference(
        [&](const std::vector<double>& pp) {
          return ref::model_loss(k.config, pp, r, k.loss).total;
        },
        p, all);
    std::vector<double> g_ref;
    const ref::LossParts parts = ref::model_loss(k.config, p, r, k.loss, &g_ref);
    double scale = 1e-3;
    for (const double v : fd) scale = std::max(scale, std::abs(v));
    for (std::size_t i = 0; i < g.size(); ++i) {
      ASSERT_NEAR(g_ref[i], fd[i], 1e-6 * scale) << "reference, parameter " << i;
      ASSERT_NEAR(g[i], fd[i], 1e-4 * scale) << "parameter " << i;
    }
    if (!k.with_value) {
      for (int64_t i = model.value_offset(); i < model.parameter_count(); ++i)
        ASSERT_EQ(g[i], 0.0f);
    }

    // The statistics are the reference's sums.
    const UpdateStats s = model.stats();
    EXPECT_NEAR(s.divisor, parts.divisor, 1e-6);
    EXPECT_NEAR(s.valid_samples, parts.valid, 1e-6);
    EXPECT_NEAR(s.policy_loss, -parts.weighted_log_prob / parts.divisor, 1e-5);
    EXPECT_NEAR(s.entropy, parts.entropy / parts.divisor, 1e-5);
    EXPECT_NEAR(s.value_loss, parts.squared_error / parts.divisor, 1e-4 * (1 + s.value_loss));
    EXPECT_NEAR(s.total_loss, parts.total, 1e-4 * (1 + std::abs(parts.total)));
  }
}

// A rollout given as two kAccumulate pieces equals the rollout in one call, and chunk size does
// not change the result.
TEST_P(ModelTest, AccumulationAcrossCallsAndChunkSizes) {
  BP_BACKEND_OR_SKIP(backend, GetParam());
  const ModelConfig c = ModelConfig::actor_critic();
  HostRollout h = HostRollout::make(300, 4, 2, 77, true, true);
  h.count = 250.0f;
  ModelOptions big, tiny;
  big.chunk_rows = 1024;
  tiny.chunk_rows = 64;
  PolicyValueModel a(*backend, c, big), b(*backend, c, tiny);
  DeviceRollout d(*backend, h);
  a.accumulate_gradients(d.view, {0.01f, 0.5f});
  RolloutView first = d.view, second = d.view;
  first.obs.rows = 120;
  second.obs = {d.view.obs.data + 120 * 4, 180, 4};
  second.actions += 120;
  second.weights += 120;
  second.value_targets += 120;
  second.mask += 120;
  b.accumulate_gradients(first, {0.01f, 0.5f}, GradientMode::kOverwrite);
  b.accumulate_gradients(second, {0.01f, 0.5f}, GradientMode::kAccumulate);
  const auto ga = a.get_gradients();
  const auto gb = b.get_gradients();
  double scale = 0;
  for (const float v : ga) scale = std::max(scale, static_cast<double>(std::abs(v)));
  for (std::size_t i = 0; i < ga.size(); ++i) ASSERT_NEAR(gb[i], ga[i], 1e-5 * scale) << i;
  const UpdateStats sa = a.stats(), sb = b.stats();
  EXPECT_NEAR(sb.policy_loss, sa.policy_loss, 1e-5);
  EXPECT_NEAR(sb.entropy, sa.entropy, 1e-5);
  EXPECT_NEAR(sb.value_loss, sa.value_loss, 1e-4);
  EXPECT_EQ(sb.valid_samples, sa.valid_samples);
  // Workspace is sized by the chunk, not the rollout.
  EXPECT_EQ(b.memory().workspace,
            PolicyValueModel::memory_required(c, 64, backend->threads(), b.shards()).workspace);
  EXPECT_LT(b.memory().workspace, a.memory().workspace);
}

// The batch is cut into shards that run as parallel tasks on the CPU: gradients, statistics and
// acting are bit for bit the same for any thread count (shards summed in a fixed order), and
// the shard count only regroups the sums.
TEST(ModelShards, ResultsDoNotDependOnThreadCount) {
  for (const Architecture arch : {Architecture::kSeparate, Architecture::kActorCritic}) {
    const ModelConfig c =
        arch == Architecture::kSeparate ? ModelConfig::separate() : ModelConfig::actor_critic();
    const HostRollout h = HostRollout::make(3001, 4, 2, 91, true, true);
    ModelOptions o;
    o.seed = 5;
    o.chunk_rows = 100;  // several chunks per shard
    struct Result {
      std::vector<float> grads, values, log_prob;
      std::vector<int32_t> actions;
      double loss = 0;
    };
    const auto run = [&](int threads, int32_t shards) {
      BackendOptions bo;
      bo.device = DeviceRequest::parse("cpu");
      bo.threads = threads;
      auto backend = make_backend(bo);
      ModelOptions mo = o;
      mo.shards = shards;
      PolicyValueModel m(*backend, c, mo);
      EXPECT_EQ(m.shards(), shards);
      DeviceRollout d(*backend, h);
      m.accumulate_gradients(d.view, {0.01f, 0.5f});
      Result r;
      r.grads = m.get_gradients();
      r.loss = m.stats().total_loss;
      Buffer<int32_t> actions(*backend, 3001);
      Buffer<float> log_prob(*backend, 3001), values(*backend, 3001);
      m.act(d.view.obs, 17, actions.data(), log_prob.data(), values.data());
      r.actions = actions.to_host();
      r.log_prob = log_prob.to_host();
      r.values = values.to_host();
      return r;
    };
    // Making a model leaves the thread count of backends made later alone (an OpenMP build of
    // OpenBLAS would set it with openblas_set_num_threads).
    const int all_threads = make_backend({DeviceRequest::parse("cpu")})->threads();
    const Result one = run(1, 16);
    EXPECT_EQ(make_backend({DeviceRequest::parse("cpu")})->threads(), all_threads);
    for (const int threads : {2, 3}) {
      const Result other = run(threads, 16);
      EXPECT_EQ(other.grads, one.grads) << threads << " threads";
      EXPECT_EQ(other.loss, one.loss) << threads << " threads";
      EXPECT_EQ(other.actions, one.actions) << threads << " threads";
      EXPECT_EQ(other.log_prob, one.log_prob) << threads << " threads";
      EXPECT_EQ(other.values, one.values) << threads << " threads";
    }
    // One shard sums in another order: the same gradient to float rounding.
    const Result single = run(2, 1);
    double scale = 0;
    for (const float v : one.grads) scale = std::max(scale, static_cast<double>(std::abs(v)));
    ASSERT_GT(scale, 0.0);
    for (std::size_t i = 0; i < one.grads.size(); ++i) {
      ASSERT_NEAR(single.grads[i], one.grads[i], 1e-5 * scale) << i;
    }
    EXPECT_NEAR(single.loss, one.loss, 1e-5 * (1 + std::abs(one.loss)));
    EXPECT_EQ(single.actions, one.actions);
  }
}

// step(): clip and Adam per optimiser, against a float64 Adam on the host from the same
// gradients; the separate architecture has two optimisers with their own rates and clipping.
TEST_P(ModelTest, StepIsClippedAdamPerOptimiser) {
  BP_BACKEND_OR_SKIP(backend, GetParam());
  for (const Architecture arch : {Architecture::kSeparate, Architecture::kActorCritic}) {
    const ModelConfig c = small(arch);
    ModelOptions o;
    o.adam.lr = 0.01;
    o.adam.max_grad_norm = 0.05;  // small enough to clip
    o.value_adam.lr = 0.003;      // no clipping for the value network
    PolicyValueModel model(*backend, c, o);
    const HostRollout h = HostRollout::make(40, 4, 3, 31, true, false);
    DeviceRollout d(*backend, h);
    struct Group {
      int64_t begin, end;
      AdamConfig cfg;
      std::vector<double> m, v;
    };
    std::vector<Group> groups;
    if (arch == Architecture::kSeparate) {
      groups.push_back({0, model.value_offset(), o.adam, {}, {}});
      groups.push_back({model.value_offset(), model.parameter_count(), o.value_adam, {}, {}});
    } else {
      groups.push_back({0, model.parameter_count(), o.adam, {}, {}});
    }
    for (auto& g : groups) {
      g.m.assign(static_cast<std::size_t>(g.end - g.begin), 0.0);
      g.v = g.m;
    }
    std::vector<double> p = to_double(model.get_parameters());
    for (int t = 1; t <= 3; ++t) {
      model.accumulate_gradients(d.view, {0.01f, 0.5f});
      const auto grad = model.get_gradients();
      model.step();
      std::vector<double> norms;
      for (auto& g : groups) {
        double sq = 0;
        for (int64_t i = g.begin; i < g.end; ++i) sq += static_cast<double>(grad[i]) * grad[i];
        const double norm = std::sqrt(sq);
        norms.push_back(norm);
        const double mx = g.cfg.max_grad_norm;
        const double scale = (mx > 0 && norm > mx) ? mx / (norm + 1e-6) : 1.0;
        const double b1 = g.cfg.beta1, b2 = g.cfg.beta2;
        for (int64_t i = g.begin; i < g.end; ++i) {
          const auto k = static_cast<std::size_t>(i - g.begin);
          const double gi = grad[i] * scale;
          g.m[k] = b1 * g.m[k] + (1 - b1) * gi;
          g.v[k] = b2 * g.v[k] + (1 - b2) * gi * gi;
          const double mhat = g.m[k] / (1 - std::pow(b1, t));
          const double vhat = g.v[k] / (1 - std::pow(b2, t));
          p[i] -= g.cfg.lr * mhat / (std::sqrt(vhat) + g.cfg.eps);
        }
      }
      EXPECT_GT(norms[0], o.adam.max_grad_norm) << "the test means to clip";
      const auto got = model.get_parameters();
      for (std::size_t i = 0; i < p.size(); ++i)
        ASSERT_NEAR(got[i], p[i], 2e-6) << "step " << t << " parameter " << i;
      const UpdateStats s = model.stats();
      EXPECT_NEAR(s.grad_norm, norms[0], 1e-5 * norms[0]);
      if (arch == Architecture::kSeparate) {
        EXPECT_NEAR(s.value_grad_norm, norms[1], 1e-5 * norms[1]);
      }
    }
  }
}

TEST_P(ModelTest, ActSamplesFromThePolicyAndReportsLogProbAndValue) {
  BP_BACKEND_OR_SKIP(backend, GetParam());
  ModelOptions o;
  o.seed = 4;
  o.chunk_rows = 100;  // several chunks: the draw must be keyed by the global row
  PolicyValueModel model(*backend, ModelConfig::actor_critic(), o);
  const int64_t n = 1000;
  const auto hobs = random_vec(static_cast<std::size_t>(n * 4), 41, -2.0f, 2.0f);
  Buffer<float> obs(*backend, hobs.size()), lp(*backend, n), v(*backend, n), v2(*backend, n),
      z(*backend, n * 2), probs(*backend, n * 2);
  Buffer<int32_t> a(*backend, n), a2(*backend, n), a3(*backend, n);
  obs.from_host(hobs);
  const ConstMatrix om{obs.data(), n, 4};
  model.act(om, 12, a.data(), lp.data(), v.data());
  model.values(om, v2.data());
  model.logits(om, z.data());
  model.probabilities(om, probs.data());
  const auto ha = a.to_host();
  const auto hlp = lp.to_host();
  const auto hz = z.to_host();
  const auto hp = probs.to_host();
  EXPECT_EQ(v.to_host(), v2.to_host());
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(ha[i] == 0 || ha[i] == 1);
    const float u = policy_uniform(4, static_cast<uint32_t>(i), 12);
    ASSERT_EQ(ha[i], policy_sample_row(hz.data() + 2 * i, 2, u, nullptr, nullptr)) << i;
    ASSERT_NEAR(hlp[i], std::log(hp[2 * i + ha[i]]), 1e-5);
  }
  // Same step, same actions; another step, other actions.
  model.act(om, 12, a2.data());
  EXPECT_EQ(a2.to_host(), ha);
  model.act(om, 13, a3.data());
  EXPECT_NE(a3.to_host(), ha);
  // And a chunk size that differs gives the same draws.
  ModelOptions o2 = o;
  o2.chunk_rows = 0;
  PolicyValueModel same(*backend, ModelConfig::actor_critic(), o2);
  same.act(om, 12, a3.data());
  EXPECT_EQ(a3.to_host(), ha);
}

// Parameters and optimiser state copied into a fresh model continue exactly as the original.
TEST_P(ModelTest, OptimizerStateRoundTrip) {
  BP_BACKEND_OR_SKIP(backend, GetParam());
  const ModelConfig c = small(Architecture::kSeparate);
  PolicyValueModel a(*backend, c), b(*backend, c);
  const HostRollout h = HostRollout::make(30, 4, 3, 91, true, false);
  DeviceRollout d(*backend, h);
  for (int t = 0; t < 2; ++t) {
    a.accumulate_gradients(d.view, {});
    a.step();
  }
  b.set_parameters(a.get_parameters());
  for (int i = 0; i < a.optimizer_count(); ++i) b.set_optimizer_state(i, a.get_optimizer_state(i));
  EXPECT_EQ(b.optimizer(1).steps(), 2);
  for (PolicyValueModel* m : {&a, &b}) {
    m->accumulate_gradients(d.view, {});
    m->step();
  }
  EXPECT_EQ(a.get_parameters(), b.get_parameters());
  PolicyValueModel::OptimizerState bad = a.get_optimizer_state(0);
  bad.moments.pop_back();
  EXPECT_THROW(b.set_optimizer_state(0, bad), Error);
  EXPECT_THROW((void)b.get_optimizer_state(2), Error);
}

INSTANTIATE_TEST_SUITE_P(Devices, ModelTest, ::testing::ValuesIn(test::devices()));

// CPU against GPU on the same seed: identical initial parameters (the draw is integer and +-*
// arithmetic), forward outputs and gradients within float rounding of two BLAS libraries,
// sampled actions identical except where a draw falls within rounding of a category boundary,
// one optimiser step within tolerance.
TEST(ModelParity, CpuAndGpuAgree) {
  BP_BACKEND_OR_SKIP(gpu, "cuda");
  auto cpu = make_backend({DeviceRequest::parse("cpu")});
  for (const Architecture arch : {Architecture::kSeparate, Architecture::kActorCritic}) {
    const ModelConfig c =
        arch == Architecture::kSeparate ? ModelConfig::separate() : ModelConfig::actor_critic();
    ModelOptions o;
    o.seed = 2024;
    o.adam.max_grad_norm = 0.5;
    PolicyValueModel mc(*cpu, c, o), mg(*gpu, c, o);
    ASSERT_EQ(mc.get_parameters(), mg.get_parameters()) << "initial parameters differ";
    const int64_t n = 4096;
    const HostRollout h = HostRollout::make(n, 4, 2, 55, true, true);
    DeviceRollout dc(*cpu, h), dg(*gpu, h);
    Buffer<float> zc(*cpu, n * 2), zg(*gpu, n * 2), vc(*cpu, n), vg(*gpu, n);
    Buffer<int32_t> ac(*cpu, n), ag(*gpu, n);
    mc.act(dc.view.obs, 3, ac.data(), nullptr, vc.data());
    mg.act(dg.view.obs, 3, ag.data(), nullptr, vg.data());
    mc.logits(dc.view.obs, zc.data());
    mg.logits(dg.view.obs, zg.data());
    const auto hzc = zc.to_host(), hzg = zg.to_host(), hvc = vc.to_host(), hvg = vg.to_host();
    for (std::size_t i = 0; i < hzc.size(); ++i)
      ASSERT_NEAR(hzg[i], hzc[i], 1e-5 * (1 + std::abs(hzc[i])));
    for (std::size_t i = 0; i < hvc.size(); ++i)
      ASSERT_NEAR(hvg[i], hvc[i], 1e-5 * (1 + std::abs(hvc[i])));
    const auto hac = ac.to_host(), hag = ag.to_host();
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i) differ += hac[i] != hag[i] ? 1 : 0;
    EXPECT_LE(differ, 2) << "sampled actions differ in " << differ << " of " << n << " envs";

    mc.accumulate_gradients(dc.view, {0.01f, 0.5f});
    mg.accumulate_gradients(dg.view, {0.01f, 0.5f});
    const auto gc = mc.get_gradients(), gg = mg.get_gradients();
    double scale = 0;
    for (const float v : gc) scale = std::max(scale, static_cast<double>(std::abs(v)));
    for (std::size_t i = 0; i < gc.size(); ++i) ASSERT_NEAR(gg[i], gc[i], 1e-4 * scale) << i;
    mc.step();
    mg.step();
    const auto pc = mc.get_parameters(), pg = mg.get_parameters();
    // Adam moves each parameter by about lr; where a gradient is near zero its direction is
    // rounding, so allow lr-sized differences only there (counted) and tight agreement elsewhere.
    int64_t loose = 0;
    for (std::size_t i = 0; i < pc.size(); ++i) {
      const double diff = std::abs(static_cast<double>(pg[i]) - pc[i]);
      if (diff > 1e-6) ++loose;
      ASSERT_LE(diff, 2.0 * o.adam.lr) << i;
    }
    EXPECT_LE(loose, static_cast<int64_t>(pc.size() / 100)) << "parameters off after one step";
    const UpdateStats sc = mc.stats(), sg = mg.stats();
    EXPECT_NEAR(sg.policy_loss, sc.policy_loss, 1e-4 * (1 + std::abs(sc.policy_loss)));
    EXPECT_NEAR(sg.value_loss, sc.value_loss, 1e-4 * (1 + std::abs(sc.value_loss)));
    EXPECT_NEAR(sg.grad_norm, sc.grad_norm, 1e-4 * sc.grad_norm);
  }
}

template <class F>
std::string error_of(F f, Error::Kind kind = Error::Kind::kInvalidArgument) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no batchpole::Error thrown";
  return "";
}

// Recording: act() in three calls keeps every layer's output, and accumulate_gradients on the
// recorded rollout (no forward pass) gives the gradients and statistics of the plain one;
// misuse (parameters changed, rows not recorded, values not recorded, gaps) is refused.
class RecordTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RecordTest, RecordedActivationsGiveTheSameGradients) {
  BP_BACKEND_OR_SKIP(backend, GetParam());
  for (const Architecture arch : {Architecture::kSeparate, Architecture::kActorCritic}) {
    const ModelConfig c =
        arch == Architecture::kSeparate ? ModelConfig::separate() : ModelConfig::actor_critic();
    ModelOptions o;
    o.seed = 12;
    o.chunk_rows = 50;  // several chunks per act() and per shard
    const int64_t n = 230;
    const HostRollout h = HostRollout::make(3 * n, 4, 2, 5, true, true);
    DeviceRollout d(*backend, h);
    PolicyValueModel plain(*backend, c, o), rec(*backend, c, o);
    rec.reserve_record(3 * n);
    EXPECT_EQ(rec.memory().record,
              static_cast<std::size_t>(3 * n) * PolicyValueModel::record_bytes_per_row(c));
    Buffer<int32_t> actions(*backend, static_cast<std::size_t>(3 * n));
    Buffer<float> values(*backend, static_cast<std::size_t>(3 * n));
    for (int64_t t = 0; t < 3; ++t) {
      const ConstMatrix obs{d.view.obs.data + t * n * 4, n, 4};
      rec.act(obs, static_cast<uint64_t>(t), actions.data() + t * n, nullptr, values.data() + t * n,
              t * n);
    }
    RolloutView view = d.view;
    plain.accumulate_gradients(view, {0.01f, 0.5f});
    view.recorded = true;
    rec.accumulate_gradients(view, {0.01f, 0.5f});
    const auto ga = plain.get_gradients();
    const auto gb = rec.get_gradients();
    double scale = 0;
    for (const float v : ga) scale = std::max(scale, static_cast<double>(std::abs(v)));
    ASSERT_GT(scale, 0.0);
    for (std::size_t i = 0; i < ga.size(); ++i) ASSERT_NEAR(gb[i], ga[i], 1e-5 * scale) << i;
    const UpdateStats sa = plain.stats(), sb = rec.stats();
    EXPECT_NEAR(sb.total_loss, sa.total_loss, 1e-5 * (1 + std::abs(sa.total_loss)));
    EXPECT_EQ(sb.valid_samples, sa.valid_samples);

    // More rows than were recorded.
    RolloutView longer = view;
    longer.obs.rows = 3 * n + 1;
    std::string msg = error_of([&] { rec.accumulate_gradients(longer, {0.01f, 0.5f}); });
    EXPECT_NE(msg.find("rows were recorded"), std::string::npos) << msg;
    // After a step the recording is stale.
    rec.step();
    msg = error_of([&] { rec.accumulate_gradients(view, {0.01f, 0.5f}); });
    EXPECT_NE(msg.find("parameters changed"), std::string::npos) << msg;
    // A gap, and a recording beyond the room reserved.
    msg = error_of([&] {
      rec.act({d.view.obs.data, n, 4}, 0, actions.data(), nullptr, nullptr, n);
    });
    EXPECT_NE(msg.find("continues at row"), std::string::npos) << msg;
    rec.act({d.view.obs.data, n, 4}, 0, actions.data(), nullptr, nullptr, 0);  // no values
    msg = error_of([&] {
      rec.act({d.view.obs.data, 3 * n, 4}, 0, actions.data(), nullptr, nullptr, n);
    });
    EXPECT_NE(msg.find("reserve_record"), std::string::npos) << msg;
    // The value loss needs the value network's recorded activations.
    RolloutView first = view;
    first.obs.rows = n;
    msg = error_of([&] { rec.accumulate_gradients(first, {0.01f, 0.5f}); });
    EXPECT_NE(msg.find("without values"), std::string::npos) << msg;
    // Writing the parameters through parameters() makes a recording stale.
    rec.act({d.view.obs.data, n, 4}, 0, actions.data(), nullptr, values.data(), 0);
    rec.accumulate_gradients(first, {0.01f, 0.5f});
    (void)rec.parameters();
    msg = error_of([&] { rec.accumulate_gradients(first, {0.01f, 0.5f}); });
    EXPECT_NE(msg.find("parameters changed"), std::string::npos) << msg;

    // Room without the value network (acting without values, as REINFORCE): smaller, and a
    // policy-only loss runs from it while a value loss is refused even if act() got values.
    PolicyValueModel lean(*backend, c, o);
    lean.reserve_record(n, false);
    EXPECT_LT(PolicyValueModel::record_bytes_per_row(c, false),
              PolicyValueModel::record_bytes_per_row(c, true));
    EXPECT_EQ(lean.memory().record,
              static_cast<std::size_t>(n) * PolicyValueModel::record_bytes_per_row(c, false));
    lean.act({d.view.obs.data, n, 4}, 0, actions.data(), nullptr, values.data(), 0);
    msg = error_of([&] { lean.accumulate_gradients(first, {0.01f, 0.5f}); });
    EXPECT_NE(msg.find("without values"), std::string::npos) << msg;
    RolloutView policy_only = first;
    policy_only.value_targets = nullptr;
    lean.accumulate_gradients(policy_only, {0.01f, 0.5f});
    PolicyValueModel again(*backend, c, o);
    policy_only.recorded = false;
    again.accumulate_gradients(policy_only, {0.01f, 0.5f});
    const auto gl = lean.get_gradients();
    const auto gp = again.get_gradients();
    double s2 = 0;
    for (const float v : gp) s2 = std::max(s2, static_cast<double>(std::abs(v)));
    ASSERT_GT(s2, 0.0);
    for (std::size_t i = 0; i < gp.size(); ++i) ASSERT_NEAR(gl[i], gp[i], 1e-5 * s2) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, RecordTest, ::testing::ValuesIn(test::devices()));

TEST(ModelShapes, MismatchesAndEmptyBatchesAreClearErrors) {
  auto backend = make_backend({DeviceRequest::parse("cpu")});
  PolicyValueModel model(*backend);
  Buffer<float> obs(*backend, 400), out(*backend, 400);
  Buffer<int32_t> a(*backend, 100);
  std::string msg = error_of([&] { model.act({obs.data(), 10, 3}, 0, a.data()); });
  EXPECT_NE(msg.find("observations are 10 x 3 but the model takes 10 x 4"), std::string::npos)
      << msg;
  msg = error_of([&] { model.act({obs.data(), 0, 4}, 0, a.data()); });
  EXPECT_NE(msg.find("empty batch"), std::string::npos) << msg;
  msg = error_of([&] { model.values({obs.data(), 5, 5}, out.data()); });
  EXPECT_NE(msg.find("5 x 5"), std::string::npos) << msg;
  RolloutView r;
  r.obs = {obs.data(), 0, 4};
  r.actions = a.data();
  r.weights = out.data();
  msg = error_of([&] { model.accumulate_gradients(r, {}); });
  EXPECT_NE(msg.find("empty batch"), std::string::npos) << msg;
  r.obs = {obs.data(), 20, 2};
  msg = error_of([&] { model.accumulate_gradients(r, {}); });
  EXPECT_NE(msg.find("20 x 2"), std::string::npos) << msg;
  r.obs = {obs.data(), 20, 4};
  r.weights = nullptr;
  msg = error_of([&] { model.accumulate_gradients(r, {}); });
  EXPECT_NE(msg.find("needs actions and weights"), std::string::npos) << msg;
  // Out-of-range actions of valid samples are refused on the CPU.
  std::vector<int32_t> bad(20, 0);
  bad[7] = 2;
  Buffer<int32_t> bad_a(*backend, 20);
  bad_a.from_host(bad);
  r.actions = bad_a.data();
  r.weights = out.data();
  msg = error_of([&] { model.accumulate_gradients(r, {}); });
  EXPECT_NE(msg.find("action 2 of sample 7"), std::string::npos) << msg;
  msg = error_of([&] { model.set_parameters(std::vector<float>(3)); });
  EXPECT_NE(msg.find("3 values given"), std::string::npos) << msg;

  ModelConfig c = ModelConfig::actor_critic();
  c.num_actions = 0;
  msg = error_of([&] { PolicyValueModel m(*backend, c); });
  EXPECT_NE(msg.find("num_actions is 0"), std::string::npos) << msg;
  c = ModelConfig::separate();
  c.shared_hidden = {64};
  msg = error_of([&] { PolicyValueModel m(*backend, c); });
  EXPECT_NE(msg.find("share no layer"), std::string::npos) << msg;
}

TEST(ModelMemory, ReportedAndRefusedWhenTooLarge) {
  auto backend = make_backend({DeviceRequest::parse("cpu")});
  ModelOptions o;
  o.chunk_rows = 1000;
  PolicyValueModel model(*backend, ModelConfig::actor_critic(), o);
  const MemoryReport m = model.memory();
  EXPECT_EQ(m.chunk_rows, 1000);
  EXPECT_EQ(m.parameters, 2 * sizeof(float) * static_cast<std::size_t>(model.parameter_count()));
  EXPECT_GT(m.workspace, 1000 * 64 * sizeof(float));
  EXPECT_EQ(m.total(), model.bytes());
  const MemoryReport need = PolicyValueModel::memory_required(ModelConfig::actor_critic(), 1000,
                                                              backend->threads(), model.shards());
  EXPECT_EQ(need.workspace, m.workspace);
  EXPECT_EQ(need.optimizer, m.optimizer);
  // A chunk whose workspace exceeds free memory is refused before anything is allocated.
  // Hidden width 4096 and 2^23 rows: hundreds of GB, beyond any machine that runs the tests.
  o.chunk_rows = int64_t{1} << 23;
  const ModelConfig wide = ModelConfig::actor_critic(4, 2, 4096);
  ASSERT_GT(PolicyValueModel::memory_required(wide, o.chunk_rows).total(),
            backend->available_memory());
  const std::string msg =
      error_of([&] { PolicyValueModel too_big(*backend, wide, o); }, Error::Kind::kOutOfMemory);
  EXPECT_NE(msg.find("lower ModelOptions::chunk_rows"), std::string::npos) << msg;
}

}  // namespace
}  // namespace batchpole
