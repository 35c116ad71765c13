// Populations: many agents trained as one batch. On the CPU each agent of a population is
// exactly its solo run (every record and every parameter, bit for bit, including an agent that
// stops early); batched agents (the GPU's plan, and the CPU under that plan) agree with them
// within float tolerance; the per-agent operations are each agent's own call; a population's
// checkpoint resumes exactly.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "batchpole/nn/model.hpp"
#include "batchpole/rl/rl_ops.hpp"
#include "batchpole/rl/trainer.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<Device> cpu(int threads, bool batch_agents = false) {
  DeviceOptions o;
  o.device = DeviceRequest::parse("cpu");
  o.threads = threads;
  if (batch_agents) {
    auto plan = std::make_shared<DevicePlan>(make_device(o)->plan());
    plan->batch_agents = true;
    plan->shards = 1;
    o.plan = plan;
  }
  return make_device(o);
}

struct Case {
  std::string name;
  TrainConfig config;
  int updates;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> cases() {
  std::vector<Case> out;
  TrainConfig c;
  c.envs = 8;
  c.seed = 40;
  c.algorithm = Algorithm::kReinforce;
  c.lr = 3e-3F;
  out.push_back({"reinforce", c, 4});
  c.algorithm = Algorithm::kBaseline;
  out.push_back({"baseline", c, 4});
  c.algorithm = Algorithm::kA2C;
  c.n_steps = 0;  // whole episodes: the agents' rollouts end at different steps
  out.push_back({"a2c_whole_episodes", c, 4});
  c.n_steps = 16;
  c.envs = 96;  // more than one shard per agent on two threads
  out.push_back({"a2c", c, 12});
  c.envs = 8;
  c.algorithm = Algorithm::kPpo;
  c.gae_lambda = 0.95F;
  c.n_steps = 32;
  c.minibatches = 4;
  c.epochs = 4;
  c.target_kl = 0.004F;  // stops some agents' epochs early, not others'
  c.lr_anneal_steps = 20000;
  out.push_back({"ppo", c, 6});
  return out;
}

// Everything an update reports (no wall-clock values), as text that compares exactly.
std::string line_of(const UpdateRecord& r) {
  char buf[640];
  std::snprintf(buf, sizeof(buf),
                "%lld %lld %lld %lld %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %d",
                static_cast<long long>(r.update), static_cast<long long>(r.env_steps),
                static_cast<long long>(r.episodes), static_cast<long long>(r.rollout_steps),
                r.recent.return_sum, r.loss.policy_loss, r.value_loss, r.loss.entropy,
                r.loss.grad_norm, r.loss.value_grad_norm, r.explained_variance, r.loss.approx_kl,
                r.loss.clip_fraction, r.epochs);
  return buf;
}

class PopulationTest : public ::testing::TestWithParam<Case> {};

TEST_P(PopulationTest, EachAgentIsExactlyItsSoloRun) {
  const Case& tc = GetParam();
  constexpr int64_t kAgents = 3;
  constexpr int64_t kStopped = 1;     // stops after kStopAfter updates
  constexpr int kStopAfter = 2;
  auto device = cpu(2);
  TrainConfig pc = tc.config;
  pc.agents = kAgents;
  Trainer population(*device, pc);
  std::vector<std::vector<std::string>> lines(kAgents);
  std::vector<int64_t> steps;
  int32_t fewest_epochs = pc.epochs;
  for (int u = 0; u < tc.updates; ++u) {
    const auto records = population.update_agents();
    for (const UpdateRecord& r : records) {
      ASSERT_TRUE(r.finite) << tc.name;
      lines[static_cast<std::size_t>(r.agent)].push_back(line_of(r));
      steps.push_back(r.rollout_steps);
      fewest_epochs = std::min(fewest_epochs, r.epochs);
    }
    if (u + 1 == kStopAfter) population.stop(kStopped);
  }
  // The cases mean to exercise agents that part ways: rollouts of different lengths (whole
  // episodes), epochs stopped early for some agents only (PPO's target KL).
  const bool whole_episodes = pc.algorithm == Algorithm::kReinforce ||
                              pc.algorithm == Algorithm::kBaseline || pc.n_steps == 0;
  if (whole_episodes) {
    EXPECT_NE(*std::min_element(steps.begin(), steps.end()),
              *std::max_element(steps.begin(), steps.end()))
        << tc.name;
  }
  if (pc.target_kl > 0) {
    EXPECT_LT(fewest_epochs, pc.epochs) << tc.name;
  }
  EXPECT_EQ(population.active_agents(), kAgents - 1);
  EXPECT_EQ(static_cast<int>(lines[kStopped].size()), kStopAfter);
  const std::vector<float> all = population.model().get_parameters();
  const auto p = static_cast<std::size_t>(population.model().parameter_count());

  for (int64_t k = 0; k < kAgents; ++k) {
    TrainConfig sc = tc.config;
    sc.seed = tc.config.seed + static_cast<uint64_t>(k);
    EXPECT_EQ(population.agent(k).seed, sc.seed);
    Trainer solo(*device, sc);
    for (std::size_t u = 0; u < lines[k].size(); ++u) {
      ASSERT_EQ(line_of(solo.update()), lines[k][u])
          << tc.name << ": agent " << k << " differs from its solo run at update " << u + 1;
    }
    const std::vector<float> mine(all.begin() + static_cast<std::ptrdiff_t>(k * p),
                                  all.begin() + static_cast<std::ptrdiff_t>((k + 1) * p));
    EXPECT_EQ(mine, solo.model().get_parameters()) << tc.name << ": agent " << k;
    EXPECT_EQ(population.agent(k).env_steps, solo.env_steps()) << tc.name;
  }
}

// Batched agents (one strided-batched gemm per layer for all of them) compute what the agents'
// own passes do, up to the order of float sums; on the GPU (the emulated one in CI) as well.
class BatchedPopulationTest
    : public ::testing::TestWithParam<std::tuple<std::string, Case>> {};

TEST_P(BatchedPopulationTest, AgreesWithTheAgentsOwnPasses) {
  const auto& [device_name, tc] = GetParam();
  std::unique_ptr<Device> batched;
  if (device_name == "cuda") {
    batched = test::device_or_skip("cuda");
    if (!batched) GTEST_SKIP() << "no CUDA device here";
    ASSERT_TRUE(batched->plan().batch_agents);
  } else {
    batched = cpu(2, true);
  }
  auto reference = cpu(2);
  TrainConfig c = tc.config;
  c.agents = 3;
  c.target_kl = 0.0F;  // an early stop is a threshold: tiny differences may flip it
  Trainer a(*batched, c);
  Trainer b(*reference, c);
  ASSERT_TRUE(a.model().batched());
  ASSERT_FALSE(b.model().batched());
  // The first update runs on identical parameters and identical rollouts.
  const auto ra = a.update_agents();
  const auto rb = b.update_agents();
  ASSERT_EQ(ra.size(), rb.size());
  for (std::size_t k = 0; k < ra.size(); ++k) {
    EXPECT_EQ(ra[k].env_steps, rb[k].env_steps) << tc.name;
    EXPECT_EQ(ra[k].episodes, rb[k].episodes) << tc.name;
    EXPECT_DOUBLE_EQ(ra[k].recent.return_sum, rb[k].recent.return_sum) << tc.name;
    const auto near = [](double x, double y) { return std::abs(x - y) <= 1e-4 * (1 + std::abs(y)); };
    EXPECT_PRED2(near, ra[k].loss.policy_loss, rb[k].loss.policy_loss) << tc.name << " agent " << k;
    EXPECT_PRED2(near, ra[k].value_loss, rb[k].value_loss) << tc.name << " agent " << k;
    EXPECT_PRED2(near, ra[k].loss.entropy, rb[k].loss.entropy) << tc.name << " agent " << k;
    EXPECT_PRED2(near, ra[k].loss.grad_norm, rb[k].loss.grad_norm) << tc.name << " agent " << k;
  }
  const std::vector<float> pa = a.model().get_parameters();
  const std::vector<float> pb = b.model().get_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  double worst = 0;
  for (std::size_t i = 0; i < pa.size(); ++i) worst = std::max(worst, double{std::abs(pa[i] - pb[i])});
  EXPECT_LT(worst, 1e-4) << tc.name << ": parameters after one update";
  // Stopping an agent freezes its parameters on the batched path too.
  a.stop(0);
  const std::vector<float> before = a.model().get_parameters();
  a.update_agents();
  const std::vector<float> after = a.model().get_parameters();
  const auto p = static_cast<std::ptrdiff_t>(a.model().parameter_count());
  EXPECT_TRUE(std::equal(before.begin(), before.begin() + p, after.begin())) << tc.name;
  EXPECT_FALSE(std::equal(before.begin() + p, before.end(), after.begin() + p)) << tc.name;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }
std::string device_case_name(
    const ::testing::TestParamInfo<std::tuple<std::string, Case>>& info) {
  return std::get<0>(info.param) + "_" + std::get<1>(info.param).name;
}

INSTANTIATE_TEST_SUITE_P(Algorithms, PopulationTest, ::testing::ValuesIn(cases()), case_name);
INSTANTIATE_TEST_SUITE_P(
    Algorithms, BatchedPopulationTest,
    ::testing::Combine(::testing::Values("cpu", "cuda"), ::testing::ValuesIn(cases())),
    device_case_name);

TEST(Population, CheckpointResumesExactly) {
  const fs::path dir = fs::temp_directory_path() / "batchpole_test_population_resume";
  fs::create_directories(dir);
  const std::string ckpt = (dir / "ckpt.bin").string();
  auto device = cpu(2);
  TrainConfig c;
  c.envs = 8;
  c.agents = 4;
  c.seed = 9;
  Trainer a(*device, c);
  for (int u = 0; u < 5; ++u) a.update_agents();
  a.stop(2);
  a.update_agents();
  a.save_checkpoint(ckpt);
  Trainer b(*device, Trainer::read_checkpoint_config(ckpt));
  b.restore_checkpoint(ckpt);
  EXPECT_EQ(b.active_agents(), 3);
  for (int u = 0; u < 4; ++u) {
    const auto ra = a.update_agents();
    const auto rb = b.update_agents();
    ASSERT_EQ(ra.size(), rb.size());
    for (std::size_t k = 0; k < ra.size(); ++k) {
      EXPECT_EQ(ra[k].agent, rb[k].agent);
      EXPECT_EQ(line_of(ra[k]), line_of(rb[k])) << "update " << u << " agent " << ra[k].agent;
    }
  }
  EXPECT_EQ(a.model().get_parameters(), b.model().get_parameters());
  const auto params = Trainer::read_checkpoint_parameters(ckpt);
  EXPECT_EQ(static_cast<int64_t>(params.size()), 4 * a.model().parameter_count());
  fs::remove_all(dir);
}

TEST(Population, RefusesWhatDoesNotFit) {
  auto device = cpu(1);
  TrainConfig c;
  c.agents = 0;
  EXPECT_THROW(Trainer(*device, c), Error);
  c.agents = 2;
  Trainer t(*device, c);
  EXPECT_THROW(t.update(), Error);  // a population updates with update_agents
  EXPECT_THROW(t.stop(2), Error);
  ModelOptions o;
  o.agents = 3;
  o.seeds = {1, 2};
  EXPECT_THROW(PolicyValueModel(*device, ModelConfig::actor_critic(), o), Error);
}

// The per-agent trainer operations: agent k's part of one call is the call on agent k alone.
class AgentOpsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(AgentOpsTest, EachAgentsPartIsItsOwnCall) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  constexpr int64_t kAgents = 3, kSteps = 40, kEnvs = 37, kStride = (kSteps + 1) * kEnvs;
  const int64_t rows = kSteps * kEnvs;
  const auto n = static_cast<std::size_t>(kAgents * kStride);
  std::vector<float> x = test::random_vec(n, 3, -2.0F, 5.0F);
  std::vector<uint8_t> term(n), trunc(n);
  std::vector<float> ret(n);
  std::vector<int32_t> len(n);
  for (std::size_t i = 0; i < n; ++i) {
    term[i] = static_cast<uint8_t>((i * 7919) % 23 == 0);
    trunc[i] = static_cast<uint8_t>((i * 104729) % 97 == 0);
    ret[i] = static_cast<float>(i % 500);
    len[i] = static_cast<int32_t>(i % 500 + 1);
  }
  auto up = [&](const auto& v) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    Buffer<T> b(*device, v.size());
    b.from_host(v);
    return b;
  };
  Buffer<float> dx = up(x);
  Buffer<uint8_t> dterm = up(term), dtrunc = up(trunc);
  Buffer<float> dret = up(ret);
  Buffer<int32_t> dlen = up(len);
  Buffer<uint8_t> mask(*device, n);
  mask.zero();
  Buffer<float> returns(*device, n);
  Buffer<Moments> moments(*device, kAgents);
  Buffer<EpisodeTally> tally(*device, kAgents);
  RlOps& rl = device->rl();
  rl.first_episode_mask(dterm.data(), dtrunc.data(), kSteps, kEnvs, mask.data(), kAgents, kStride);
  ReturnsArgs ra;
  ra.rewards = dx.data();
  ra.terminated = dterm.data();
  ra.truncated = dtrunc.data();
  ra.gamma = 0.9F;
  ra.steps = kSteps;
  ra.envs = kEnvs;
  ra.returns = returns.data();
  ra.agents = kAgents;
  ra.agent_stride = kStride;
  rl.returns(ra);
  rl.moments(returns.data(), mask.data(), rows, moments.data(), kAgents, kStride);
  rl.episode_tally({dterm.data(), dtrunc.data(), dret.data(), dlen.data(), mask.data()}, rows,
                   tally.data(), kAgents, kStride);
  const auto all_returns = returns.to_host();
  const auto all_moments = moments.to_host();
  const auto all_tally = tally.to_host();
  const auto all_mask = mask.to_host();

  for (int64_t k = 0; k < kAgents; ++k) {
    const int64_t at = k * kStride;
    Buffer<uint8_t> m1(*device, static_cast<std::size_t>(rows));
    Buffer<float> r1(*device, static_cast<std::size_t>(rows));
    Buffer<Moments> mo1(*device, 1);
    Buffer<EpisodeTally> t1(*device, 1);
    rl.first_episode_mask(dterm.data() + at, dtrunc.data() + at, kSteps, kEnvs, m1.data());
    ReturnsArgs one = ra;
    one.rewards += at;
    one.terminated += at;
    one.truncated += at;
    one.returns = r1.data();
    one.agents = 1;
    one.agent_stride = 0;
    rl.returns(one);
    rl.moments(r1.data(), m1.data(), rows, mo1.data());
    rl.episode_tally({dterm.data() + at, dtrunc.data() + at, dret.data() + at, dlen.data() + at,
                      m1.data()},
                     rows, t1.data());
    const auto mine_mask = m1.to_host();
    const auto mine_returns = r1.to_host();
    EXPECT_TRUE(std::equal(mine_mask.begin(), mine_mask.end(), all_mask.begin() + at)) << k;
    EXPECT_TRUE(std::equal(mine_returns.begin(), mine_returns.end(), all_returns.begin() + at))
        << k;
    const Moments mo = mo1.to_host()[0];
    EXPECT_EQ(mo.count, all_moments[k].count);
    EXPECT_EQ(mo.sum, all_moments[k].sum);
    EXPECT_EQ(mo.sum_sq, all_moments[k].sum_sq);
    const EpisodeTally t = t1.to_host()[0];
    EXPECT_EQ(t.episodes, all_tally[k].episodes);
    EXPECT_EQ(t.return_sum, all_tally[k].return_sum);
    EXPECT_EQ(t.length_max, all_tally[k].length_max);
    EXPECT_GT(t.episodes, 0) << "the test means to count episodes";
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, AgentOpsTest, ::testing::ValuesIn(test::devices()));

}  // namespace
}  // namespace batchpole
