#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "batchpole/core/portable_math.hpp"
#include "batchpole/env/cartpole.hpp"

namespace batchpole {
namespace {

template <class Real>
double ulp_distance(Real a, Real b) {
  const double u = std::nextafter(static_cast<double>(b), std::numeric_limits<double>::infinity()) -
                   static_cast<double>(b);
  if constexpr (sizeof(Real) == 4) {
    const float uf = std::nextafter(b, std::numeric_limits<float>::infinity()) - b;
    return std::fabs(static_cast<double>(a) - static_cast<double>(b)) / uf;
  }
  return std::fabs(static_cast<double>(a) - static_cast<double>(b)) / u;
}

TEST(PortableMath, DoubleSinCosWithinTwoUlpOfLibm) {
  double worst = 0.0;
  for (int i = -200000; i <= 200000; ++i) {
    const double x = i * 1.7e-5 * 3.0;  // [-10.2, 10.2], the range CartPole's theta can reach
    double s = 0.0;
    double c = 0.0;
    portable_sincos(x, &s, &c);
    worst = std::max({worst, ulp_distance(s, std::sin(x)), ulp_distance(c, std::cos(x))});
  }
  EXPECT_LE(worst, 2.0);
}

TEST(PortableMath, FloatSinCosWithinTwoUlpOfDoubleReference) {
  double worst = 0.0;
  for (int i = -100000; i <= 100000; ++i) {
    const float x = static_cast<float>(i) * 3.2e-5F;  // [-3.2, 3.2]
    float s = 0.0F;
    float c = 0.0F;
    portable_sincos(x, &s, &c);
    const auto rs = static_cast<float>(std::sin(static_cast<double>(x)));
    const auto rc = static_cast<float>(std::cos(static_cast<double>(x)));
    worst = std::max({worst, ulp_distance(s, rs), ulp_distance(c, rc)});
  }
  EXPECT_LE(worst, 2.0);
}

TEST(PortableMath, QuadrantsAndSymmetry) {
  for (double x : {0.0, 0.1, 1.0, 2.0, 3.0, 4.0, 5.5, -1.3, -2.9, 100.0}) {
    double s = 0.0;
    double c = 0.0;
    portable_sincos(x, &s, &c);
    EXPECT_NEAR(s, std::sin(x), 1e-15) << x;
    EXPECT_NEAR(c, std::cos(x), 1e-15) << x;
    double sn = 0.0;
    double cn = 0.0;
    portable_sincos(-x, &sn, &cn);
    EXPECT_EQ(sn, -s) << x;
    EXPECT_EQ(cn, c) << x;
  }
}

// The small-angle sin/cos (no range reduction) gives the general function's bits wherever it
// is used: every float in [-kSmallAngle, kSmallAngle] with a stride through the bit patterns,
// the boundary and zeros, and a dense sample of doubles.
TEST(PortableMath, SmallAngleFormIsBitIdenticalBelowTheLimit) {
  const auto limit_f = static_cast<float>(kSmallAngle);
  const uint32_t top = bit_cast_hd<uint32_t>(limit_f);
  std::vector<float> xs = {0.0F, -0.0F, limit_f, -limit_f, std::nextafter(limit_f, 0.0F)};
  for (uint32_t bits = 0; bits <= top; bits += 97) {
    const float x = bit_cast_hd<float>(bits);
    xs.push_back(x);
    xs.push_back(-x);
  }
  for (const float x : xs) {
    float s = 0, c = 0, ss = 0, cs = 0;
    portable_sincos(x, &s, &c);
    portable_sincos_small(x, &ss, &cs);
    ASSERT_EQ(bit_cast_hd<uint32_t>(ss), bit_cast_hd<uint32_t>(s)) << x;
    ASSERT_EQ(bit_cast_hd<uint32_t>(cs), bit_cast_hd<uint32_t>(c)) << x;
  }
  for (int i = -1000000; i <= 1000000; ++i) {
    const double x = kSmallAngle * i / 1000000.0;
    double s = 0, c = 0, ss = 0, cs = 0;
    portable_sincos(x, &s, &c);
    portable_sincos_small(x, &ss, &cs);
    ASSERT_EQ(bit_cast_hd<uint64_t>(ss), bit_cast_hd<uint64_t>(s)) << x;
    ASSERT_EQ(bit_cast_hd<uint64_t>(cs), bit_cast_hd<uint64_t>(c)) << x;
  }
  // Beyond pi/4 the reduction matters: the small form must not be used there.
  float s = 0, c = 0, ss = 0, cs = 0;
  portable_sincos(2.5F, &s, &c);
  portable_sincos_small(2.5F, &ss, &cs);
  EXPECT_NE(ss, s);
}

TEST(CartPole, RewardModes) {
  EXPECT_EQ(cartpole_reward(RewardMode::kV1, false), 1.0F);
  EXPECT_EQ(cartpole_reward(RewardMode::kV1, true), 1.0F);
  EXPECT_EQ(cartpole_reward(RewardMode::kNotebook, false), 1.0F);
  EXPECT_EQ(cartpole_reward(RewardMode::kNotebook, true), 0.0F);
  EXPECT_EQ(cartpole_reward(RewardMode::kSuttonBarto, false), 0.0F);
  EXPECT_EQ(cartpole_reward(RewardMode::kSuttonBarto, true), -1.0F);
}

TEST(CartPole, PushDirectionMovesTheCart) {
  const auto k = Physics<double>::from(CartPoleParams{});
  CartState<double> left{0, 0, 0, 0};
  CartState<double> right{0, 0, 0, 0};
  cartpole_physics_step(k, false, left);
  cartpole_physics_step(k, true, right);
  EXPECT_LT(left.x_dot, 0.0);
  EXPECT_GT(right.x_dot, 0.0);
  EXPECT_GT(left.theta_dot, 0.0);  // the pole falls away from the push
  EXPECT_LT(right.theta_dot, 0.0);
  EXPECT_EQ(left.x, 0.0);  // explicit Euler: position moves with the old velocity
}

TEST(CartPole, ResetStatesAreInBoundsAndDistinct) {
  const auto a = cartpole_reset_state<double>(1, 0, 0, 0.05);
  const auto b = cartpole_reset_state<double>(1, 0, 1, 0.05);
  const auto c = cartpole_reset_state<double>(1, 1, 0, 0.05);
  const auto f = cartpole_reset_state<float>(1, 0, 0, 0.05);
  for (const auto& s : {a, b, c}) {
    for (double v : {s.x, s.x_dot, s.theta, s.theta_dot}) {
      EXPECT_GE(v, -0.05);
      EXPECT_LT(v, 0.05);
    }
  }
  EXPECT_NE(a.x, b.x);
  EXPECT_NE(a.x, c.x);
  EXPECT_EQ(f.x, static_cast<float>(a.x));  // both precisions start from the same point
}

TEST(CartPole, ParamsValidation) {
  CartPoleParams p;
  EXPECT_NO_THROW(p.validate());
  p.tau = -1;
  EXPECT_THROW(p.validate(), Error);
  p = {};
  p.max_episode_steps = -5;
  EXPECT_THROW(p.validate(), Error);
  p = {};
  p.gravity = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(p.validate(), Error);
  EXPECT_THROW(parse_precision("f16"), Error);
  EXPECT_EQ(parse_reward_mode("notebook"), RewardMode::kNotebook);
}

}  // namespace
}  // namespace batchpole
