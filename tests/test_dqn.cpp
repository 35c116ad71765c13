// DQN's pieces: the Huber TD loss and its gradient against float64 finite differences (element,
// device operation and the whole Q-network), the TD target (plain and double DQN, termination
// against truncation), the replay buffer (wrap-around, next observations across episode ends,
// sampling within bounds, uniform, keyed by the minibatch number), epsilon-greedy acting; and
// the trainer: thread-count independence, exact resume with the replay buffer, learning.
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "batchpole/rl/rl_ops.hpp"
#include "batchpole/rl/trainer.hpp"
#include "model_fixtures.hpp"

namespace batchpole {
namespace {

using test::random_vec;
using test::to_double;

double huber(double e, double delta) {
  const double a = std::abs(e);
  return a <= delta ? 0.5 * e * e : delta * (a - 0.5 * delta);
}

// Inside and outside the Huber threshold, both signs, two thresholds: the gradient with respect
// to every Q-value against central differences (zero but at the action taken), and the loss.
TEST(QLoss, HuberGradientMatchesFiniteDifferences) {
  const int32_t n = 3;
  for (const float delta : {1.0f, 0.3f}) {
    for (const float target : {0.4f, 2.9f, -1.7f, 0.15f}) {
      const std::vector<float> q = {0.2f, 0.5f, -0.1f};
      const int32_t a = 1;
      float dq[n];
      float stats[kStatColumns];
      q_loss_row(q.data(), n, a, target, delta, true, 0.25f, dq, stats);
      const auto loss = [&](const std::vector<double>& qq) {
        return huber(qq[a] - target, delta) * 0.25;
      };
      for (int32_t j = 0; j < n; ++j) {
        auto up = to_double(q);
        auto down = to_double(q);
        up[j] += 1e-6;
        down[j] -= 1e-6;
        EXPECT_NEAR(dq[j], (loss(up) - loss(down)) / 2e-6, 1e-6)
            << "delta " << delta << " target " << target << " q " << j;
      }
      EXPECT_NEAR(stats[kStatSquaredError], huber(q[a] - target, delta), 1e-6);
      EXPECT_EQ(stats[kStatValid], 1.0f);
    }
  }
  // Invalid rows and actions out of range give zeros.
  const std::vector<float> q = {1.0f, 2.0f};
  float dq[2];
  float stats[kStatColumns];
  q_loss_row(q.data(), 2, 0, std::numeric_limits<float>::quiet_NaN(), 1.0f, false, 1.0f, dq, stats);
  EXPECT_EQ(dq[0], 0.0f);
  EXPECT_EQ(stats[kStatSquaredError], 0.0f);
  q_loss_row(q.data(), 2, 5, 0.0f, 1.0f, true, 1.0f, dq, stats);
  EXPECT_EQ(dq[0], 0.0f);
  EXPECT_EQ(dq[1], 0.0f);
  EXPECT_EQ(stats[kStatValid], 0.0f);
}

class DqnOpsTest : public ::testing::TestWithParam<std::string> {};

// y = r on termination; otherwise r + gamma Q_target(s', a*), a truncated step included, with
// a* the target network's argmax (DQN) or the online network's (double DQN).
TEST_P(DqnOpsTest, TdTargetsBootstrapOnTruncationNotOnTerminationAndDoubleDqnPicksOnline) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  // Row 0: running; row 1: terminated; row 2: truncated (not terminated: bootstraps from its
  // final observation's Q-values, which the replay holds as next_obs); row 3: the two networks
  // disagree on the best action.
  const std::vector<float> rewards = {1.0f, 1.0f, 1.0f, 0.5f};
  const std::vector<uint8_t> terminated = {0, 1, 0, 0};
  const std::vector<float> q_target = {2.0f, 3.0f, 9.0f, 9.0f, 4.0f, 1.0f, 5.0f, 7.0f};
  const std::vector<float> q_online = {0.0f, 1.0f, 0.0f, 0.0f, 1.0f, 0.0f, 6.0f, 2.0f};
  Buffer<float> r(*device, 4), qt(*device, 8), qo(*device, 8), y(*device, 4);
  Buffer<uint8_t> term(*device, 4);
  r.from_host(rewards);
  qt.from_host(q_target);
  qo.from_host(q_online);
  term.from_host(terminated);
  TdTargetArgs a;
  a.rewards = r.data();
  a.terminated = term.data();
  a.next_q_target = qt.data();
  a.num_actions = 2;
  a.gamma = 0.9f;
  a.rows = 4;
  a.targets = y.data();
  device->rl().td_targets(a);
  const auto plain = y.to_host();
  EXPECT_FLOAT_EQ(plain[0], 1.0f + 0.9f * 3.0f);
  EXPECT_EQ(plain[1], 1.0f);
  EXPECT_FLOAT_EQ(plain[2], 1.0f + 0.9f * 4.0f);
  EXPECT_FLOAT_EQ(plain[3], 0.5f + 0.9f * 7.0f);
  a.next_q_online = qo.data();
  device->rl().td_targets(a);
  const auto dbl = y.to_host();
  EXPECT_FLOAT_EQ(dbl[0], 1.0f + 0.9f * 3.0f);
  EXPECT_EQ(dbl[1], 1.0f);
  EXPECT_FLOAT_EQ(dbl[2], 1.0f + 0.9f * 4.0f);
  EXPECT_FLOAT_EQ(dbl[3], 0.5f + 0.9f * 5.0f);  // the online network's argmax, action 0
}

// A rollout of T = 2 steps of N = 3 envs stored three times into 10 slots: slot (position + k)
// mod 10 holds row k; the next observation is row k + N, or final_obs where the episode ended.
TEST_P(DqnOpsTest, ReplayStoreWrapsAroundAndTakesFinalObservationsAtEpisodeEnds) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const int64_t cap = 10;
  const int64_t envs = 3;
  const int64_t rows = 6;
  Buffer<float> obs(*device, 4 * cap), next(*device, 4 * cap), rew(*device, cap);
  Buffer<int32_t> act(*device, cap);
  Buffer<uint8_t> term(*device, cap);
  for (auto* b : {&obs, &next, &rew}) b->zero();
  act.zero();
  term.zero();
  const ReplayArrays arrays{obs.data(), act.data(), rew.data(), term.data(), next.data(), cap, 4};
  // What each slot should hold: (store, row) of its last write.
  std::map<int64_t, std::pair<int, int64_t>> expect;
  int64_t position = 0;
  const auto value = [](int s, int64_t k, int c) {
    return static_cast<float>(100 * s + 4 * k + c);
  };
  std::vector<std::vector<float>> o_h(3), f_h(3);
  std::vector<std::vector<uint8_t>> te_h(3), tr_h(3);
  for (int s = 0; s < 3; ++s) {
    std::vector<float> o((rows + envs) * 4);
    std::vector<float> f(rows * 4);
    for (int64_t k = 0; k < rows + envs; ++k) {
      for (int c = 0; c < 4; ++c) o[4 * k + c] = value(s, k, c);
    }
    for (int64_t k = 0; k < rows; ++k) {
      for (int c = 0; c < 4; ++c) f[4 * k + c] = -value(s, k, c);
    }
    std::vector<int32_t> a(rows);
    std::vector<float> r(rows);
    std::vector<uint8_t> te(rows, 0);
    std::vector<uint8_t> tr(rows, 0);
    for (int64_t k = 0; k < rows; ++k) {
      a[k] = static_cast<int32_t>((k + s) % 2);
      r[k] = static_cast<float>(10 * s + k);
    }
    te[1] = 1;          // terminated
    tr[4] = 1;          // truncated
    te[5] = tr[5] = 1;  // both
    Buffer<float> ob(*device, o.size()), fo(*device, f.size()), rw(*device, rows);
    Buffer<int32_t> ac(*device, rows);
    Buffer<uint8_t> tb(*device, rows), ub(*device, rows);
    ob.from_host(o);
    fo.from_host(f);
    rw.from_host(r);
    ac.from_host(a);
    tb.from_host(te);
    ub.from_host(tr);
    ReplayStoreArgs st;
    st.replay = arrays;
    st.position = position;
    st.rows = rows;
    st.envs = envs;
    st.obs = ob.data();
    st.actions = ac.data();
    st.rewards = rw.data();
    st.terminated = tb.data();
    st.truncated = ub.data();
    st.final_obs = fo.data();
    device->rl().replay_store(st);
    for (int64_t k = 0; k < rows; ++k) expect[(position + k) % cap] = {s, k};
    te_h[s] = te;
    tr_h[s] = tr;
    position = (position + rows) % cap;
  }
  const auto o = obs.to_host();
  const auto nx = next.to_host();
  const auto r = rew.to_host();
  const auto a = act.to_host();
  const auto t = term.to_host();
  ASSERT_EQ(expect.size(), static_cast<std::size_t>(cap));
  for (const auto& [slot, sk] : expect) {
    const auto [s, k] = sk;
    const bool ended = te_h[s][k] != 0 || tr_h[s][k] != 0;
    for (int c = 0; c < 4; ++c) {
      EXPECT_EQ(o[4 * slot + c], value(s, k, c)) << "slot " << slot;
      EXPECT_EQ(nx[4 * slot + c], ended ? -value(s, k, c) : value(s, k + envs, c))
          << "slot " << slot;
    }
    EXPECT_EQ(r[slot], static_cast<float>(10 * s + k));
    EXPECT_EQ(a[slot], (k + s) % 2);
    EXPECT_EQ(t[slot], te_h[s][k]) << "slot " << slot;  // truncation is not termination
  }
  // More rows than slots at once would write one slot twice: refused.
  ReplayStoreArgs big;
  big.replay = arrays;
  big.rows = 12;
  big.envs = 3;
  const float dummy = 0;
  big.obs = big.rewards = big.final_obs = &dummy;
  big.actions = reinterpret_cast<const int32_t*>(&dummy);
  big.terminated = big.truncated = reinterpret_cast<const uint8_t*>(&dummy);
  EXPECT_THROW(device->rl().replay_store(big), Error);
}

// Sampling: every index within the filled slots, all of them drawn, frequencies uniform; the
// same (seed, minibatch number) gives the same minibatch, the next number another.
TEST_P(DqnOpsTest, ReplaySamplingStaysWithinTheFilledSlotsUniformlyAndIsKeyed) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const int64_t cap = 16;
  const int64_t size = 11;
  std::vector<float> o(4 * cap);
  for (int64_t s = 0; s < cap; ++s) {
    for (int c = 0; c < 4; ++c) o[4 * s + c] = static_cast<float>(s);
  }
  Buffer<float> obs(*device, 4 * cap), next(*device, 4 * cap), rew(*device, cap);
  Buffer<int32_t> act(*device, cap);
  Buffer<uint8_t> term(*device, cap);
  obs.from_host(o);
  next.from_host(o);
  std::vector<float> slot_of(cap);
  for (int64_t s = 0; s < cap; ++s) slot_of[s] = static_cast<float>(s);
  rew.from_host(slot_of);
  act.zero();
  term.zero();
  const int64_t b = 22000;
  Buffer<float> mo(*device, 4 * b), mn(*device, 4 * b), mr(*device, b);
  Buffer<int32_t> ma(*device, b);
  Buffer<uint8_t> mt(*device, b);
  ReplaySampleArgs sa;
  sa.replay = {obs.data(), act.data(), rew.data(), term.data(), next.data(), cap, 4};
  sa.size = size;
  sa.seed = 9;
  sa.draw = 4;
  sa.rows = b;
  sa.obs = mo.data();
  sa.actions = ma.data();
  sa.rewards = mr.data();
  sa.terminated = mt.data();
  sa.next_obs = mn.data();
  device->rl().replay_sample(sa);
  const auto first = mr.to_host();
  std::vector<int64_t> counts(cap, 0);
  const auto ob = mo.to_host();
  for (int64_t j = 0; j < b; ++j) {
    const auto slot = static_cast<int64_t>(first[j]);
    ASSERT_GE(slot, 0);
    ASSERT_LT(slot, size) << "row " << j;
    ASSERT_EQ(ob[4 * j + 3], first[j]);  // the row's fields come from one slot
    ASSERT_EQ(slot, replay_index(9, 4, j, size));
    ++counts[slot];
  }
  const double expected = static_cast<double>(b) / size;
  double chi2 = 0;
  for (int64_t s = 0; s < size; ++s) {
    EXPECT_GT(counts[s], 0);
    const double dev = static_cast<double>(counts[s]) - expected;
    chi2 += dev * dev / expected;
  }
  EXPECT_LT(chi2, 35.0);  // 10 degrees of freedom: p < 1e-4
  device->rl().replay_sample(sa);
  EXPECT_EQ(mr.to_host(), first);
  sa.draw = 5;
  device->rl().replay_sample(sa);
  EXPECT_NE(mr.to_host(), first);
  sa.size = 0;
  EXPECT_THROW(device->rl().replay_sample(sa), Error);
}

// Epsilon-greedy on the device is the element function bit for bit: epsilon 0 is the argmax,
// epsilon 1 uniform over the actions, epsilon 0.3 greedy in 0.7 + 0.3 / n of the rows.
TEST_P(DqnOpsTest, EpsilonGreedyActsAsTheElementFunction) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const int64_t rows = 30000;
  const int32_t n = 3;
  const auto q = random_vec(static_cast<std::size_t>(rows * n), 12, -1.0f, 1.0f);
  Buffer<float> qb(*device, q.size());
  qb.from_host(q);
  Buffer<int32_t> a(*device, rows);
  const SampleKey key{5, 77, 0};
  for (const float eps : {0.0f, 0.3f, 1.0f}) {
    device->nn().epsilon_greedy(qb.data(), rows, n, key, eps, a.data());
    const auto got = a.to_host();
    int64_t greedy = 0;
    std::vector<int64_t> counts(n, 0);
    for (int64_t i = 0; i < rows; ++i) {
      ASSERT_EQ(got[i], epsilon_greedy_row(&q[i * n], n, eps, 5, static_cast<uint32_t>(i), 77))
          << "row " << i;
      greedy += got[i] == argmax_row(&q[i * n], n) ? 1 : 0;
      ++counts[got[i]];
    }
    const double share = static_cast<double>(greedy) / rows;
    EXPECT_NEAR(share, 1.0 - eps + eps / n, 0.015) << "epsilon " << eps;
    if (eps == 1.0f) {
      for (const int64_t c : counts) EXPECT_NEAR(static_cast<double>(c) / rows, 1.0 / n, 0.015);
    }
  }
  EXPECT_THROW(device->nn().epsilon_greedy(qb.data(), rows, n, key, 1.5f, a.data()), Error);
}

// The Q-network (no value network, one optimiser): the Huber TD loss's gradient through every
// parameter against float64 finite differences, with masked rows and a device-counted divisor.
TEST_P(DqnOpsTest, QNetworkLossGradientMatchesFloat64FiniteDifferences) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const ModelConfig config = ModelConfig::q_network(4, 3, 6);
  ModelOptions o;
  o.seed = 2;
  o.chunk_rows = 5;
  PolicyValueModel model(*device, config, o);
  EXPECT_EQ(model.value_offset(), model.parameter_count());
  EXPECT_EQ(model.optimizer_count(), 1);
  test::HostRollout h = test::HostRollout::make(19, 4, 3, 44, false, true);
  auto targets = random_vec(static_cast<std::size_t>(h.rows), 45, -2.0f, 2.0f);
  for (std::size_t i = 0; i < h.mask.size(); ++i) {
    if (h.mask[i] == 0) targets[i] = std::numeric_limits<float>::quiet_NaN();
  }
  test::DeviceRollout dr(*device, h);
  Buffer<float> y(*device, targets.size());
  y.from_host(targets);
  dr.view.weights = nullptr;
  dr.view.q_targets = y.data();
  dr.view.huber_delta = 0.5f;
  model.accumulate_gradients(dr.view, LossConfig{0.0f, 1.0f});
  const auto g = model.get_gradients();
  const auto p = to_double(model.get_parameters());
  double valid = 0;
  for (const uint8_t m : h.mask) valid += m;
  const auto obs = to_double(h.obs);
  const auto loss = [&](const std::vector<double>& pp) {
    const auto q = ref::mlp_forward(config.policy_config(), pp.data(), obs, h.rows);
    double l = 0;
    for (int64_t i = 0; i < h.rows; ++i) {
      if (h.mask[i] != 0) l += huber(q[i * 3 + h.actions[i]] - targets[i], 0.5);
    }
    return l / valid;
  };
  std::vector<int64_t> all(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) all[i] = static_cast<int64_t>(i);
  const auto fd = ref::finite_difference(loss, p, all);
  double scale = 1e-3;
  for (const double v : fd) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], fd[i], 2e-4 * scale) << i;
  const UpdateStats s = model.stats();
  EXPECT_NEAR(s.value_loss, loss(p), 1e-5);
  EXPECT_EQ(s.policy_loss, 0.0);
  EXPECT_NEAR(s.valid_samples, valid, 0);
  // A Q-network has no value network.
  Buffer<float> v(*device, 19);
  EXPECT_THROW(model.values(dr.view.obs, v.data()), Error);
}

INSTANTIATE_TEST_SUITE_P(Devices, DqnOpsTest, ::testing::ValuesIn(test::devices()));

// ---- the trainer --------------------------------------------------------------------------------

TrainConfig small_dqn() {
  TrainConfig c = TrainConfig::defaults(Algorithm::kDqn, DevicePlan{});
  c.envs = 6;
  c.n_steps = 2;
  c.seed = 7;
  c.buffer_size = 300;  // wraps within the test
  c.batch_size = 32;
  c.learning_starts = 60;
  c.gradient_steps = 2;
  c.target_update = 5;
  c.epsilon_decay_steps = 500;
  return c;
}

std::vector<std::string> trace(Trainer& t, int updates) {
  std::vector<std::string> out;
  for (int i = 0; i < updates; ++i) {
    const UpdateRecord r = t.update();
    EXPECT_TRUE(r.finite);
    char line[256];
    std::snprintf(line, sizeof(line), "%lld %lld %.17g %.17g %.17g",
                  static_cast<long long>(r.env_steps), static_cast<long long>(r.episodes),
                  r.recent.return_sum, r.value_loss, r.loss.grad_norm);
    out.emplace_back(line);
  }
  return out;
}

class DqnTrainerTest : public ::testing::TestWithParam<std::string> {};

// A checkpoint holds the target network and the replay buffer: a resumed run continues with the
// same numbers as the uninterrupted one, through the buffer's wrap-around and target updates.
TEST_P(DqnTrainerTest, ResumeWithTheReplayBufferContinuesExactly) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const TrainConfig c = small_dqn();
  Trainer a(*device, c);
  (void)trace(a, 20);
  const auto path =
      (std::filesystem::temp_directory_path() / ("bp_dqn_" + GetParam() + ".bin")).string();
  a.save_checkpoint(path);
  const auto straight = trace(a, 40);
  Trainer b(*device, c);
  b.restore_checkpoint(path);
  EXPECT_EQ(trace(b, 40), straight);
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Devices, DqnTrainerTest, ::testing::ValuesIn(test::devices()));

std::unique_ptr<Device> cpu(int threads) {
  DeviceOptions o;
  o.device = DeviceRequest::parse("cpu");
  o.threads = threads;
  return make_device(o);
}

TEST(DqnTrainer, ThreadCountDoesNotMatter) {
  TrainConfig c = small_dqn();
  c.batch_size = 512;  // several shards
  auto one = cpu(1);
  auto two = cpu(2);
  Trainer a(*one, c);
  Trainer b(*two, c);
  EXPECT_EQ(trace(a, 40), trace(b, 40));
}

TEST(DqnTrainer, BadConfigurationsAndCheckpointsAreRefused) {
  auto device = cpu(0);
  TrainConfig c = small_dqn();
  c.actions = ActionSpace::kContinuous;
  EXPECT_THROW(c.validate(), Error);
  c = small_dqn();
  c.buffer_size = 5;  // an update's 12 transitions do not fit
  EXPECT_THROW(c.validate(), Error);
  // A2C's checkpoint has no DQN state; DQN's cannot go to A2C (the configurations differ).
  TrainConfig a2c = TrainConfig::defaults(Algorithm::kA2C, DevicePlan{});
  a2c.envs = 8;
  Trainer t(*device, a2c);
  const auto path = (std::filesystem::temp_directory_path() / "bp_dqn_bad.bin").string();
  t.save_checkpoint(path);
  Trainer d(*device, small_dqn());
  EXPECT_THROW(d.restore_checkpoint(path), Error);
  std::filesystem::remove(path);
}

// DQN learns CartPole-v1 with its defaults on the CPU: a mean return of 475 within a CI-sized
// budget (EXPERIMENTS.md, "Exercise 3", has 5 seeds to a million steps).
TEST(DqnTrainer, LearnsCartPoleOnTheCpu) {
  // One thread: DQN's small passes gain nothing from a second (BENCHMARKS.md), and ctest runs
  // other tests beside this one.
  auto device = cpu(1);
  TrainConfig c = TrainConfig::defaults(Algorithm::kDqn, device->plan());
  c.seed = 1;
  Trainer t(*device, c);
  int64_t solved_at = -1;
  while (t.env_steps() < 1'000'000 && solved_at < 0) {
    const UpdateRecord r = t.update();
    ASSERT_TRUE(r.finite) << "update " << r.update;
    if (r.recent.episodes >= 100 && r.recent.return_sum / r.recent.episodes >= 475.0) {
      solved_at = r.env_steps;
    }
  }
  EXPECT_GT(solved_at, 0) << "DQN did not reach 475 within 1M env steps";
  std::printf("DQN solved in %lld env steps\n", static_cast<long long>(solved_at));
}

}  // namespace
}  // namespace batchpole
