// Sums in part order (batchpole/run/part_sum.hpp): one part is itself, bit for bit; P parts
// are a left fold in part order, which differs from other orders where rounding says so; the
// statistics combine as their own add() does.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "batchpole/core/common.hpp"
#include "batchpole/run/part_sum.hpp"

namespace batchpole {
namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(PartSum, OnePartIsItselfBitForBit) {
  const std::vector<float> g = {1.5F, -0.0F, 3e-39F, 1e30F, -7.25F};
  EXPECT_TRUE(same_bits(sum_parts(g, 5), g));
}

TEST(PartSum, PartsAddLeftToRightInPartOrder) {
  // Four parts of two floats; column 0 is chosen so that the order of the additions shows:
  // ((1e8 + 1) + -1e8) + 1 = 1 in float, but 1e8 + (1 + (-1e8 + 1)) = 0.
  const std::vector<float> parts = {1e8F, 1.0F, 1.0F, 2.0F, -1e8F, 3.0F, 1.0F, 4.0F};
  const std::vector<float> sum = sum_parts(parts, 2);
  float fold = 1e8F;
  fold += 1.0F;
  fold += -1e8F;
  fold += 1.0F;
  EXPECT_EQ(sum[0], fold);
  EXPECT_EQ(sum[1], 10.0F);
  // Another grouping of the same numbers (what an all-reduce over a tree may do) differs here:
  // the fixed order is what makes R ranks agree with one process.
  const float tree = (1e8F + 1.0F) + (-1e8F + 1.0F);
  EXPECT_NE(sum[0], tree);
}

TEST(PartSum, TwoAndFourPartsAreFoldsOfTheSameNumbers) {
  // Parts 1, 2 and 4 of one batch's per-row gradients: each is the fold of its own parts, so
  // the results may differ between P in the last bits, never between runs with the same P.
  std::vector<float> rows(64);
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = 1.0F / static_cast<float>(i + 3);
  for (const int64_t p : {1, 2, 4}) {
    std::vector<float> parts(static_cast<std::size_t>(p));
    const std::size_t per = rows.size() / static_cast<std::size_t>(p);
    for (std::size_t k = 0; k < parts.size(); ++k) {
      for (std::size_t i = 0; i < per; ++i) parts[k] += rows[k * per + i];
    }
    float want = parts[0];
    for (std::size_t k = 1; k < parts.size(); ++k) want += parts[k];
    const std::vector<float> got = sum_parts(parts, 1);
    EXPECT_EQ(got[0], want) << p << " parts";
    EXPECT_TRUE(same_bits(sum_parts(parts, 1), got)) << "the same parts twice";
  }
}

TEST(PartSum, StatisticsCombineInPartOrder) {
  const std::vector<Moments> m = {{2, 3.0, 5.0}, {1, -1.0, 1.0}, {4, 0.5, 2.25}};
  const Moments s = sum_parts(m);
  EXPECT_EQ(s.count, 7);
  EXPECT_EQ(s.sum, (3.0 + -1.0) + 0.5);
  EXPECT_EQ(s.sum_sq, (5.0 + 1.0) + 2.25);
  EpisodeTally a;
  a.episodes = 2;
  a.return_sum = 30;
  a.return_min = 10;
  a.return_max = 20;
  EpisodeTally b;  // a part where no episode ended
  const EpisodeTally t = sum_parts(std::vector<EpisodeTally>{b, a, b});
  EXPECT_EQ(t.episodes, 2);
  EXPECT_EQ(t.return_min, 10);
  EXPECT_EQ(t.return_max, 20);
}

TEST(PartSum, RefusesPartsThatDoNotDivide) {
  const std::vector<float> g(5);
  EXPECT_THROW((void)sum_parts(g, 2), Error);
  EXPECT_THROW((void)sum_parts(std::span<const float>(), 2), Error);
}

}  // namespace
}  // namespace batchpole
