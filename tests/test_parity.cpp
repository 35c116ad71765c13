// `batchpole compare`'s checks as tests: environment parity bit for bit, network parity within
// the stated tolerances (ParityTolerance), training side by side. Each pair of devices that
// exists here runs: one CPU thread against two always, the CPU against the GPU where there is
// one (the pair skips otherwise).
#include "batchpole/run/parity.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

struct Pair {
  std::string name;
  std::unique_ptr<Device> a, b;
};

class ParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  // "cpu-threads": 1 thread against 2; "cpu-gpu": the CPU against the GPU.
  Pair pair() {
    Pair p;
    p.name = GetParam();
    if (p.name == "cpu-gpu") {
      p.b = test::device_or_skip("cuda");
      if (!p.b) return p;
      p.a = test::device_or_skip("cpu");
    } else {
      p.a = test::device_or_skip("cpu", 1);
      p.b = test::device_or_skip("cpu", 2);
    }
    return p;
  }
};

#define BP_PAIR_OR_SKIP(var) \
  Pair var = pair();         \
  if (!(var).b) GTEST_SKIP() << "no CUDA device here for " << (var).name

TEST_P(ParityTest, EnvironmentsAreBitIdentical) {
  BP_PAIR_OR_SKIP(p);
  for (const Precision precision : {Precision::kF32, Precision::kF64}) {
    // Enough envs for the CPU's parallel loops, enough steps for thousands of resets.
    const EnvParity r = compare_env(*p.a, *p.b, 9000, 300, 17, precision);
    EXPECT_TRUE(r.equal()) << to_string(precision) << ": " << r.mismatches << " mismatches"
                           << (r.first ? ", first " + r.first->field + " at step " +
                                             std::to_string(r.first->step) + " env " +
                                             std::to_string(r.first->env)
                                       : std::string());
    EXPECT_GT(r.episodes_ended, 1000) << to_string(precision);
  }
}

TEST_P(ParityTest, NetworksAgreeWithinTolerance) {
  BP_PAIR_OR_SKIP(p);
  for (const Architecture arch : {Architecture::kActorCritic, Architecture::kSeparate}) {
    const NetworkParity r = compare_network(*p.a, *p.b, 2024, arch, 4096);
    EXPECT_TRUE(r.within()) << r.model;
    for (const NetworkCheck& c : r.checks) {
      EXPECT_TRUE(c.within) << r.model << ": " << c.name << " measure " << c.measure << " > "
                            << c.tolerance << " (" << c.rule << ")";
    }
  }
}

// Training is reported, not judged: on two CPU thread counts it is the same bit for bit (the
// shards are summed in a fixed order); across devices it agrees until the first sampled action
// that rounding turns the other way.
TEST_P(ParityTest, TrainingSideBySide) {
  BP_PAIR_OR_SKIP(p);
  for (const Algorithm algo : {Algorithm::kReinforce, Algorithm::kBaseline, Algorithm::kA2C}) {
    const TrainingComparison c = compare_training(*p.a, *p.b, algo, 16, 6, 3);
    ASSERT_EQ(c.a.size(), 6U);
    ASSERT_EQ(c.b.size(), 6U);
    if (p.name == "cpu-threads") {
      EXPECT_FALSE(c.first_divergence)
          << to_string(algo) << " diverged at update " << *c.first_divergence + 1;
      EXPECT_EQ(c.max_policy_loss_diff, 0.0) << to_string(algo);
    }
    EXPECT_EQ(c.a.front().env_steps, c.b.front().env_steps) << to_string(algo);
  }
}

// A difference the checks must catch: a NaN anywhere fails every tolerance.
TEST(Parity, DiffCountsNaNAsInfinite) {
  const std::vector<float> a = {1.0f, 2.0f};
  const std::vector<float> b = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  const Diff d = diff(a, b);
  EXPECT_TRUE(std::isinf(d.max_abs));
  EXPECT_EQ(d.above_step_tol, 1);
}

INSTANTIATE_TEST_SUITE_P(Pairs, ParityTest, ::testing::Values("cpu-threads", "cpu-gpu"));

}  // namespace
}  // namespace batchpole
