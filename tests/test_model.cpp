// The policy/value models of both architectures: the loss gradient against float64 finite
// differences, chunked accumulation, masks and divisors, statistics, the optimiser step against
// a host Adam, acting, and results independent of the thread count.
#include "model_fixtures.hpp"

namespace batchpole {
namespace {

using test::DeviceRollout;
using test::HostRollout;
using test::random_vec;
using test::small;
using test::to_double;

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
  BP_DEVICE_OR_SKIP(device, GetParam());
  uint32_t seed = 500;
  for (const GradCase& k : grad_cases()) {
    SCOPED_TRACE(k.name);
    ModelOptions o;
    o.seed = 9;
    o.chunk_rows = 7;
    PolicyValueModel model(*device, k.config, o);
    HostRollout h = HostRollout::make(24, 4, 3, seed += 10, k.with_value, k.with_mask);
    h.count = k.count;
    DeviceRollout d(*device, h);
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
  BP_DEVICE_OR_SKIP(device, GetParam());
  const ModelConfig c = ModelConfig::actor_critic();
  HostRollout h = HostRollout::make(300, 4, 2, 77, true, true);
  h.count = 250.0f;
  ModelOptions big, tiny;
  big.chunk_rows = 1024;
  tiny.chunk_rows = 64;
  PolicyValueModel a(*device, c, big), b(*device, c, tiny);
  DeviceRollout d(*device, h);
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
            PolicyValueModel::memory_required(c, 64, device->threads(), b.shards()).workspace);
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
      DeviceOptions bo;
      bo.device = DeviceRequest::parse("cpu");
      bo.threads = threads;
      auto device = make_device(bo);
      ModelOptions mo = o;
      mo.shards = shards;
      PolicyValueModel m(*device, c, mo);
      EXPECT_EQ(m.shards(), shards);
      DeviceRollout d(*device, h);
      m.accumulate_gradients(d.view, {0.01f, 0.5f});
      Result r;
      r.grads = m.get_gradients();
      r.loss = m.stats().total_loss;
      Buffer<int32_t> actions(*device, 3001);
      Buffer<float> log_prob(*device, 3001), values(*device, 3001);
      m.act(d.view.obs, 17, actions.data(), log_prob.data(), values.data());
      r.actions = actions.to_host();
      r.log_prob = log_prob.to_host();
      r.values = values.to_host();
      return r;
    };
    // Making a model leaves the thread count of devices made later alone (an OpenMP build of
    // OpenBLAS would set it with openblas_set_num_threads).
    const int all_threads = make_device({DeviceRequest::parse("cpu")})->threads();
    const Result one = run(1, 16);
    EXPECT_EQ(make_device({DeviceRequest::parse("cpu")})->threads(), all_threads);
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
  BP_DEVICE_OR_SKIP(device, GetParam());
  for (const Architecture arch : {Architecture::kSeparate, Architecture::kActorCritic}) {
    const ModelConfig c = small(arch);
    ModelOptions o;
    o.adam.lr = 0.01;
    o.adam.max_grad_norm = 0.05;  // small enough to clip
    o.value_adam.lr = 0.003;      // no clipping for the value network
    PolicyValueModel model(*device, c, o);
    const HostRollout h = HostRollout::make(40, 4, 3, 31, true, false);
    DeviceRollout d(*device, h);
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
  BP_DEVICE_OR_SKIP(device, GetParam());
  ModelOptions o;
  o.seed = 4;
  o.chunk_rows = 100;  // several chunks: the draw must be keyed by the global row
  PolicyValueModel model(*device, ModelConfig::actor_critic(), o);
  const int64_t n = 1000;
  const auto hobs = random_vec(static_cast<std::size_t>(n * 4), 41, -2.0f, 2.0f);
  Buffer<float> obs(*device, hobs.size()), lp(*device, n), v(*device, n), v2(*device, n),
      z(*device, n * 2), probs(*device, n * 2);
  Buffer<int32_t> a(*device, n), a2(*device, n), a3(*device, n);
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
  PolicyValueModel same(*device, ModelConfig::actor_critic(), o2);
  same.act(om, 12, a3.data());
  EXPECT_EQ(a3.to_host(), ha);
}

// Parameters and optimiser state copied into a fresh model continue exactly as the original.
TEST_P(ModelTest, OptimizerStateRoundTrip) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const ModelConfig c = small(Architecture::kSeparate);
  PolicyValueModel a(*device, c), b(*device, c);
  const HostRollout h = HostRollout::make(30, 4, 3, 91, true, false);
  DeviceRollout d(*device, h);
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

}  // namespace
}  // namespace batchpole
