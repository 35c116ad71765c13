#include <gtest/gtest.h>

#include <set>

#include "batchpole/core/random.hpp"

namespace batchpole {
namespace {

// Known-answer vectors of Random123 (kat_vectors, philox4x32 with 10 rounds): this is the real
// Philox4x32-10, not a look-alike.
TEST(Philox, MatchesRandom123KnownAnswers) {
  struct Kat {
    Philox4x32::Counter ctr;
    Philox4x32::Key key;
    Philox4x32::Counter expected;
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const auto& k : kats) EXPECT_EQ(Philox4x32::generate(k.ctr, k.key), k.expected);
}

TEST(Philox, DrawsDependOnEveryCoordinate) {
  const auto base = philox_draw(7, Stream::kReset, 3, 11);
  EXPECT_EQ(base, philox_draw(7, Stream::kReset, 3, 11));
  EXPECT_NE(base, philox_draw(8, Stream::kReset, 3, 11));
  EXPECT_NE(base, philox_draw(7, Stream::kBenchAction, 3, 11));
  EXPECT_NE(base, philox_draw(7, Stream::kReset, 4, 11));
  EXPECT_NE(base, philox_draw(7, Stream::kReset, 3, 12));
  EXPECT_NE(base, philox_draw(7, Stream::kReset, 3, 11 + (uint64_t{1} << 32)));
}

TEST(Philox, UniformsAreInRangeAndSpread) {
  double sum = 0.0;
  double lo = 1.0;
  double hi = 0.0;
  constexpr int kN = 100000;
  for (int i = 0; i < kN; ++i) {
    const auto r = philox_draw(1, Stream::kReset, static_cast<uint32_t>(i), 0);
    const double u = uniform_double(r[0], r[1]);
    const float f = uniform_float(r[2]);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    ASSERT_GE(f, 0.0F);
    ASSERT_LT(f, 1.0F);
    sum += u;
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  EXPECT_NEAR(sum / kN, 0.5, 0.005);
  EXPECT_LT(lo, 1e-3);
  EXPECT_GT(hi, 1.0 - 1e-3);
}

TEST(BenchAction, IsAFairCoinPerEnvAndStep) {
  int ones = 0;
  std::set<std::pair<int, int>> seen;
  for (uint32_t env = 0; env < 64; ++env) {
    for (uint64_t step = 0; step < 1000; ++step) {
      const int a = bench_action(5, env, step);
      ASSERT_TRUE(a == 0 || a == 1);
      ones += a;
    }
  }
  EXPECT_NEAR(ones / 64000.0, 0.5, 0.01);
  // Steps 127 and 128 come from different draws; both must still be deterministic.
  EXPECT_EQ(bench_action(5, 3, 127), bench_action(5, 3, 127));
  EXPECT_EQ(bench_action(5, 3, 128), bench_action(5, 3, 128));
}

}  // namespace
}  // namespace batchpole
