// Conformance with the real Gymnasium CartPole-v1, from reference data it produced
// (tests/data, copied from shared/conformance; see its README) and, where CI provides it, from a
// live run of the gymnasium package (tests/live_gym_trace.py).
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "batchpole/env/vec_env.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

using test::Csv;

double ulps(double a, double b) {
  if (a == b) return 0.0;
  const double u =
      std::nextafter(std::fabs(b), std::numeric_limits<double>::infinity()) - std::fabs(b);
  return std::fabs(a - b) / u;
}

CartPoleParams params_for(const std::string& file) {
  CartPoleParams p;
  if (file == "transitions_semi_implicit.csv") p.integrator = Integrator::kSemiImplicit;
  if (file == "transitions_theta6deg.csv") p.theta_threshold = 6.0 * 2.0 * M_PI / 360.0;
  return p;
}

struct TransitionCase {
  std::string file;
};

class Transitions : public ::testing::TestWithParam<std::string> {};

// float64: every next state within a few ulp and every flag and observation exact.
TEST_P(Transitions, Float64StepMatchesGymnasium) {
  const std::string file = GetParam();
  const Csv csv = test::load_csv(test::data_path(file));
  ASSERT_GT(csv.rows.size(), 30U);
  const auto k = Physics<double>::from(params_for(file));
  const char* cols[4] = {"x", "x_dot", "theta", "theta_dot"};
  double worst = 0.0;
  std::size_t exact = 0;
  for (std::size_t r = 0; r < csv.rows.size(); ++r) {
    CartState<double> s{csv.num(r, "x"), csv.num(r, "x_dot"), csv.num(r, "theta"),
                        csv.num(r, "theta_dot")};
    const bool term = cartpole_physics_step(k, csv.num(r, "action") == 1.0, s);
    const double got[4] = {s.x, s.x_dot, s.theta, s.theta_dot};
    bool all_exact = true;
    for (int c = 0; c < 4; ++c) {
      const double want = csv.num(r, std::string("n") + cols[c]);
      const double d = ulps(got[c], want);
      worst = std::max(worst, d);
      all_exact = all_exact && d == 0.0;
      EXPECT_EQ(static_cast<float>(got[c]),
                static_cast<float>(csv.num(r, std::string("nobs_") + cols[c])))
          << file << " row " << r << " " << cols[c];
    }
    exact += all_exact ? 1 : 0;
    EXPECT_EQ(term, csv.num(r, "terminated") == 1.0) << file << " row " << r;
    EXPECT_EQ(cartpole_reward(RewardMode::kV1, term), csv.num(r, "reward")) << file << " row " << r;
  }
  EXPECT_LE(worst, 4.0) << file;
  RecordProperty("bit_exact_rows", static_cast<int>(exact));
  std::printf("%s: %zu of %zu rows bit-exact, worst %.1f ulp\n", file.c_str(), exact,
              csv.rows.size(), worst);
}

// float32: within 1e-5 absolute per step; flags exact away from the thresholds.
TEST_P(Transitions, Float32StepWithinTolerance) {
  const std::string file = GetParam();
  const Csv csv = test::load_csv(test::data_path(file));
  const CartPoleParams p = params_for(file);
  const auto k = Physics<float>::from(p);
  for (std::size_t r = 0; r < csv.rows.size(); ++r) {
    CartState<float> s{static_cast<float>(csv.num(r, "x")), static_cast<float>(csv.num(r, "x_dot")),
                       static_cast<float>(csv.num(r, "theta")),
                       static_cast<float>(csv.num(r, "theta_dot"))};
    const bool term = cartpole_physics_step(k, csv.num(r, "action") == 1.0, s);
    EXPECT_NEAR(s.x, csv.num(r, "nx"), 1e-5) << r;
    EXPECT_NEAR(s.x_dot, csv.num(r, "nx_dot"), 1e-5) << r;
    EXPECT_NEAR(s.theta, csv.num(r, "ntheta"), 1e-5) << r;
    EXPECT_NEAR(s.theta_dot, csv.num(r, "ntheta_dot"), 1e-5) << r;
    const double margin = std::min(std::fabs(std::fabs(csv.num(r, "nx")) - p.x_threshold),
                                   std::fabs(std::fabs(csv.num(r, "ntheta")) - p.theta_threshold));
    if (margin > 1e-5) {
      EXPECT_EQ(term, csv.num(r, "terminated") == 1.0) << file << " row " << r;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Gymnasium, Transitions,
                         ::testing::Values("transitions.csv", "transitions_semi_implicit.csv",
                                           "transitions_theta6deg.csv"),
                         [](const auto& p) {
                           std::string n = p.param.substr(0, p.param.size() - 4);
                           for (auto& ch : n) ch = ch == '.' ? '_' : ch;
                           return n;
                         });

// Steps that land exactly on a threshold, one ulp inside, one ulp outside: termination must be
// decided on the float64 state with strict comparisons, through the whole vectorised path.
class DeviceConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(DeviceConformance, EdgeCasesTerminateExactlyAsGymnasium) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const Csv csv = test::load_csv(test::data_path("edge_cases.csv"));
  const auto n = static_cast<int64_t>(csv.rows.size());
  ASSERT_EQ(n, 36);
  VecEnv env(*device, n, CartPoleParams{}, Precision::kF64);
  EnvState st = env.get_state();
  std::vector<int32_t> actions;
  for (std::size_t r = 0; r < csv.rows.size(); ++r) {
    st.x[r] = csv.num(r, "x");
    st.x_dot[r] = csv.num(r, "x_dot");
    st.theta[r] = csv.num(r, "theta");
    st.theta_dot[r] = csv.num(r, "theta_dot");
    actions.push_back(static_cast<int32_t>(csv.num(r, "action")));
  }
  env.set_state(st);
  env.step_host(actions);
  const HostStep out = env.fetch();
  for (std::size_t r = 0; r < csv.rows.size(); ++r) {
    const bool want = csv.num(r, "terminated") == 1.0;
    EXPECT_EQ(out.terminated[r] != 0, want) << csv.rows[r][0] << " row " << r;
    EXPECT_EQ(out.reward[r], 1.0F);
    // The observation of the step: final_obs where the episode ended, obs otherwise.
    const float* o = want ? &out.final_obs[4 * r] : &out.obs[4 * r];
    EXPECT_EQ(o[0], static_cast<float>(csv.num(r, "nobs_x"))) << r;
    EXPECT_EQ(o[2], static_cast<float>(csv.num(r, "nobs_theta"))) << r;
  }
}

// The SAME_STEP vector trace: physics and flags step by step (each step re-anchored on the
// trace's float32 observation, since reset draws come from NumPy's generator, not ours), the
// reset observation in bounds, truncation and final observations where Gymnasium put them.
TEST_P(DeviceConformance, VectorTraceSameStepAutoreset) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const Csv csv = test::load_csv(test::data_path("vector_trace_sync_same_step.csv"));
  constexpr int kEnvs = 4;
  ASSERT_EQ(csv.rows.size() % kEnvs, 0U);
  const std::size_t steps = csv.rows.size() / kEnvs;
  VecEnv env(*device, kEnvs, CartPoleParams{}, Precision::kF64);
  const char* cols[4] = {"obs_x", "obs_x_dot", "obs_theta", "obs_theta_dot"};
  const char* fcols[4] = {"final_obs_x", "final_obs_x_dot", "final_obs_theta",
                          "final_obs_theta_dot"};
  std::vector<int32_t> lengths(kEnvs, 0);
  int episodes_ended = 0;
  int truncations = 0;
  for (std::size_t t = 1; t < steps; ++t) {
    EnvState st = env.get_state();
    std::vector<int32_t> actions(kEnvs);
    for (int e = 0; e < kEnvs; ++e) {
      const std::size_t prev = (t - 1) * kEnvs + e;
      const std::size_t row = t * kEnvs + e;
      ASSERT_EQ(csv.num(row, "env"), e);
      st.x[e] = csv.num(prev, "obs_x");
      st.x_dot[e] = csv.num(prev, "obs_x_dot");
      st.theta[e] = csv.num(prev, "obs_theta");
      st.theta_dot[e] = csv.num(prev, "obs_theta_dot");
      st.length[e] = lengths[e];
      actions[e] = static_cast<int32_t>(csv.num(row, "action"));
    }
    env.set_state(st);
    env.step_host(actions);
    const HostStep out = env.fetch();
    for (int e = 0; e < kEnvs; ++e) {
      const std::size_t row = t * kEnvs + e;
      const bool term = csv.num(row, "terminated") == 1.0;
      const bool trunc = csv.num(row, "truncated") == 1.0;
      ASSERT_EQ(out.terminated[e] != 0, term) << "step " << t << " env " << e;
      ASSERT_EQ(out.truncated[e] != 0, trunc) << "step " << t << " env " << e;
      EXPECT_EQ(out.reward[e], csv.num(row, "reward"));
      lengths[e] += 1;
      if (term || trunc) {
        ++episodes_ended;
        truncations += trunc ? 1 : 0;
        EXPECT_EQ(out.final_length[e], lengths[e]);
        EXPECT_EQ(out.final_return[e], static_cast<float>(lengths[e]));
        for (int c = 0; c < 4; ++c) {
          EXPECT_NEAR(out.final_obs[4 * e + c], csv.num(row, fcols[c]), 1e-5);
          // The returned observation is the next episode's first.
          EXPECT_GE(out.obs[4 * e + c], -0.05F);
          EXPECT_LT(out.obs[4 * e + c], 0.05F);
          EXPECT_GE(csv.num(row, cols[c]), -0.05);
          EXPECT_LT(csv.num(row, cols[c]), 0.05);
        }
        lengths[e] = 0;
      } else {
        for (int c = 0; c < 4; ++c) {
          EXPECT_NEAR(out.obs[4 * e + c], csv.num(row, cols[c]), 1e-5)
              << "step " << t << " env " << e << " " << cols[c];
        }
      }
    }
  }
  EXPECT_GT(episodes_ended, 10);
  std::printf("vector trace: %d episodes ended, %d by truncation\n", episodes_ended, truncations);
}

// A live run of the real gymnasium package, written by tests/live_gym_trace.py (CI runs it;
// BATCHPOLE_LIVE_TRACE names the file). Each row is one step from the exact float64 state.
TEST_P(DeviceConformance, LiveGymnasiumTrace) {
  const char* path = std::getenv("BATCHPOLE_LIVE_TRACE");
  if (path == nullptr || std::string(path).empty()) {
    GTEST_SKIP() << "BATCHPOLE_LIVE_TRACE not set: run tests/live_gym_trace.py (CI does)";
  }
  BP_DEVICE_OR_SKIP(device, GetParam());
  const Csv csv = test::load_csv(path);
  ASSERT_GT(csv.rows.size(), 300U);
  VecEnv env(*device, 1, CartPoleParams{}, Precision::kF64);
  int truncations = 0;
  double worst = 0.0;
  const char* cols[4] = {"x", "x_dot", "theta", "theta_dot"};
  for (std::size_t r = 0; r < csv.rows.size(); ++r) {
    EnvState st = env.get_state();
    st.x[0] = csv.num(r, "x");
    st.x_dot[0] = csv.num(r, "x_dot");
    st.theta[0] = csv.num(r, "theta");
    st.theta_dot[0] = csv.num(r, "theta_dot");
    st.length[0] = static_cast<int32_t>(csv.num(r, "elapsed"));
    env.set_state(st);
    env.step_host(std::vector<int32_t>{static_cast<int32_t>(csv.num(r, "action"))});
    const HostStep out = env.fetch();
    const bool term = csv.num(r, "terminated") == 1.0;
    const bool trunc = csv.num(r, "truncated") == 1.0;
    ASSERT_EQ(out.terminated[0] != 0, term) << "row " << r;
    ASSERT_EQ(out.truncated[0] != 0, trunc) << "row " << r;
    truncations += trunc ? 1 : 0;
    const float* o = (term || trunc) ? &out.final_obs[0] : &out.obs[0];
    for (int c = 0; c < 4; ++c) {
      EXPECT_EQ(o[c], static_cast<float>(csv.num(r, std::string("nobs_") + cols[c])))
          << "row " << r;
    }
    if (!(term || trunc)) {
      const EnvState after = env.get_state();
      const double got[4] = {after.x[0], after.x_dot[0], after.theta[0], after.theta_dot[0]};
      for (int c = 0; c < 4; ++c) {
        worst = std::max(worst, ulps(got[c], csv.num(r, std::string("n") + cols[c])));
      }
    }
  }
  EXPECT_LE(worst, 4.0);
  EXPECT_GE(truncations, 1) << "the live trace should include a truncation at 500 steps";
}

INSTANTIATE_TEST_SUITE_P(Devices, DeviceConformance, ::testing::ValuesIn(test::devices()));

}  // namespace
}  // namespace batchpole
