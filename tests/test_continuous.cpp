// Continuous actions: the continuous CartPole against a float64 reference of the same equations
// (on every device and precision), its unit actions against the discrete steps bit for bit, the
// CPU against the GPU bit for bit; the Gaussian head's log-probability, entropy and loss
// gradients against float64 finite differences (element functions, the device operations and
// the whole model, both log-std variants); sampling as the element function and with the
// Gaussian's moments; and the policy-gradient trainers on continuous CartPole.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>

#include "batchpole/device/buffer.hpp"
#include "batchpole/env/vec_env.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "batchpole/rl/trainer.hpp"
#include "model_fixtures.hpp"

namespace batchpole {
namespace {

using test::random_vec;
using test::to_double;

// ---- the environment ------------------------------------------------------------------------

// One step of the continuous CartPole in float64, written from Gymnasium's equations with the
// force clip(a, -1, 1) * force_mag and libm's sin and cos (an independent route: the library
// uses its own polynomials). Returns whether the new state is out of bounds.
bool reference_step(const CartPoleParams& p, double a, double s[4]) {
  const double clipped = std::isnan(a) ? 0.0 : std::min(std::max(a, -1.0), 1.0);
  const double force = clipped * p.force_mag;
  const double total_mass = p.masspole + p.masscart;
  const double polemass_length = p.masspole * p.length;
  const double costheta = std::cos(s[2]);
  const double sintheta = std::sin(s[2]);
  const double temp = (force + polemass_length * s[3] * s[3] * sintheta) / total_mass;
  const double thetaacc = (p.gravity * sintheta - costheta * temp) /
                          (p.length * (4.0 / 3.0 - p.masspole * costheta * costheta / total_mass));
  const double xacc = temp - polemass_length * thetaacc * costheta / total_mass;
  s[0] = s[0] + p.tau * s[1];
  s[1] = s[1] + p.tau * xacc;
  s[2] = s[2] + p.tau * s[3];
  s[3] = s[3] + p.tau * thetaacc;
  return s[0] < -p.x_threshold || s[0] > p.x_threshold || s[2] < -p.theta_threshold ||
         s[2] > p.theta_threshold;
}

// Actions that exercise the clip and the special values: uniform in [-2, 2], with exact +-1, 0,
// +-infinity and NaN among them.
std::vector<float> test_actions(std::size_t n, uint32_t seed) {
  auto a = random_vec(n, seed, -2.0f, 2.0f);
  const float special[] = {1.0f,
                           -1.0f,
                           0.0f,
                           std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN()};
  for (std::size_t i = 0; i < n; i += 7) a[i] = special[(i / 7) % 6];
  return a;
}

using EnvParam = std::tuple<std::string, Precision>;
class ContinuousEnvTest : public ::testing::TestWithParam<EnvParam> {};

// From the env's own state at every step (no drift), one step of the env against the float64
// reference: f64 within a few ulp (the library's sin/cos are within 1 ulp of libm's), f32
// within 1e-5; the termination flag exact away from the thresholds.
TEST_P(ContinuousEnvTest, StepMatchesAFloat64ReferenceOfTheSameEquations) {
  const auto& [device_name, precision] = GetParam();
  BP_DEVICE_OR_SKIP(device, device_name);
  const int64_t n = 257;
  const CartPoleParams params;
  VecEnv env(*device, n, params, precision);
  env.reset(31);
  const double tol = precision == Precision::kF64 ? 1e-13 : 1e-5;
  int checked_terminations = 0;
  for (int step = 0; step < 120; ++step) {
    const EnvState before = env.get_state();
    const auto actions = test_actions(static_cast<std::size_t>(n), 100 + step);
    env.step_host_continuous(actions);
    const HostStep out = env.fetch();
    for (int64_t i = 0; i < n; ++i) {
      double s[4] = {before.x[i], before.x_dot[i], before.theta[i], before.theta_dot[i]};
      const bool term = reference_step(params, actions[i], s);
      const bool ended = out.terminated[i] != 0 || out.truncated[i] != 0;
      const float* got = ended ? &out.final_obs[4 * i] : &out.obs[4 * i];
      for (int k = 0; k < 4; ++k) {
        ASSERT_NEAR(got[k], static_cast<float>(s[k]), tol * (1.0 + std::abs(s[k])))
            << "step " << step << " env " << i << " component " << k << " action " << actions[i];
      }
      const double margin = std::min({std::abs(std::abs(s[0]) - params.x_threshold),
                                      std::abs(std::abs(s[2]) - params.theta_threshold)});
      if (margin > 1e-4) {
        ASSERT_EQ(out.terminated[i] != 0, term) << "step " << step << " env " << i;
        checked_terminations += term ? 1 : 0;
      }
    }
  }
  EXPECT_GT(checked_terminations, 50);  // the flags were exercised
}

// a = +1 and -1 are exactly the discrete actions 1 and 0; beyond [-1, 1] the force is clipped;
// NaN pushes with force 0, as a = 0 does.
TEST_P(ContinuousEnvTest, UnitActionsAreTheDiscreteStepsAndTheForceIsClipped) {
  const auto& [device_name, precision] = GetParam();
  BP_DEVICE_OR_SKIP(device, device_name);
  const int64_t n = 64;
  VecEnv discrete(*device, n, {}, precision);
  VecEnv unit(*device, n, {}, precision);
  VecEnv beyond(*device, n, {}, precision);
  for (VecEnv* e : {&discrete, &unit, &beyond}) e->reset(5);
  std::mt19937 rng(3);
  for (int step = 0; step < 300; ++step) {
    std::vector<int32_t> a(n);
    std::vector<float> u(n);
    std::vector<float> b(n);
    for (int64_t i = 0; i < n; ++i) {
      a[i] = static_cast<int32_t>(rng() & 1U);
      u[i] = a[i] == 1 ? 1.0f : -1.0f;
      b[i] = a[i] == 1 ? 3.5f : -std::numeric_limits<float>::infinity();
    }
    discrete.step_host(a);
    unit.step_host_continuous(u);
    beyond.step_host_continuous(b);
  }
  const EnvState d = discrete.get_state();
  for (const VecEnv* e : {&unit, &beyond}) {
    const EnvState s = e->get_state();
    EXPECT_EQ(s.x, d.x);
    EXPECT_EQ(s.theta_dot, d.theta_dot);
    EXPECT_EQ(s.episode, d.episode);
    EXPECT_EQ(s.length, d.length);
  }
  EXPECT_GT(d.episode[0], 5U);  // episodes ended and restarted along the way

  VecEnv zero(*device, n, {}, precision);
  VecEnv nan(*device, n, {}, precision);
  zero.reset(8);
  nan.reset(8);
  for (int step = 0; step < 20; ++step) {
    zero.step_host_continuous(std::vector<float>(n, 0.0f));
    nan.step_host_continuous(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
  }
  EXPECT_EQ(zero.get_state().x, nan.get_state().x);
  EXPECT_EQ(zero.get_state().theta, nan.get_state().theta);
}

INSTANTIATE_TEST_SUITE_P(DevicesAndPrecisions, ContinuousEnvTest,
                         ::testing::Combine(::testing::ValuesIn(test::devices()),
                                            ::testing::Values(Precision::kF32, Precision::kF64)),
                         [](const auto& p) {
                           return std::get<0>(p.param) + "_" + to_string(std::get<1>(p.param));
                         });

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class ContinuousCpuGpu : public ::testing::TestWithParam<Precision> {};

// The same actions give the same bits on both devices: observations, rewards, flags, final
// observations and the full state, over thousands of episode ends.
TEST_P(ContinuousCpuGpu, SameActionsBitIdentical) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto cpu = test::device_or_skip("cpu");
  const int64_t n = 9000;  // past the CPU's parallel threshold
  VecEnv ec(*cpu, n, {}, GetParam());
  VecEnv eg(*gpu, n, {}, GetParam());
  ec.reset(12);
  eg.reset(12);
  int64_t ended = 0;
  for (int step = 0; step < 200; ++step) {
    const auto a = test_actions(static_cast<std::size_t>(n), 900 + step);
    ec.step_host_continuous(a);
    eg.step_host_continuous(a);
    const HostStep c = ec.fetch();
    const HostStep g = eg.fetch();
    ASSERT_TRUE(bitwise_equal(c.obs, g.obs)) << "step " << step;
    ASSERT_TRUE(bitwise_equal(c.final_obs, g.final_obs)) << "step " << step;
    ASSERT_TRUE(bitwise_equal(c.reward, g.reward)) << "step " << step;
    ASSERT_EQ(c.terminated, g.terminated) << "step " << step;
    ASSERT_EQ(c.truncated, g.truncated) << "step " << step;
    for (const uint8_t t : c.terminated) ended += t;
  }
  EXPECT_EQ(ec.get_state().x, eg.get_state().x);
  EXPECT_EQ(ec.get_state().theta_dot, eg.get_state().theta_dot);
  EXPECT_GT(ended, 1000);
}

INSTANTIATE_TEST_SUITE_P(Precisions, ContinuousCpuGpu,
                         ::testing::Values(Precision::kF32, Precision::kF64),
                         [](const auto& p) { return to_string(p.param); });

// ---- the Gaussian head ------------------------------------------------------------------------

double ref_log_prob(const std::vector<double>& z, const std::vector<double>& a) {
  const auto d = a.size();
  double lp = 0;
  for (std::size_t k = 0; k < d; ++k) {
    const double sigma = std::exp(z[d + k]);
    const double u = (a[k] - z[k]) / sigma;
    lp += -0.5 * u * u - std::log(sigma) - 0.5 * std::log(2 * M_PI);
  }
  return lp;
}

double ref_entropy(const std::vector<double>& z) {
  const auto d = z.size() / 2;
  double h = 0;
  for (std::size_t k = 0; k < d; ++k) h += 0.5 * std::log(2 * M_PI * M_E * std::exp(2 * z[d + k]));
  return h;
}

// -(w log pi(a) + beta H) * inv_count, or PPO's clipped surrogate with old_log_prob.
double ref_loss(const std::vector<double>& z, const std::vector<double>& a, double w, double beta,
                double inv_count, const double* old_log_prob = nullptr, double clip = 0.2) {
  const double lp = ref_log_prob(z, a);
  double objective = w * lp;
  if (old_log_prob != nullptr) {
    const double r = std::exp(lp - *old_log_prob);
    const double rc = std::min(std::max(r, 1 - clip), 1 + clip);
    objective = std::min(r * w, rc * w);
  }
  return -(objective + beta * ref_entropy(z)) * inv_count;
}

TEST(GaussianHead, LogProbAndEntropyMatchFloat64) {
  for (const int32_t d : {1, 2, 5}) {
    for (uint32_t seed = 0; seed < 20; ++seed) {
      const auto z = random_vec(2 * d, 70 + seed, -1.5f, 1.5f);
      const auto a = random_vec(d, 90 + seed, -3.0f, 3.0f);
      const double lp = ref_log_prob(to_double(z), to_double(a));
      EXPECT_NEAR(gaussian_log_prob(z.data(), d, a.data()), lp, 2e-5 * (1 + std::abs(lp)));
      EXPECT_NEAR(gaussian_entropy(z.data(), d), ref_entropy(to_double(z)), 1e-5);
    }
  }
}

// The loss gradient with respect to the means and log-stds against central differences of the
// float64 loss: the policy gradient, and the clipped surrogate inside and outside the clip range
// with both signs of the advantage.
TEST(GaussianHead, LossGradientsMatchFiniteDifferences) {
  const int32_t d = 2;
  const std::vector<float> z = {0.3f, -0.4f, -0.2f, 0.25f};
  const std::vector<float> a = {0.9f, -1.1f};
  const auto zd = to_double(z);
  const auto ad = to_double(a);
  const PolicyLossCoefs coefs{0.25f, 0.02f};
  const auto check = [&](const float* dz, const std::function<double(std::vector<double>)>& f,
                         const std::string& what) {
    for (int32_t j = 0; j < 2 * d; ++j) {
      const double h = 1e-5;
      auto up = zd;
      auto down = zd;
      up[j] += h;
      down[j] -= h;
      EXPECT_NEAR(dz[j], (f(up) - f(down)) / (2 * h), 2e-5) << what << " output " << j;
    }
  };
  for (const double w : {1.7, -0.6}) {
    float dz[2 * d];
    float stats[kStatColumns];
    gaussian_policy_loss_row(z.data(), d, a.data(), static_cast<float>(w), true, coefs, dz, stats);
    check(
        dz, [&](const std::vector<double>& zz) { return ref_loss(zz, ad, w, 0.02, 0.25); },
        "policy gradient, w " + std::to_string(w));
    EXPECT_NEAR(stats[kStatWeightedLogProb], w * ref_log_prob(zd, ad), 1e-5);
    EXPECT_NEAR(stats[kStatEntropy], ref_entropy(zd), 1e-5);
    EXPECT_EQ(stats[kStatValid], 1.0f);
  }
  const double lp = ref_log_prob(zd, ad);
  int clipped = 0;
  for (const double ratio : {0.5, 1.1, 1.6}) {
    for (const double adv : {1.3, -0.8}) {
      const auto old = static_cast<float>(lp - std::log(ratio));
      const double old_d = old;
      float dz[2 * d];
      float stats[kStatColumnsClipped];
      clipped_gaussian_policy_loss_row(z.data(), d, a.data(), static_cast<float>(adv), old, 0.2f,
                                       true, coefs, dz, stats);
      check(
          dz,
          [&](const std::vector<double>& zz) {
            return ref_loss(zz, ad, adv, 0.02, 0.25, &old_d, 0.2);
          },
          "clipped, ratio " + std::to_string(ratio) + " advantage " + std::to_string(adv));
      EXPECT_NEAR(stats[kStatApproxKl], (ratio - 1) - std::log(ratio), 1e-5);
      const bool outside = ratio < 0.8 || ratio > 1.2;
      EXPECT_EQ(stats[kStatClipped], outside ? 1.0f : 0.0f);
      clipped += outside && ((ratio > 1.2) == (adv > 0)) ? 1 : 0;
    }
  }
  EXPECT_EQ(clipped, 2);
  // An invalid sample contributes exact zeros, whatever its action and weight hold.
  const std::vector<float> nan_action = {std::numeric_limits<float>::quiet_NaN(), 0.0f};
  float dz[2 * d];
  float stats[kStatColumns];
  gaussian_policy_loss_row(z.data(), d, nan_action.data(), std::numeric_limits<float>::infinity(),
                           false, coefs, dz, stats);
  for (const float v : dz) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(stats[kStatWeightedLogProb], 0.0f);
  EXPECT_EQ(stats[kStatValid], 0.0f);
}

class GaussianOpsTest : public ::testing::TestWithParam<std::string> {};

// Sampling on the device is the element function bit for bit, and over many draws the actions
// have the Gaussian's mean and standard deviation (the normals are standard: mean 0, variance 1).
TEST_P(GaussianOpsTest, SamplingIsTheElementFunctionAndHasTheGaussiansMoments) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const int64_t rows = 20000;
  const int32_t d = 3;
  std::vector<float> head(static_cast<std::size_t>(rows * 2 * d));
  const float mean[d] = {0.5f, -1.0f, 2.0f};
  const float log_std[d] = {0.0f, -1.0f, 0.7f};
  for (int64_t i = 0; i < rows; ++i) {
    for (int32_t k = 0; k < d; ++k) {
      head[i * 2 * d + k] = mean[k];
      head[i * 2 * d + d + k] = log_std[k];
    }
  }
  Buffer<float> h(*device, head.size());
  h.from_host(head);
  Buffer<float> actions(*device, static_cast<std::size_t>(rows * d));
  Buffer<float> log_prob(*device, static_cast<std::size_t>(rows));
  Buffer<float> entropy(*device, static_cast<std::size_t>(rows));
  const SampleKey key{77, 12, 3};
  device->nn().sample_gaussian(h.data(), rows, d, key, actions.data(), log_prob.data(),
                               entropy.data());
  const auto a = actions.to_host();
  const auto lp = log_prob.to_host();
  const auto en = entropy.to_host();
  for (int64_t i = 0; i < rows; i += 997) {
    float ea[d];
    float elp = 0;
    float een = 0;
    gaussian_sample_row(&head[i * 2 * d], d, key.seed, key.first_env + static_cast<uint32_t>(i),
                        key.step, ea, &elp, &een);
    for (int32_t k = 0; k < d; ++k) ASSERT_EQ(a[i * d + k], ea[k]) << "row " << i;
    ASSERT_EQ(lp[i], elp);
    ASSERT_EQ(en[i], een);
  }
  for (int32_t k = 0; k < d; ++k) {
    double s = 0;
    double s2 = 0;
    for (int64_t i = 0; i < rows; ++i) {
      const double u = (a[i * d + k] - mean[k]) / std::exp(static_cast<double>(log_std[k]));
      s += u;
      s2 += u * u;
    }
    const double m = s / rows;
    const double var = s2 / rows - m * m;
    EXPECT_NEAR(m, 0.0, 4.0 / std::sqrt(rows)) << "dimension " << k;
    EXPECT_NEAR(var, 1.0, 6.0 * std::sqrt(2.0 / rows)) << "dimension " << k;
  }
  // Another step draws afresh.
  device->nn().sample_gaussian(h.data(), rows, d, SampleKey{77, 13, 3}, actions.data(), nullptr,
                               nullptr);
  EXPECT_NE(actions.to_host(), a);
}

// The device operations against the float64 reference: log-probability and entropy, and the
// loss gradient (policy gradient and clipped surrogate, masked rows, divisor on the device).
TEST_P(GaussianOpsTest, LogProbEntropyAndLossGradientMatchFloat64) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const int64_t rows = 300;
  const int32_t d = 2;
  const auto head = random_vec(static_cast<std::size_t>(rows * 2 * d), 5, -1.0f, 1.0f);
  const auto acts = random_vec(static_cast<std::size_t>(rows * d), 6, -2.5f, 2.5f);
  const auto weights = random_vec(static_cast<std::size_t>(rows), 7, -2.0f, 2.0f);
  auto old = random_vec(static_cast<std::size_t>(rows), 8, -3.0f, -1.0f);
  std::vector<uint8_t> mask(static_cast<std::size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) mask[i] = i % 5 == 0 ? 0 : 1;
  Buffer<float> h(*device, head.size()), a(*device, acts.size()), w(*device, weights.size()),
      o(*device, old.size()), lp(*device, rows), en(*device, rows), count(*device, 1),
      dh(*device, head.size()), stats(*device, static_cast<std::size_t>(rows) * 6);
  Buffer<uint8_t> m(*device, mask.size());
  h.from_host(head);
  a.from_host(acts);
  w.from_host(weights);
  o.from_host(old);
  m.from_host(mask);
  const float c = 40.0f;
  count.from_host(&c, 1);
  device->nn().gaussian_log_prob_entropy(h.data(), rows, d, a.data(), lp.data(), en.data());
  const auto lp_h = lp.to_host();
  const auto en_h = en.to_host();
  for (int64_t i = 0; i < rows; ++i) {
    const std::vector<double> z(head.begin() + i * 2 * d, head.begin() + (i + 1) * 2 * d);
    const std::vector<double> ai(acts.begin() + i * d, acts.begin() + (i + 1) * d);
    EXPECT_NEAR(lp_h[i], ref_log_prob(z, ai), 2e-5 * (1 + std::abs(ref_log_prob(z, ai))));
    EXPECT_NEAR(en_h[i], ref_entropy(z), 1e-5);
  }
  for (const bool clipped : {false, true}) {
    GaussianLossArgs g;
    g.head = h.data();
    g.rows = rows;
    g.action_dim = d;
    g.actions = a.data();
    g.weights = w.data();
    g.mask = m.data();
    g.count = count.data();
    g.entropy_coef = 0.05f;
    g.old_log_prob = clipped ? o.data() : nullptr;
    g.d_head = dh.data();
    g.stats = stats.data();
    g.stat_columns = clipped ? kStatColumnsClipped : kStatColumns;
    device->nn().gaussian_loss_grad(g);
    const auto grad = dh.to_host();
    for (int64_t i = 0; i < rows; ++i) {
      const std::vector<double> z(head.begin() + i * 2 * d, head.begin() + (i + 1) * 2 * d);
      const std::vector<double> ai(acts.begin() + i * d, acts.begin() + (i + 1) * d);
      const double old_d = old[i];
      for (int32_t j = 0; j < 2 * d; ++j) {
        if (mask[i] == 0) {
          ASSERT_EQ(grad[i * 2 * d + j], 0.0f);
          continue;
        }
        const double hh = 1e-6;
        auto up = z;
        auto down = z;
        up[j] += hh;
        down[j] -= hh;
        const auto f = [&](const std::vector<double>& zz) {
          return ref_loss(zz, ai, weights[i], 0.05, 1.0 / c, clipped ? &old_d : nullptr);
        };
        ASSERT_NEAR(grad[i * 2 * d + j], (f(up) - f(down)) / (2 * hh), 1e-5)
            << (clipped ? "clipped " : "") << "row " << i << " output " << j;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, GaussianOpsTest, ::testing::ValuesIn(test::devices()));

// ---- the model with the Gaussian head ---------------------------------------------------------

// The full loss (Gaussian policy term, entropy, value term) of a model as a function of its flat
// parameters in float64, with its gradient where asked.
double gaussian_model_loss(const ModelConfig& c, const std::vector<double>& p,
                           const test::HostRollout& h, const std::vector<float>& actions,
                           const LossConfig& loss, std::vector<double>* grad = nullptr) {
  const MlpConfig pc = c.policy_config();
  const MlpConfig vc = c.value_config();
  const int64_t trunk_n = c.has_trunk() ? c.trunk_config().parameter_count() : 0;
  const double* p_pol = p.data() + trunk_n;
  const double* p_val = p_pol + pc.parameter_count();
  ref::Tape t_trunk, t_pol, t_val;
  const auto obs = to_double(h.obs);
  std::vector<double> feat = obs;
  if (c.has_trunk()) feat = ref::mlp_forward(c.trunk_config(), p.data(), obs, h.rows, &t_trunk);
  const auto z = ref::mlp_forward(pc, p_pol, feat, h.rows, &t_pol);
  const auto v = ref::mlp_forward(vc, p_val, feat, h.rows, &t_val);
  const int32_t d = c.num_actions;
  const double inv = 1.0 / static_cast<double>(h.rows);
  double total = 0;
  std::vector<double> dz(z.size());
  std::vector<double> dv(v.size());
  for (int64_t i = 0; i < h.rows; ++i) {
    const std::vector<double> zi(z.begin() + i * 2 * d, z.begin() + (i + 1) * 2 * d);
    const std::vector<double> ai(actions.begin() + i * d, actions.begin() + (i + 1) * d);
    total += ref_loss(zi, ai, h.weights[i], loss.entropy_coef, inv);
    const double e = v[i] - h.targets[i];
    total += loss.value_coef * e * e * inv;
    dv[i] = 2 * loss.value_coef * e * inv;
    // d log pi / d mu = u / sigma, d log pi / d s = u^2 - 1, dH / ds = 1.
    for (int32_t k = 0; k < d; ++k) {
      const double sigma = std::exp(zi[d + k]);
      const double u = (ai[k] - zi[k]) / sigma;
      dz[i * 2 * d + k] = -h.weights[i] * u / sigma * inv;
      dz[i * 2 * d + d + k] = -(h.weights[i] * (u * u - 1) + loss.entropy_coef) * inv;
    }
  }
  if (grad != nullptr) {
    grad->assign(p.size(), 0.0);
    auto d_feat = ref::mlp_backward(pc, p_pol, feat, h.rows, t_pol, dz, grad->data() + trunk_n);
    const auto dvf = ref::mlp_backward(vc, p_val, feat, h.rows, t_val, dv,
                                       grad->data() + trunk_n + pc.parameter_count());
    for (std::size_t k = 0; k < d_feat.size(); ++k) d_feat[k] += dvf[k];
    if (c.has_trunk()) {
      (void)ref::mlp_backward(c.trunk_config(), p.data(), obs, h.rows, t_trunk, d_feat,
                              grad->data());
    }
  }
  return total;
}

class GaussianModelTest : public ::testing::TestWithParam<std::string> {};

// Every parameter's gradient against the float64 reference (itself checked against central
// differences), for both architectures and both log-std variants, in chunks of 5 rows. With a
// learned log-std vector the log-std units' weights are 0 and get no gradient (they stay 0
// through a step); their biases are the log-stds.
TEST_P(GaussianModelTest, LossGradientMatchesFloat64AndTheLogStdVectorTakesNoInput) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  for (const Architecture arch : {Architecture::kSeparate, Architecture::kActorCritic}) {
    for (const bool state_std : {false, true}) {
      SCOPED_TRACE(std::string(arch == Architecture::kSeparate ? "separate" : "actor-critic") +
                   (state_std ? ", state-dependent log-std" : ", learned log-std"));
      const int32_t d = 2;
      const ModelConfig config = test::small(arch).with_gaussian_head(d, state_std, -0.4f);
      ModelOptions o;
      o.seed = 4;
      o.chunk_rows = 5;
      PolicyValueModel model(*device, config, o);
      test::HostRollout h = test::HostRollout::make(17, 4, 2, 321, true, false);
      const auto actions = random_vec(static_cast<std::size_t>(h.rows * d), 55, -2.0f, 2.0f);
      test::DeviceRollout dr(*device, h);
      Buffer<float> a(*device, actions.size());
      a.from_host(actions);
      dr.view.actions = nullptr;
      dr.view.continuous_actions = a.data();
      const LossConfig loss{0.03f, 0.5f};
      model.accumulate_gradients(dr.view, loss);
      const auto g = model.get_gradients();
      const auto p = to_double(model.get_parameters());

      // Where the log-std units sit: the last layer of the policy network.
      const MlpConfig pc = config.policy_config();
      int64_t last_w = model.policy_offset();
      for (int32_t l = 0; l + 1 < pc.layers(); ++l) {
        last_w += static_cast<int64_t>(pc.sizes[l]) * pc.sizes[l + 1] + pc.sizes[l + 1];
      }
      const int32_t in = pc.sizes[pc.layers() - 1];
      const int64_t pinned_begin = last_w + static_cast<int64_t>(d) * in;
      const int64_t pinned_end = last_w + static_cast<int64_t>(2 * d) * in;
      const int64_t log_std_bias = last_w + static_cast<int64_t>(2 * d) * in + d;
      for (int32_t k = 0; k < d; ++k) EXPECT_EQ(p[log_std_bias + k], -0.4f);

      std::vector<double> g_ref;
      gaussian_model_loss(config, p, h, actions, loss, &g_ref);
      std::vector<int64_t> some;
      for (int64_t i = 0; i < model.parameter_count(); i += 7) some.push_back(i);
      for (int64_t i = pinned_begin; i < pinned_end; ++i) some.push_back(i);
      for (int32_t k = 0; k < d; ++k) some.push_back(log_std_bias + k);
      const auto fd = ref::finite_difference(
          [&](const std::vector<double>& pp) {
            return gaussian_model_loss(config, pp, h, actions, loss);
          },
          p, some);
      double scale = 1e-3;
      for (const double v : fd) scale = std::max(scale, std::abs(v));
      for (std::size_t k = 0; k < some.size(); ++k) {
        ASSERT_NEAR(g_ref[some[k]], fd[k], 1e-5 * scale) << "reference, parameter " << some[k];
      }
      for (int64_t i = 0; i < model.parameter_count(); ++i) {
        const bool pinned = !state_std && i >= pinned_begin && i < pinned_end;
        if (pinned) {
          ASSERT_EQ(p[i], 0.0) << "pinned weight " << i;
          ASSERT_EQ(g[i], 0.0f) << "pinned weight " << i;
        } else {
          ASSERT_NEAR(g[i], g_ref[i], 1e-4 * scale) << "parameter " << i;
        }
      }
      model.step();
      const auto after = model.get_parameters();
      for (int64_t i = pinned_begin; i < pinned_end && !state_std; ++i) ASSERT_EQ(after[i], 0.0f);
      EXPECT_NE(after[log_std_bias], -0.4f);  // the log-std itself learns
    }
  }
}

// Acting samples the Gaussian of the network's outputs, as the element function does.
TEST_P(GaussianModelTest, ActContinuousSamplesTheHead) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const ModelConfig config = ModelConfig::actor_critic(4, 2, 8).with_gaussian_head(1, false, -0.5f);
  ModelOptions o;
  o.seed = 6;
  PolicyValueModel model(*device, config, o);
  const int64_t n = 100;
  const auto obs_h = random_vec(static_cast<std::size_t>(4 * n), 3, -1.0f, 1.0f);
  Buffer<float> obs(*device, obs_h.size()), actions(*device, n), lp(*device, n), v(*device, n),
      head(*device, 2 * n);
  obs.from_host(obs_h);
  const ConstMatrix x{obs.data(), n, 4};
  model.act_continuous(x, 9, actions.data(), lp.data(), v.data());
  model.logits(x, head.data());
  const auto a = actions.to_host();
  const auto l = lp.to_host();
  const auto z = head.to_host();
  for (int64_t i = 0; i < n; ++i) {
    float ea = 0;
    float elp = 0;
    gaussian_sample_row(&z[2 * i], 1, 6, static_cast<uint32_t>(i), 9, &ea, &elp, nullptr);
    ASSERT_EQ(a[i], ea) << "row " << i;
    ASSERT_EQ(l[i], elp) << "row " << i;
    ASSERT_EQ(z[2 * i + 1], -0.5f);  // the learned log-std takes no input
  }
  EXPECT_THROW(model.act(x, 0, nullptr), Error);
  Buffer<int32_t> discrete(*device, n);
  EXPECT_THROW(model.act(x, 0, discrete.data()), Error);
  EXPECT_THROW(model.probabilities(x, head.data()), Error);
}

INSTANTIATE_TEST_SUITE_P(Devices, GaussianModelTest, ::testing::ValuesIn(test::devices()));

// ---- training -----------------------------------------------------------------------------------

TrainConfig continuous(Algorithm a) {
  TrainConfig c = TrainConfig::defaults(a, DevicePlan{});
  c.actions = ActionSpace::kContinuous;
  c.envs = 8;
  c.n_steps = a == Algorithm::kReinforce ? 0 : 8;
  c.seed = 3;
  if (a == Algorithm::kPpo) c.apply_ppo_recipe({"n_steps"});
  return c;
}

class ContinuousTrainerTest : public ::testing::TestWithParam<std::string> {};

// Every policy-gradient algorithm trains on continuous CartPole with finite losses, and resumes
// from a checkpoint to the same numbers as an uninterrupted run.
TEST_P(ContinuousTrainerTest, EveryPolicyGradientAlgorithmTrainsAndResumesExactly) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const auto dir = std::filesystem::temp_directory_path() / ("bp_cont_" + GetParam());
  std::filesystem::create_directories(dir);
  for (const Algorithm a :
       {Algorithm::kReinforce, Algorithm::kBaseline, Algorithm::kA2C, Algorithm::kPpo}) {
    SCOPED_TRACE(to_string(a));
    TrainConfig c = continuous(a);
    if (a == Algorithm::kReinforce || a == Algorithm::kBaseline) c.env.max_episode_steps = 40;
    Trainer t(*device, c);
    for (int u = 0; u < 2; ++u) ASSERT_TRUE(t.update().finite);
    const auto path = (dir / (to_string(a) + ".bin")).string();
    t.save_checkpoint(path);
    std::vector<double> straight;
    for (int u = 0; u < 2; ++u) {
      const UpdateRecord r = t.update();
      ASSERT_TRUE(r.finite);
      straight.push_back(r.loss.policy_loss);
      straight.push_back(r.loss.entropy);
      straight.push_back(r.recent.return_sum);
    }
    Trainer resumed(*device, c);
    resumed.restore_checkpoint(path);
    std::vector<double> again;
    for (int u = 0; u < 2; ++u) {
      const UpdateRecord r = resumed.update();
      again.push_back(r.loss.policy_loss);
      again.push_back(r.loss.entropy);
      again.push_back(r.recent.return_sum);
    }
    EXPECT_EQ(straight, again);
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Devices, ContinuousTrainerTest, ::testing::ValuesIn(test::devices()));

// PPO with the Gaussian head learns continuous CartPole on the CPU: a mean return of 475 within
// a CI-sized budget (EXPERIMENTS.md has the full runs).
TEST(ContinuousTrainer, PpoLearnsContinuousCartPoleOnTheCpu) {
  auto cpu = test::device_or_skip("cpu", 1);  // ctest runs other tests beside this one
  TrainConfig c = TrainConfig::defaults(Algorithm::kPpo, cpu->plan());
  c.actions = ActionSpace::kContinuous;
  c.seed = 1;
  Trainer t(*cpu, c);
  int64_t solved_at = -1;
  while (t.env_steps() < 1'500'000 && solved_at < 0) {
    const UpdateRecord r = t.update();
    ASSERT_TRUE(r.finite) << "update " << r.update;
    if (r.recent.episodes >= 100 && r.recent.return_sum / r.recent.episodes >= 475.0) {
      solved_at = r.env_steps;
    }
  }
  EXPECT_GT(solved_at, 0) << "continuous PPO did not reach 475 within 1.5M env steps";
  std::printf("continuous PPO solved in %lld env steps\n", static_cast<long long>(solved_at));
}

}  // namespace
}  // namespace batchpole
