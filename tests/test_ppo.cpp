// PPO's pieces: the clipped surrogate and the clipped value loss against float64 finite
// differences (inside and outside the clip range, both signs of the advantage), GAE against a
// hand computation with a termination and a truncation mid-rollout, the counter-based shuffle
// (a permutation, the same on every device and thread count), and PPO training: the same
// numbers for 1 and 2 threads, exact resume, learning CartPole-v1.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "batchpole/rl/rl_ops.hpp"
#include "batchpole/rl/trainer.hpp"
#include "nn_reference.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

// The clipped surrogate of one row in double: -min(r A, clip(r) A) / C - beta H / C.
double surrogate_ref(const std::vector<double>& z, int32_t a, double adv, double old_logp,
                     double clip, double beta, double inv_count) {
  const int32_t n = static_cast<int32_t>(z.size());
  const auto lsm = ref::log_softmax(z.data(), n);
  const double r = std::exp(lsm[a] - old_logp);
  const double rc = std::min(std::max(r, 1 - clip), 1 + clip);
  return -std::min(r * adv, rc * adv) * inv_count - beta * ref::entropy(z.data(), n) * inv_count;
}

TEST(ClippedSurrogate, GradientMatchesFiniteDifferencesInAndOutOfTheClipRange) {
  const int32_t n = 3;
  const std::vector<float> z = {0.3f, -0.7f, 0.2f};
  const int32_t a = 0;
  std::vector<double> zd(z.begin(), z.end());
  const double logp = ref::log_softmax(zd.data(), n)[a];
  const double clip = 0.2;
  const PolicyLossCoefs coefs{0.5f, 0.03f};
  int clipped_cases = 0;
  // Ratios 0.5 (below 1 - clip), 1.1 (inside) and 1.6 (above 1 + clip), each advantage sign.
  for (const double ratio : {0.5, 1.1, 1.6}) {
    for (const double adv : {1.3, -0.8}) {
      const auto old_logp = static_cast<float>(logp - std::log(ratio));
      float dz[n];
      float stats[kStatColumnsClipped];
      clipped_policy_loss_row(z.data(), n, a, static_cast<float>(adv), old_logp,
                              static_cast<float>(clip), true, coefs, dz, stats);
      for (int32_t j = 0; j < n; ++j) {
        const double h = 1e-5;
        auto up = zd;
        auto down = zd;
        up[j] += h;
        down[j] -= h;
        const double fd = (surrogate_ref(up, a, adv, old_logp, clip, 0.03, 0.5) -
                           surrogate_ref(down, a, adv, old_logp, clip, 0.03, 0.5)) /
                          (2 * h);
        EXPECT_NEAR(dz[j], fd, 2e-5) << "ratio " << ratio << " advantage " << adv << " logit " << j;
      }
      const bool outside = ratio < 1 - clip || ratio > 1 + clip;
      EXPECT_EQ(stats[kStatClipped], outside ? 1.0f : 0.0f);
      EXPECT_NEAR(stats[kStatApproxKl], (ratio - 1) - std::log(ratio), 1e-5);
      const double rc = std::min(std::max(ratio, 1 - clip), 1 + clip);
      EXPECT_NEAR(stats[kStatWeightedLogProb], std::min(ratio * adv, rc * adv), 1e-5);
      // Where the clipped term is the smaller, only the entropy bonus moves the logits.
      if (rc * adv < ratio * adv) ++clipped_cases;
    }
  }
  EXPECT_EQ(clipped_cases, 2);  // ratio 1.6 with A > 0, ratio 0.5 with A < 0
}

TEST(ClippedValueLoss, GradientMatchesFiniteDifferences) {
  const double clip = 0.2;
  const auto loss_ref = [&](double v, double target, double old) {
    const double vc = old + std::min(std::max(v - old, -clip), clip);
    return 0.5 * std::max((v - target) * (v - target), (vc - target) * (vc - target));
  };
  // Inside the clip range, outside with the clipped term larger (no gradient), outside with
  // the unclipped term larger.
  for (const auto& [v, target, old] :
       {std::tuple{1.05, 2.0, 1.0}, std::tuple{1.5, 0.8, 1.0}, std::tuple{1.5, 2.5, 1.0}}) {
    float stats[kStatColumns];
    const float g = clipped_value_loss_row(static_cast<float>(v), static_cast<float>(target),
                                           static_cast<float>(old), static_cast<float>(clip), true,
                                           0.5f, 0.5f, stats);
    const double h = 1e-5;
    const double fd = (loss_ref(v + h, target, old) - loss_ref(v - h, target, old)) / (2 * h);
    EXPECT_NEAR(g, fd * 0.5, 1e-4) << v << " " << target << " " << old;
  }
}

class PpoOpsTest : public ::testing::TestWithParam<std::string> {};

template <class T>
Buffer<T> upload(Device& d, const std::vector<T>& v) {
  Buffer<T> b(d, v.size());
  b.from_host(v);
  return b;
}

// T = 3, N = 2. Env 0 terminates at t = 0 and runs on; env 1 is truncated at t = 1.
TEST_P(PpoOpsTest, GaeCutsAtTerminationAndBootstrapsTruncation) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const std::vector<float> rewards = {1, 1, 1, 1, 1, 1};
  const std::vector<uint8_t> term = {1, 0, 0, 0, 0, 0};
  const std::vector<uint8_t> trunc = {0, 0, 0, 1, 0, 0};
  const std::vector<float> values = {0.5f, 2, 1, 3, 4, 5};
  const std::vector<float> last = {6, 7};
  const std::vector<float> trunc_value = {0, 0, 0, 10, 0, 0};
  const float g = 0.9f, l = 0.8f;
  auto r = upload(*device, rewards);
  auto te = upload(*device, term);
  auto tr = upload(*device, trunc);
  auto v = upload(*device, values);
  auto lv = upload(*device, last);
  auto tv = upload(*device, trunc_value);
  Buffer<float> adv(*device, 6), ret(*device, 6);
  GaeArgs a;
  a.rewards = r.data();
  a.terminated = te.data();
  a.truncated = tr.data();
  a.values = v.data();
  a.last_value = lv.data();
  a.truncation_value = tv.data();
  a.gamma = g;
  a.lambda = l;
  a.steps = 3;
  a.envs = 2;
  a.advantages = adv.data();
  a.returns = ret.data();
  device->rl().gae(a);
  const auto got = adv.to_host();
  // Env 0: t=2 bootstraps from V(s_T) = 6; t=1 from V(s_2) = 4; t=0 terminated.
  const double d02 = 1 + g * 6 - 4, d01 = 1 + g * 4 - 1, d00 = 1 - 0.5;
  const double a02 = d02, a01 = d01 + g * l * a02, a00 = d00;
  // Env 1: t=2 from V(s_T) = 7; t=1 truncated: V(final obs) = 10, chain cut; t=0 from V(s_1).
  const double d12 = 1 + g * 7 - 5, d11 = 1 + g * 10 - 3, d10 = 1 + g * 3 - 2;
  const double a12 = d12, a11 = d11, a10 = d10 + g * l * a11;
  const std::vector<double> want = {a00, a10, a01, a11, a02, a12};
  const auto returns = ret.to_host();
  for (std::size_t k = 0; k < 6; ++k) {
    EXPECT_NEAR(got[k], want[k], 1e-5) << k;
    EXPECT_NEAR(returns[k], want[k] + values[k], 1e-5) << k;
  }
  // lambda = 1 gives the n-step returns of the returns operation.
  a.lambda = 1.0f;
  device->rl().gae(a);
  Buffer<float> nstep(*device, 6);
  ReturnsArgs ra;
  ra.rewards = r.data();
  ra.terminated = te.data();
  ra.truncated = tr.data();
  ra.last_value = lv.data();
  ra.truncation_value = tv.data();
  ra.gamma = g;
  ra.steps = 3;
  ra.envs = 2;
  ra.returns = nstep.data();
  device->rl().returns(ra);
  const auto n1 = nstep.to_host();
  const auto r1 = ret.to_host();
  for (std::size_t k = 0; k < 6; ++k) EXPECT_NEAR(r1[k], n1[k], 1e-5) << k;
}

TEST(Shuffle, IsAPermutationForEverySize) {
  for (const uint64_t rows : {1ULL, 2ULL, 3ULL, 7ULL, 64ULL, 100ULL, 1000ULL, 4097ULL, 65536ULL}) {
    const ShuffleKey k = make_shuffle_key(5, 3, 1, rows);
    std::vector<uint64_t> seen;
    for (uint64_t i = 0; i < rows; ++i) seen.push_back(shuffle_index(k, i));
    std::sort(seen.begin(), seen.end());
    std::vector<uint64_t> all(rows);
    std::iota(all.begin(), all.end(), 0ULL);
    EXPECT_EQ(seen, all) << rows << " rows";
  }
  // Another epoch, update or seed gives another order.
  const uint64_t rows = 1000;
  const auto order = [&](uint64_t seed, uint64_t update, uint64_t epoch) {
    const ShuffleKey k = make_shuffle_key(seed, update, epoch, rows);
    std::vector<uint64_t> v;
    for (uint64_t i = 0; i < 20; ++i) v.push_back(shuffle_index(k, i));
    return v;
  };
  EXPECT_NE(order(1, 2, 3), order(1, 2, 4));
  EXPECT_NE(order(1, 2, 3), order(1, 3, 3));
  EXPECT_NE(order(1, 2, 3), order(2, 2, 3));
  EXPECT_EQ(order(1, 2, 3), order(1, 2, 3));
}

// The gathered minibatch is the element function's, on every device and thread count.
TEST_P(PpoOpsTest, MinibatchGatherFollowsTheShuffle) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const int64_t rows = 20000;
  std::vector<float> obs(4 * rows), f(rows);
  std::vector<int32_t> act(rows);
  for (int64_t i = 0; i < rows; ++i) {
    for (int d = 0; d < 4; ++d)
      obs[4 * i + d] = static_cast<float>(i) + 0.25f * static_cast<float>(d);
    f[i] = static_cast<float>(i);
    act[i] = static_cast<int32_t>(i % 2);
  }
  auto o = upload(*device, obs);
  auto x = upload(*device, f);
  auto ac = upload(*device, act);
  const int64_t b = 17000;
  Buffer<float> oo(*device, 4 * b), ol(*device, b), oa(*device, b), orr(*device, b), ov(*device, b);
  Buffer<int32_t> oac(*device, b);
  MinibatchArgs g;
  g.key = make_shuffle_key(9, 4, 2, rows);
  g.first = rows - b;
  g.rows = b;
  g.obs = o.data();
  g.actions = ac.data();
  g.log_prob = g.advantages = g.returns = g.values = x.data();
  g.out_obs = oo.data();
  g.out_actions = oac.data();
  g.out_log_prob = ol.data();
  g.out_advantages = oa.data();
  g.out_returns = orr.data();
  g.out_values = ov.data();
  device->rl().gather_minibatch(g);
  const auto got_obs = oo.to_host();
  const auto got = ol.to_host();
  const auto got_act = oac.to_host();
  for (int64_t j = 0; j < b; ++j) {
    const auto src = static_cast<int64_t>(shuffle_index(g.key, static_cast<uint64_t>(g.first + j)));
    ASSERT_EQ(got[j], static_cast<float>(src)) << j;
    ASSERT_EQ(got_obs[4 * j + 3], static_cast<float>(src) + 0.75f) << j;
    ASSERT_EQ(got_act[j], src % 2) << j;
  }
  EXPECT_THROW(
      {
        MinibatchArgs bad = g;
        bad.first = rows - b + 1;
        device->rl().gather_minibatch(bad);
      },
      Error);
}

INSTANTIATE_TEST_SUITE_P(Devices, PpoOpsTest, ::testing::ValuesIn(test::devices()));

TrainConfig ppo_config(int64_t envs) {
  TrainConfig c = TrainConfig::defaults(Algorithm::kPpo, DevicePlan{});
  c.envs = envs;
  c.apply_ppo_recipe();
  c.seed = 12;
  return c;
}

std::unique_ptr<Device> cpu(int threads) {
  DeviceOptions o;
  o.device = DeviceRequest::parse("cpu");
  o.threads = threads;
  return make_device(o);
}

std::vector<double> trace(Trainer& t, int updates) {
  std::vector<double> v;
  for (int u = 0; u < updates; ++u) {
    const UpdateRecord r = t.update();
    for (const double x : {static_cast<double>(r.env_steps), r.recent.return_sum,
                           r.loss.policy_loss, r.value_loss, r.loss.entropy, r.loss.approx_kl,
                           r.loss.clip_fraction, r.explained_variance, r.loss.grad_norm}) {
      v.push_back(x);
    }
  }
  return v;
}

TEST(Ppo, SameNumbersForOneAndTwoThreadsAndExactResume) {
  TrainConfig c = ppo_config(40);
  c.n_steps = 16;
  c.minibatches = 3;  // 640 rows: shards and minibatches that do not divide evenly
  auto one = cpu(1);
  auto two = cpu(2);
  Trainer a(*one, c);
  Trainer b(*two, c);
  const auto ta = trace(a, 4);
  EXPECT_EQ(ta, trace(b, 4));
  // Resume: 2 updates, a checkpoint, 2 more, against 4 straight.
  const std::string path =
      (std::filesystem::temp_directory_path() / "batchpole_test_ppo_ckpt.bin").string();
  Trainer first(*two, c);
  auto got = trace(first, 2);
  first.save_checkpoint(path);
  Trainer second(*two, Trainer::read_checkpoint_config(path));
  second.restore_checkpoint(path);
  const auto rest = trace(second, 2);
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(got, ta);
  std::filesystem::remove(path);
}

TEST(Ppo, LearnsCartPoleWithItsDefaults) {
  auto device = cpu(0);
  Trainer t(*device, ppo_config(32));
  int64_t solved_at = -1;
  double best_explained = -1e30;  // the critic learns: it explains most of the returns' variance
  while (t.env_steps() < 600'000 && solved_at < 0) {
    const UpdateRecord r = t.update();
    ASSERT_TRUE(r.finite);
    EXPECT_GE(r.epochs, 1);
    ASSERT_TRUE(std::isfinite(r.explained_variance));
    best_explained = std::max(best_explained, r.explained_variance);
    if (r.recent.episodes >= 100 && r.recent.return_sum / r.recent.episodes >= 475.0) {
      solved_at = r.env_steps;
    }
  }
  EXPECT_GT(solved_at, 0) << "PPO did not solve CartPole-v1 within 600k env steps";
  EXPECT_GT(best_explained, 0.5);
}

TEST(Ppo, TargetKlStopsEpochsEarly) {
  TrainConfig c = ppo_config(32);
  c.epochs = 20;
  c.lr = 1e-2F;
  c.target_kl = 1e-4F;
  auto device = cpu(1);
  Trainer t(*device, c);
  int32_t fewest = c.epochs;
  for (int u = 0; u < 3; ++u) fewest = std::min(fewest, t.update().epochs);
  EXPECT_LT(fewest, c.epochs);
}

}  // namespace
}  // namespace batchpole

namespace batchpole {
namespace {

// The large-batch recipe (README, "PPO at any batch size"): about 4096 rows per update down to
// 8-step rollouts, 8 minibatches, lr 1e-3 below 256 envs and 3e-3 from there; keys the user
// gave are kept.
TEST(PpoRecipe, ScalesWithTheBatchAndKeepsWhatWasGiven) {
  struct Want {
    int64_t envs;
    int32_t n_steps;
    float lr;
  };
  for (const Want w : {Want{1, 128, 1e-3F}, Want{32, 128, 1e-3F}, Want{255, 16, 1e-3F},
                       Want{256, 16, 3e-3F}, Want{4096, 8, 3e-3F}, Want{1 << 20, 8, 3e-3F}}) {
    TrainConfig c;
    c.algorithm = Algorithm::kPpo;
    c.envs = w.envs;
    c.apply_ppo_recipe();
    EXPECT_EQ(c.n_steps, w.n_steps) << w.envs;
    EXPECT_EQ(c.minibatches, 8) << w.envs;
    EXPECT_EQ(c.lr, w.lr) << w.envs;
  }
  TrainConfig c;
  c.envs = 4096;
  c.n_steps = 32;
  c.lr = 5e-4F;
  c.minibatches = 2;
  c.apply_ppo_recipe({"n_steps", "lr", "minibatches"});
  EXPECT_EQ(c.n_steps, 32);
  EXPECT_EQ(c.lr, 5e-4F);
  EXPECT_EQ(c.minibatches, 2);
}

}  // namespace
}  // namespace batchpole
