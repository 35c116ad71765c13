// The element functions of nn_elements.hpp (portable exp/log/tanh, the categorical head, per-sample
// losses, initialisation, clipping, Adam) and the NnOps calls that run them over a batch.
#include <cmath>
#include <limits>
#include <random>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/adam.hpp"
#include "batchpole/nn/blas.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "nn_reference.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

using test::random_vec;

TEST(PortableMath, ExpWithinTwoUlpOverSoftmaxRange) {
  double worst = 0;
  for (int i = -80000; i <= 80000; ++i) {
    const float x = static_cast<float>(i) * 1e-3f + 0.000123f;
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(portable_exp(x) - want) / want);
  }
  EXPECT_LT(worst, 2.5e-7);
  EXPECT_EQ(portable_exp(0.0f), 1.0f);
  EXPECT_GT(portable_exp(-1000.0f), 0.0f);  // clamped, never NaN
  EXPECT_LT(portable_exp(-1000.0f), 1e-37f);
}

TEST(PortableMath, LogAccurate) {
  double worst = 0;
  for (int i = 0; i < 100000; ++i) {
    const float x = std::exp(static_cast<float>(i) * 1e-4f - 3.0f);  // [0.05, 400]
    const double want = std::log(static_cast<double>(x));
    worst = std::max(worst, std::abs(portable_log(x) - want) / std::max(1.0, std::abs(want)));
  }
  EXPECT_LT(worst, 2.5e-7);
  EXPECT_EQ(portable_log(1.0f), 0.0f);
}

TEST(PortableMath, TanhAccurateOddAndSaturating) {
  // Relative error against float64 tanh over [-12, 12], both branches and the switch between.
  double worst = 0;
  for (int i = -120000; i <= 120000; ++i) {
    const float x = static_cast<float>(i) * 1e-4f + 0.0000123f;
    const double want = std::tanh(static_cast<double>(x));
    worst = std::max(worst, std::abs(portable_tanh(x) - want) / std::abs(want));
    ASSERT_EQ(portable_tanh(-x), -portable_tanh(x)) << x;  // odd, bit for bit
  }
  EXPECT_LT(worst, 3.6e-7);  // 3 ulp of float
  EXPECT_EQ(portable_tanh(0.0f), 0.0f);
  EXPECT_EQ(portable_tanh(9.5f), 1.0f);
  EXPECT_EQ(portable_tanh(-1e30f), -1.0f);
  EXPECT_EQ(portable_tanh(5e-39f), 5e-39f);  // denormals pass through
  EXPECT_TRUE(std::isnan(portable_tanh(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(activate(Activation::kTanh, 0.3f), portable_tanh(0.3f));
}

TEST(CategoricalHead, LogProbEntropyMatchFloat64) {
  std::mt19937 rng(11);
  for (int32_t n : {1, 2, 3, 7, kMaxActions}) {
    for (int trial = 0; trial < 50; ++trial) {
      // Logits with a large common offset: the max subtraction must keep it exact.
      auto z = random_vec(static_cast<std::size_t>(n), static_cast<uint32_t>(rng()), -4.0f, 4.0f);
      const float offset = trial % 5 == 0 ? 500.0f : 0.0f;
      for (auto& x : z) x += offset;
      std::vector<double> zd(z.begin(), z.end());
      const auto lsm = ref::log_softmax(zd.data(), n);
      for (int32_t a = 0; a < n; ++a) {
        EXPECT_NEAR(categorical_log_prob(z.data(), n, a), lsm[a], 2e-5 * (1 + std::abs(lsm[a])));
      }
      EXPECT_NEAR(categorical_entropy(z.data(), n), ref::entropy(zd.data(), n), 2e-6);
      EXPECT_TRUE(std::isnan(categorical_log_prob(z.data(), n, n)));
    }
  }
}

// d/dz of one sample's policy loss -(w log pi(a) + beta H) / C against float64 central
// differences, valid and masked.
TEST(CategoricalHead, PolicyLossRowGradientMatchesFiniteDifferences) {
  std::mt19937 rng(12);
  for (int32_t n : {2, 3, 5}) {
    for (int trial = 0; trial < 20; ++trial) {
      const auto z =
          random_vec(static_cast<std::size_t>(n), static_cast<uint32_t>(rng()), -3.0f, 3.0f);
      const int32_t a = static_cast<int32_t>(rng() % static_cast<uint32_t>(n));
      const float w = random_vec(1, static_cast<uint32_t>(rng()), -2.0f, 2.0f)[0];
      const PolicyLossCoefs c{1.0f / 3.0f, 0.05f};
      std::vector<float> dz(static_cast<std::size_t>(n));
      float stats[kStatColumns];
      policy_loss_row(z.data(), n, a, w, true, c, dz.data(), stats);
      const auto f = [&](const std::vector<double>& zz) {
        return -(w * ref::log_softmax(zz.data(), n)[a] + 0.05 * ref::entropy(zz.data(), n)) / 3.0;
      };
      std::vector<int64_t> all(static_cast<std::size_t>(n));
      for (int32_t j = 0; j < n; ++j) all[j] = j;
      const auto fd = ref::finite_difference(f, std::vector<double>(z.begin(), z.end()), all);
      for (int32_t j = 0; j < n; ++j) EXPECT_NEAR(dz[j], fd[j], 2e-6) << "n " << n << " j " << j;
      std::vector<double> zd(z.begin(), z.end());
      EXPECT_NEAR(stats[kStatWeightedLogProb], w * ref::log_softmax(zd.data(), n)[a], 1e-5);
      EXPECT_NEAR(stats[kStatEntropy], ref::entropy(zd.data(), n), 1e-6);
      EXPECT_EQ(stats[kStatValid], 1.0f);

      // Masked: exact zeros even with a NaN weight or an out-of-range action.
      policy_loss_row(z.data(), n, -7, std::numeric_limits<float>::quiet_NaN(), false, c, dz.data(),
                      stats);
      for (int32_t j = 0; j < n; ++j) EXPECT_EQ(dz[j], 0.0f);
      for (const float s : stats) EXPECT_EQ(s, 0.0f);
    }
  }
}

TEST(ValueHead, ValueLossRowGradient) {
  float stats[kStatColumns] = {};
  // L = coef * (v - t)^2 / C: dL/dv = 2 coef (v - t) / C.
  EXPECT_FLOAT_EQ(value_loss_row(1.5f, -0.5f, true, 0.25f, 0.5f, stats), 2 * 0.5f * 2.0f * 0.25f);
  EXPECT_FLOAT_EQ(stats[kStatSquaredError], 4.0f);
  EXPECT_EQ(
      value_loss_row(1.5f, std::numeric_limits<float>::quiet_NaN(), false, 0.25f, 0.5f, stats),
      0.0f);
  EXPECT_EQ(stats[kStatSquaredError], 0.0f);
  const auto f = [](const std::vector<double>& v) { return 0.7 * (v[0] - 0.3) * (v[0] - 0.3) / 5; };
  const double fd = ref::finite_difference(f, {1.1}, {0})[0];
  EXPECT_NEAR(value_loss_row(1.1f, 0.3f, true, 0.2f, 0.7f, nullptr), fd, 1e-6);
}

TEST(Optimiser, ClipScaleAsPyTorch) {
  EXPECT_FLOAT_EQ(clip_scale(5.0f, 1.0f), 1.0f / (5.0f + 1e-6f));
  EXPECT_EQ(clip_scale(0.5f, 1.0f), 1.0f);
  EXPECT_EQ(clip_scale(1.0f, 1.0f), 1.0f);  // not above: untouched
  EXPECT_EQ(clip_scale(1e6f, 0.0f), 1.0f);  // max_norm <= 0: no clipping
}

// Two steps of Adam (lr 0.1) on one parameter p = 1 with gradients 0.5 then -0.25, worked out by
// hand from torch.optim.Adam's update:
//   t=1: m = 0.05, v = 2.5e-4, step = 0.1 / 0.1 = 1, denom = sqrt(2.5e-4) / sqrt(1e-3) + 1e-8
//        = 0.5 + 1e-8, p = 1 - 0.05 / 0.5 = 0.9
//   t=2: m = 0.05 + 0.1 (-0.25 - 0.05) = 0.02, v = 0.999 * 2.5e-4 + 0.001 * 0.0625 = 3.1225e-4,
//        step = 0.1 / 0.19, denom = sqrt(3.1225e-4) / sqrt(1.999e-3) = 0.3952257,
//        p = 0.9 - 0.5263158 * 0.02 / 0.3952257 = 0.8733663
TEST(Optimiser, AdamByHand) {
  AdamConfig c;
  c.lr = 0.1;
  float p = 1.0f, m = 0.0f, v = 0.0f;
  adam_update(&p, 0.5f, &m, &v, Adam::scalars(c, 1));
  EXPECT_NEAR(m, 0.05f, 1e-8);
  EXPECT_NEAR(v, 2.5e-4f, 1e-10);
  EXPECT_NEAR(p, 0.9f, 1e-7);
  adam_update(&p, -0.25f, &m, &v, Adam::scalars(c, 2));
  EXPECT_NEAR(m, 0.02f, 1e-8);
  EXPECT_NEAR(v, 3.1225e-4f, 1e-10);
  EXPECT_NEAR(p, 0.8733663f, 2e-7);
}

class NnOpsTest : public ::testing::TestWithParam<std::string> {};

// The gradients [3, 4] have norm 5; clipped to 1 they become [0.6, 0.8] (up to the 1e-6), which
// the first moment shows after one step: m = (1 - beta1) g = [0.06, 0.08].
TEST_P(NnOpsTest, AdamStepClipsByTheDeviceNorm) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  Blas* blas = &device->blas();
  NnOps* ops = &device->nn();
  AdamConfig c;
  c.lr = 0.01;
  c.max_grad_norm = 1.0;
  Adam adam(*device, *blas, *ops, 2, c);
  Buffer<float> p(*device, 2), g(*device, 2), norm(*device, 1);
  p.from_host(std::vector<float>{1.0f, -1.0f});
  g.from_host(std::vector<float>{3.0f, 4.0f});
  adam.step(p.data(), g.data(), norm.data());
  EXPECT_NEAR(norm.to_host()[0], 5.0f, 1e-6);
  std::vector<float> m(2);
  device->copy_to_host(m.data(), adam.first_moment(), sizeof(float) * 2);
  // (Unclipped they would be 0.3 and 0.4.)
  EXPECT_NEAR(m[0], 0.1 * 3.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_NEAR(m[1], 0.1 * 4.0 / (5.0 + 1e-6), 1e-7);
  // The first Adam step moves each parameter by lr against its gradient's sign.
  const auto hp = p.to_host();
  EXPECT_NEAR(hp[0], 1.0f - 0.01f, 1e-6);
  EXPECT_NEAR(hp[1], -1.0f - 0.01f, 1e-6);
  EXPECT_EQ(g.to_host(), (std::vector<float>{3.0f, 4.0f}));  // gradients left as they were
  EXPECT_EQ(adam.steps(), 1);
}

// Same logits in, same actions out, on every device: the draw and the softmax are the same
// functions, with no libm inside.
TEST_P(NnOpsTest, SamplingIsTheElementFunctionBitForBit) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  NnOps* ops = &device->nn();
  const int64_t rows = 5000;
  const int32_t na = 3;
  const auto hz = random_vec(static_cast<std::size_t>(rows * na), 21, -3.0f, 3.0f);
  Buffer<float> z(*device, hz.size()), lp(*device, rows), ent(*device, rows);
  Buffer<int32_t> a(*device, rows);
  z.from_host(hz);
  const SampleKey key{99, 17, 1000};
  ops->sample_actions(z.data(), rows, na, key, a.data(), lp.data(), ent.data());
  const auto ha = a.to_host();
  const auto hlp = lp.to_host();
  const auto hent = ent.to_host();
  for (int64_t i = 0; i < rows; ++i) {
    float want_lp = 0, want_ent = 0;
    const float u = policy_uniform(99, 1000 + static_cast<uint32_t>(i), 17);
    const int32_t want = policy_sample_row(hz.data() + i * na, na, u, &want_lp, &want_ent);
    ASSERT_EQ(ha[i], want) << "row " << i;
    ASSERT_EQ(hlp[i], want_lp) << "row " << i;
    ASSERT_EQ(hent[i], want_ent) << "row " << i;
  }
  // log_prob_entropy and softmax agree with the sampler's numbers.
  Buffer<float> lp2(*device, rows), ent2(*device, rows), probs(*device, hz.size());
  ops->log_prob_entropy(z.data(), rows, na, a.data(), lp2.data(), ent2.data());
  ops->softmax(z.data(), rows, na, probs.data());
  EXPECT_EQ(lp2.to_host(), hlp);
  EXPECT_EQ(ent2.to_host(), hent);
  const auto hp = probs.to_host();
  for (int64_t i = 0; i < rows; ++i) {
    EXPECT_NEAR(std::log(hp[i * na + ha[i]]), hlp[i], 1e-5);
  }
}

// Sampled frequencies against softmax probabilities: Pearson's chi-square over many envs at one
// step, and over many steps of one env (the step counter must decorrelate draws).
TEST_P(NnOpsTest, SampleFrequenciesMatchSoftmax) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  NnOps* ops = &device->nn();
  const std::vector<float> logits = {0.3f, -1.2f, 1.1f, 0.0f};
  const int32_t na = 4;
  std::vector<double> p(na);
  {
    std::vector<double> zd(logits.begin(), logits.end());
    const auto lsm = ref::log_softmax(zd.data(), na);
    for (int32_t j = 0; j < na; ++j) p[j] = std::exp(lsm[j]);
  }
  const auto chi2 = [&](const std::vector<int64_t>& counts, int64_t total) {
    double c = 0;
    for (int32_t j = 0; j < na; ++j) {
      const double e = p[j] * static_cast<double>(total);
      c += (static_cast<double>(counts[j]) - e) * (static_cast<double>(counts[j]) - e) / e;
    }
    return c;
  };
  // 3 degrees of freedom: P(chi2 > 16.27) = 0.001; seeds are fixed, so this never flakes.
  constexpr double kChi2Crit = 16.27;
  const int64_t rows = 200000;
  std::vector<float> hz(static_cast<std::size_t>(rows * na));
  for (int64_t i = 0; i < rows; ++i) {
    for (int32_t j = 0; j < na; ++j) hz[i * na + j] = logits[j];
  }
  Buffer<float> z(*device, hz.size());
  Buffer<int32_t> a(*device, rows);
  z.from_host(hz);
  ops->sample_actions(z.data(), rows, na, SampleKey{5, 3, 0}, a.data(), nullptr, nullptr);
  std::vector<int64_t> counts(na, 0);
  for (const int32_t x : a.to_host()) counts[x] += 1;
  EXPECT_LT(chi2(counts, rows), kChi2Crit);

  // One env over 20000 steps.
  std::fill(counts.begin(), counts.end(), 0);
  const int64_t steps = 20000;
  for (int64_t s = 0; s < steps; ++s) {
    ops->sample_actions(z.data(), 1, na, SampleKey{5, static_cast<uint64_t>(s), 0}, a.data() + s,
                        nullptr, nullptr);
  }
  const auto ha = a.to_host();
  for (int64_t s = 0; s < steps; ++s) counts[ha[s]] += 1;
  EXPECT_LT(chi2(counts, steps), kChi2Crit);
}

TEST_P(NnOpsTest, InitIsPyTorchUniformAndDeviceIndependent) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  NnOps* ops = &device->nn();
  const int64_t n = 4097;
  const float bound = 0.125f;  // 1/sqrt(64)
  Buffer<float> x(*device, n);
  ops->init_uniform(x.data(), n, bound, 42, 3);
  const auto hx = x.to_host();
  double mean = 0, lo = 1, hi = -1;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(hx[i], init_uniform_value(42, 3, i, bound));  // bit-identical to the host
    ASSERT_GE(hx[i], -bound);
    ASSERT_LT(hx[i], bound);
    mean += hx[i];
    lo = std::min(lo, static_cast<double>(hx[i]));
    hi = std::max(hi, static_cast<double>(hx[i]));
  }
  mean /= static_cast<double>(n);
  EXPECT_NEAR(mean, 0.0, 4 * bound / std::sqrt(3.0 * static_cast<double>(n)));
  EXPECT_LT(lo, -0.99 * bound);
  EXPECT_GT(hi, 0.99 * bound);
  Buffer<float> y(*device, n);
  ops->init_uniform(y.data(), n, bound, 42, 4);  // another block: other numbers
  EXPECT_NE(y.to_host(), hx);
}

TEST_P(NnOpsTest, CountNonzeroAndActivations) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  NnOps* ops = &device->nn();
  const int64_t n = 100003;
  std::vector<uint8_t> hm(n);
  int64_t want = 0;
  for (int64_t i = 0; i < n; ++i) {
    hm[i] = static_cast<uint8_t>((i * 7919) % 5 == 0 ? 0 : (i % 3) + 1);
    want += hm[i] != 0 ? 1 : 0;
  }
  Buffer<uint8_t> m(*device, n);
  m.from_host(hm);
  Buffer<float> out(*device, 1);
  ops->count_nonzero(m.data(), n, out.data());
  EXPECT_EQ(out.to_host()[0], static_cast<float>(want));

  // bias + activation, and the backward from outputs, against float64.
  const int64_t rows = 33, cols = 5;
  const auto hy = random_vec(static_cast<std::size_t>(rows * cols), 31, -2.0f, 2.0f);
  const auto hb = random_vec(static_cast<std::size_t>(cols), 32);
  const auto hd = random_vec(hy.size(), 33);
  for (const Activation act : {Activation::kIdentity, Activation::kRelu, Activation::kTanh}) {
    Buffer<float> y(*device, hy.size()), b(*device, hb.size()), d(*device, hd.size());
    y.from_host(hy);
    b.from_host(hb);
    d.from_host(hd);
    ops->bias_activation(y.data(), b.data(), rows, cols, act);
    ops->activation_backward(d.data(), y.data(), rows * cols, act);
    const auto oy = y.to_host();
    const auto od = d.to_host();
    for (int64_t i = 0; i < rows * cols; ++i) {
      const double pre = static_cast<double>(hy[i]) + hb[i % cols];
      EXPECT_NEAR(oy[i], ref::act(act, pre), 1e-6);
      EXPECT_NEAR(od[i], hd[i] * ref::act_grad(act, pre), 2e-6);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, NnOpsTest, ::testing::ValuesIn(test::devices()));

}  // namespace
}  // namespace batchpole
