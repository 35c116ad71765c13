// Populations: many agents trained as one batch, with every algorithm and both action spaces.
// On the CPU each agent of a population is exactly its solo run (every record and every
// parameter, bit for bit, including an agent that stops early); batched agents (the GPU's plan,
// and the CPU under that plan) agree with them within float tolerance; the per-agent operations
// are each agent's own call; a population's checkpoint (DQN's replay buffers and target networks
// included) resumes exactly.
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
  // Continuous actions (the Gaussian head, its log-std a learned vector or a network output).
  TrainConfig g = c;
  g.actions = ActionSpace::kContinuous;
  out.push_back({"ppo_continuous", g, 6});
  g = TrainConfig{};
  g.envs = 8;
  g.seed = 40;
  g.algorithm = Algorithm::kA2C;
  g.n_steps = 16;
  g.actions = ActionSpace::kContinuous;
  g.state_dependent_std = true;
  out.push_back({"a2c_continuous", g, 8});
  g.algorithm = Algorithm::kReinforce;
  g.state_dependent_std = false;
  g.log_std_init = -0.5F;
  g.lr = 3e-3F;
  out.push_back({"reinforce_continuous", g, 4});
  // DQN: every agent's replay buffer wraps and its target network follows; the second case
  // averages the target (tau < 1), takes plain targets and learns from its second update on.
  TrainConfig d = TrainConfig::defaults(Algorithm::kDqn, DevicePlan{});
  d.envs = 6;
  d.n_steps = 2;
  d.seed = 40;
  d.buffer_size = 40;
  d.batch_size = 16;
  d.learning_starts = 12;
  d.gradient_steps = 3;
  d.target_update = 4;
  d.epsilon_decay_steps = 200;
  out.push_back({"dqn", d, 10});
  d.tau = 0.5F;
  d.double_dqn = false;
  d.target_update = 1;
  d.learning_starts = 20;
  out.push_back({"dqn_polyak", d, 8});
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
  bool learned = false;
  for (int u = 0; u < tc.updates; ++u) {
    const auto records = population.update_agents();
    for (const UpdateRecord& r : records) {
      ASSERT_TRUE(r.finite) << tc.name;
      learned = learned || r.loss.grad_norm > 0;
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
  EXPECT_TRUE(learned) << tc.name << ": the test means to take gradient steps";
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

TrainConfig case_config(const std::string& name) {
  for (const Case& c : cases()) {
    if (c.name == name) return c.config;
  }
  ADD_FAILURE() << "no case " << name;
  return {};
}

// A DQN population's checkpoint holds each agent's replay buffer, target network and counters;
// a continuous one each agent's Gaussian head. Both resume exactly, a stopped agent included.
TEST(Population, DqnAndContinuousCheckpointsResumeExactly) {
  const fs::path dir = fs::temp_directory_path() / "batchpole_test_population_resume_dqn";
  fs::create_directories(dir);
  const std::string ckpt = (dir / "ckpt.bin").string();
  auto device = cpu(2);
  for (const std::string name : {"a2c", "ppo", "dqn", "dqn_polyak", "ppo_continuous"}) {
    TrainConfig c = case_config(name);
    c.agents = 3;
    Trainer a(*device, c);
    for (int u = 0; u < 4; ++u) a.update_agents();
    a.stop(1);
    a.update_agents();
    a.save_checkpoint(ckpt);
    Trainer b(*device, Trainer::read_checkpoint_config(ckpt));
    b.restore_checkpoint(ckpt);
    EXPECT_EQ(b.active_agents(), 2) << name;
    for (int u = 0; u < 6; ++u) {
      if (u == 3) {
        // A stopped agent restarts where it stopped (a resumed run with a larger budget).
        a.set_active(1, true);
        b.set_active(1, true);
      }
      const auto ra = a.update_agents();
      const auto rb = b.update_agents();
      ASSERT_EQ(ra.size(), rb.size()) << name;
      for (std::size_t k = 0; k < ra.size(); ++k) {
        EXPECT_EQ(ra[k].agent, rb[k].agent) << name;
        EXPECT_EQ(line_of(ra[k]), line_of(rb[k]))
            << name << ": update " << u << " agent " << ra[k].agent;
      }
    }
    EXPECT_EQ(a.model().get_parameters(), b.model().get_parameters()) << name;
  }
  // A DQN population's state is refused by a population of another size.
  TrainConfig c = case_config("dqn");
  c.agents = 3;
  Trainer(*device, c).save_checkpoint(ckpt);
  c.agents = 2;
  Trainer other(*device, c);
  EXPECT_THROW(other.restore_checkpoint(ckpt), Error);
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

// DQN's replay buffers and the population's sampling heads and losses: agent k's part of one call
// is the call on agent k alone, bit for bit (an inactive agent's buffer is left as it was).
TEST_P(AgentOpsTest, ReplayHeadsAndLossesOfEachAgentAreItsOwnCall) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  constexpr int64_t kAgents = 3, kSteps = 4, kEnvs = 5, kStride = (kSteps + 1) * kEnvs;
  constexpr int64_t kCapacity = 30, kBatch = 11;
  const int64_t rows = kSteps * kEnvs;
  const auto n = static_cast<std::size_t>(kAgents * kStride);
  auto up = [&](const auto& v) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    Buffer<T> b(*device, v.size());
    b.from_host(v);
    return b;
  };
  auto zeros = [&](auto tag, std::size_t count) {
    using T = decltype(tag);
    Buffer<T> b(*device, count);
    b.zero();
    return b;
  };
  const std::vector<float> obs_h = test::random_vec(4 * n, 5, -2.0F, 2.0F);
  const std::vector<float> final_h = test::random_vec(4 * n, 6, -2.0F, 2.0F);
  const std::vector<float> rew_h = test::random_vec(n, 7, 0.0F, 1.0F);
  std::vector<int32_t> act_h(n);
  std::vector<uint8_t> term_h(n), trunc_h(n);
  for (std::size_t i = 0; i < n; ++i) {
    act_h[i] = static_cast<int32_t>(i % 2);
    term_h[i] = static_cast<uint8_t>(i % 7 == 0);
    trunc_h[i] = static_cast<uint8_t>(i % 11 == 0);
  }
  Buffer<float> obs = up(obs_h), fin = up(final_h), rew = up(rew_h);
  Buffer<int32_t> act = up(act_h);
  Buffer<uint8_t> term = up(term_h), trunc = up(trunc_h);
  RlOps& rl = device->rl();
  NnOps& nn = device->nn();

  // Every agent's buffer, agent after agent; agent 1 inactive.
  const auto slots = static_cast<std::size_t>(kAgents * kCapacity);
  Buffer<float> r_obs = zeros(0.0F, 4 * slots), r_next = zeros(0.0F, 4 * slots);
  Buffer<float> r_rew = zeros(0.0F, slots);
  Buffer<int32_t> r_act = zeros(int32_t{0}, slots);
  Buffer<uint8_t> r_term = zeros(uint8_t{0}, slots);
  const ReplayArrays all{r_obs.data(), r_act.data(), r_rew.data(), r_term.data(), r_next.data(),
                         kCapacity, 4};
  std::vector<ReplayCursor> cursors(kAgents);
  const int64_t positions[kAgents] = {0, 7, 25};
  for (int64_t k = 0; k < kAgents; ++k) {
    cursors[k] = {positions[k], kCapacity - 3 * k, 100 + static_cast<uint64_t>(k),
                  static_cast<uint64_t>(5 * k), static_cast<uint8_t>(k == 1 ? 0 : 1)};
  }
  Buffer<ReplayCursor> dcursors = up(cursors);
  ReplayStoreArgs st;
  st.replay = all;
  st.rows = rows;
  st.envs = kEnvs;
  st.obs = obs.data();
  st.actions = act.data();
  st.rewards = rew.data();
  st.terminated = term.data();
  st.truncated = trunc.data();
  st.final_obs = fin.data();
  st.agents = kAgents;
  st.agent_stride = kStride;
  st.cursors = dcursors.data();
  rl.replay_store(st);
  Buffer<float> m_obs = zeros(0.0F, 4 * kAgents * kBatch), m_next = zeros(0.0F, 4 * kAgents * kBatch);
  Buffer<float> m_rew = zeros(0.0F, kAgents * kBatch);
  Buffer<int32_t> m_act = zeros(int32_t{0}, kAgents * kBatch);
  Buffer<uint8_t> m_term = zeros(uint8_t{0}, kAgents * kBatch);
  ReplaySampleArgs sa;
  sa.replay = all;
  sa.rows = kBatch;
  sa.draw = 2;
  sa.obs = m_obs.data();
  sa.actions = m_act.data();
  sa.rewards = m_rew.data();
  sa.terminated = m_term.data();
  sa.next_obs = m_next.data();
  sa.agents = kAgents;
  sa.cursors = dcursors.data();
  rl.replay_sample(sa);
  const auto all_next = r_next.to_host();
  const auto all_sampled = m_next.to_host();
  const auto all_rew = m_rew.to_host();

  for (int64_t k = 0; k < kAgents; ++k) {
    Buffer<float> o1 = zeros(0.0F, 4 * kCapacity), x1 = zeros(0.0F, 4 * kCapacity);
    Buffer<float> w1 = zeros(0.0F, kCapacity);
    Buffer<int32_t> a1 = zeros(int32_t{0}, kCapacity);
    Buffer<uint8_t> t1 = zeros(uint8_t{0}, kCapacity);
    const ReplayArrays one{o1.data(), a1.data(), w1.data(), t1.data(), x1.data(), kCapacity, 4};
    const int64_t at = k * kStride;
    ReplayStoreArgs s1 = st;
    s1.replay = one;
    s1.position = positions[k];
    s1.obs += 4 * at;
    s1.actions += at;
    s1.rewards += at;
    s1.terminated += at;
    s1.truncated += at;
    s1.final_obs += 4 * at;
    s1.agents = 1;
    s1.agent_stride = 0;
    s1.cursors = nullptr;
    if (cursors[k].active != 0) rl.replay_store(s1);
    const auto mine = x1.to_host();
    EXPECT_TRUE(std::equal(mine.begin(), mine.end(), all_next.begin() + 4 * k * kCapacity)) << k;
    if (cursors[k].active == 0) continue;
    Buffer<float> so = zeros(0.0F, 4 * kBatch), sx = zeros(0.0F, 4 * kBatch), sr = zeros(0.0F, kBatch);
    Buffer<int32_t> sac = zeros(int32_t{0}, kBatch);
    Buffer<uint8_t> stt = zeros(uint8_t{0}, kBatch);
    ReplaySampleArgs s2;
    s2.replay = one;
    s2.size = cursors[k].size;
    s2.seed = cursors[k].seed;
    s2.draw = cursors[k].draw + 2;
    s2.rows = kBatch;
    s2.obs = so.data();
    s2.actions = sac.data();
    s2.rewards = sr.data();
    s2.terminated = stt.data();
    s2.next_obs = sx.data();
    rl.replay_sample(s2);
    const auto sampled = sx.to_host();
    const auto rewards = sr.to_host();
    EXPECT_TRUE(std::equal(sampled.begin(), sampled.end(), all_sampled.begin() + 4 * k * kBatch))
        << k;
    EXPECT_TRUE(std::equal(rewards.begin(), rewards.end(), all_rew.begin() + k * kBatch)) << k;
  }

  // Epsilon-greedy and Gaussian sampling over every agent's rows (packed inputs, outputs at
  // k * stride), each agent with its seed, step and epsilon; and the two losses with per-row
  // inputs at k * stride and one divisor per agent.
  constexpr int64_t kRows = 9;
  const std::vector<uint64_t> seeds_h = {11, 12, 13}, steps_h = {3, 40, 7};
  const std::vector<float> eps_h = {0.0F, 0.5F, 1.0F}, count_h = {4.0F, 9.0F, 2.0F};
  Buffer<uint64_t> seeds = up(seeds_h), steps = up(steps_h);
  Buffer<float> eps = up(eps_h), counts = up(count_h);
  const std::vector<float> q_h = test::random_vec(2 * kAgents * kRows, 8);
  Buffer<float> q = up(q_h);
  Buffer<int32_t> greedy = zeros(int32_t{0}, n);
  Buffer<float> gaussian = zeros(0.0F, n), gaussian_lp = zeros(0.0F, n);
  SampleKey key;
  key.step = 2;
  key.seeds = seeds.data();
  key.steps = steps.data();
  const AgentRows out{kAgents, kRows, kStride};
  nn.epsilon_greedy(q.data(), kAgents * kRows, 2, key, 0.0F, greedy.data(), out, eps.data());
  nn.sample_gaussian(q.data(), kAgents * kRows, 1, key, gaussian.data(), gaussian_lp.data(),
                     nullptr, out);
  const std::vector<float> targets_h = test::random_vec(n, 9, -1.0F, 2.0F);
  const std::vector<float> weights_h = test::random_vec(n, 10, -1.0F, 1.0F);
  std::vector<uint8_t> mask_h(n);
  for (std::size_t i = 0; i < n; ++i) mask_h[i] = static_cast<uint8_t>(i % 5 != 0);
  Buffer<float> targets = up(targets_h), weights = up(weights_h), cont = up(obs_h);
  Buffer<uint8_t> mask = up(mask_h);
  Buffer<float> dq = zeros(0.0F, 2 * kAgents * kRows), dh = zeros(0.0F, 2 * kAgents * kRows);
  Buffer<float> sq = zeros(0.0F, kStatColumns * kAgents * kRows);
  Buffer<float> sg = zeros(0.0F, kStatColumns * kAgents * kRows);
  QLossArgs qa;
  qa.q = q.data();
  qa.rows = kAgents * kRows;
  qa.num_actions = 2;
  qa.actions = act.data();
  qa.targets = targets.data();
  qa.mask = mask.data();
  qa.count = counts.data();
  qa.in = out;
  qa.huber_delta = 0.7F;
  qa.d_q = dq.data();
  qa.stats = sq.data();
  nn.q_loss_grad(qa);
  GaussianLossArgs ga;
  ga.head = q.data();
  ga.rows = kAgents * kRows;
  ga.actions = cont.data();
  ga.weights = weights.data();
  ga.mask = mask.data();
  ga.count = counts.data();
  ga.in = out;
  ga.entropy_coef = 0.01F;
  ga.d_head = dh.data();
  ga.stats = sg.data();
  nn.gaussian_loss_grad(ga);
  const auto all_greedy = greedy.to_host();
  const auto all_gaussian = gaussian.to_host();
  const auto all_lp = gaussian_lp.to_host();
  const auto all_dq = dq.to_host();
  const auto all_dh = dh.to_host();
  const auto all_sq = sq.to_host();
  const auto all_sg = sg.to_host();
  for (int64_t k = 0; k < kAgents; ++k) {
    const int64_t at = k * kStride;
    const SampleKey mine{seeds_h[k], steps_h[k] + key.step, 0};
    Buffer<int32_t> g1 = zeros(int32_t{0}, kRows);
    Buffer<float> c1 = zeros(0.0F, kRows), l1 = zeros(0.0F, kRows);
    nn.epsilon_greedy(q.data() + 2 * k * kRows, kRows, 2, mine, eps_h[k], g1.data());
    nn.sample_gaussian(q.data() + 2 * k * kRows, kRows, 1, mine, c1.data(), l1.data(), nullptr);
    const auto g = g1.to_host();
    const auto c = c1.to_host();
    const auto l = l1.to_host();
    EXPECT_TRUE(std::equal(g.begin(), g.end(), all_greedy.begin() + at)) << k;
    EXPECT_TRUE(std::equal(c.begin(), c.end(), all_gaussian.begin() + at)) << k;
    EXPECT_TRUE(std::equal(l.begin(), l.end(), all_lp.begin() + at)) << k;
    Buffer<float> dq1 = zeros(0.0F, 2 * kRows), dh1 = zeros(0.0F, 2 * kRows);
    Buffer<float> sq1 = zeros(0.0F, kStatColumns * kRows), sg1 = zeros(0.0F, kStatColumns * kRows);
    QLossArgs q1 = qa;
    q1.q += 2 * k * kRows;
    q1.rows = kRows;
    q1.actions += at;
    q1.targets += at;
    q1.mask += at;
    q1.count += k;
    q1.in = {};
    q1.d_q = dq1.data();
    q1.stats = sq1.data();
    nn.q_loss_grad(q1);
    GaussianLossArgs g2 = ga;
    g2.head += 2 * k * kRows;
    g2.rows = kRows;
    g2.actions += at;
    g2.weights += at;
    g2.mask += at;
    g2.count += k;
    g2.in = {};
    g2.d_head = dh1.data();
    g2.stats = sg1.data();
    nn.gaussian_loss_grad(g2);
    const auto dq_k = dq1.to_host(), dh_k = dh1.to_host(), sq_k = sq1.to_host(),
               sg_k = sg1.to_host();
    EXPECT_TRUE(std::equal(dq_k.begin(), dq_k.end(), all_dq.begin() + 2 * k * kRows)) << k;
    EXPECT_TRUE(std::equal(dh_k.begin(), dh_k.end(), all_dh.begin() + 2 * k * kRows)) << k;
    EXPECT_TRUE(std::equal(sq_k.begin(), sq_k.end(), all_sq.begin() + kStatColumns * k * kRows))
        << k;
    EXPECT_TRUE(std::equal(sg_k.begin(), sg_k.end(), all_sg.begin() + kStatColumns * k * kRows))
        << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, AgentOpsTest, ::testing::ValuesIn(test::devices()));

}  // namespace
}  // namespace batchpole
