#include <atomic>
#include <cstring>
#include <limits>

#include "batchpole/device/buffer.hpp"
#include "batchpole/env/env_ops.hpp"
#include "batchpole/env/vec_env.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

std::unique_ptr<Device> cpu(int threads = 0) {
  DeviceOptions o;
  o.device = DeviceRequest::parse("cpu");
  o.threads = threads;
  return make_device(o);
}

std::vector<int32_t> host_random_actions(int64_t n, uint64_t seed, uint64_t step) {
  std::vector<int32_t> a(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) a[i] = bench_action(seed, static_cast<uint32_t>(i), step);
  return a;
}

// Steps `steps` times with the benchmark actions and returns everything observable.
struct Trajectory {
  std::vector<HostStep> outputs;
  EnvState final_state;
};

Trajectory run(Device& b, int64_t n, Precision p, uint64_t seed, int steps,
               const CartPoleParams& params = {}, AutoresetMode mode = AutoresetMode::kSameStep) {
  VecEnv env(b, n, params, p, mode);
  env.reset(seed);
  Trajectory t;
  for (int s = 0; s < steps; ++s) {
    env.step_host(host_random_actions(n, seed, env.steps_taken()));
    t.outputs.push_back(env.fetch());
  }
  t.final_state = env.get_state();
  return t;
}

template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

void expect_same(const HostStep& a, const HostStep& b, int step) {
  EXPECT_TRUE(bitwise_equal(a.obs, b.obs)) << "obs differ at step " << step;
  EXPECT_TRUE(bitwise_equal(a.reward, b.reward)) << "reward differs at step " << step;
  EXPECT_TRUE(bitwise_equal(a.terminated, b.terminated)) << "terminated differs at " << step;
  EXPECT_TRUE(bitwise_equal(a.truncated, b.truncated)) << "truncated differs at " << step;
  EXPECT_TRUE(bitwise_equal(a.final_obs, b.final_obs)) << "final_obs differs at " << step;
  EXPECT_TRUE(bitwise_equal(a.final_return, b.final_return)) << "final_return at " << step;
  EXPECT_TRUE(bitwise_equal(a.final_length, b.final_length)) << "final_length at " << step;
}

TEST(VecEnv, ResetObservationsInBoundsAndSeeded) {
  auto b = cpu();
  VecEnv env(*b, 1000);
  env.reset(42);
  const auto first = env.fetch().obs;
  for (float v : first) {
    EXPECT_GE(v, -0.05F);
    EXPECT_LT(v, 0.05F);
  }
  env.reset(42);
  EXPECT_EQ(env.fetch().obs, first);
  env.reset(43);
  EXPECT_NE(env.fetch().obs, first);
  // Every env draws its own start state.
  EXPECT_NE(first[0], first[4]);
}

TEST(VecEnv, SameSeedSameTrajectoryOtherSeedDifferent) {
  auto b = cpu();
  const auto a1 = run(*b, 64, Precision::kF32, 7, 100);
  const auto a2 = run(*b, 64, Precision::kF32, 7, 100);
  const auto c = run(*b, 64, Precision::kF32, 8, 100);
  for (int s = 0; s < 100; ++s) expect_same(a1.outputs[s], a2.outputs[s], s);
  EXPECT_NE(a1.outputs[50].obs, c.outputs[50].obs);
}

TEST(VecEnv, EpisodeStatisticsAcrossResets) {
  auto b = cpu();
  CartPoleParams p;
  p.max_episode_steps = 30;
  VecEnv env(*b, 256, p);
  env.reset(3);
  std::vector<int32_t> len(256, 0);
  int ended = 0;
  int truncated = 0;
  for (int s = 0; s < 300; ++s) {
    env.step_host(host_random_actions(256, 3, env.steps_taken()));
    const HostStep out = env.fetch();
    for (int i = 0; i < 256; ++i) {
      len[i] += 1;
      const bool done = out.terminated[i] != 0 || out.truncated[i] != 0;
      ASSERT_EQ(out.truncated[i] != 0, len[i] == 30) << "env " << i << " step " << s;
      ASSERT_EQ(out.reward[i], 1.0F);
      if (done) {
        ++ended;
        truncated += out.truncated[i];
        ASSERT_EQ(out.final_length[i], len[i]);
        ASSERT_EQ(out.final_return[i], static_cast<float>(len[i]));  // v1: 1 per step
        len[i] = 0;
      }
    }
  }
  EXPECT_GT(ended, 1000);
  EXPECT_GT(truncated, 0);
  const EnvState st = env.get_state();
  for (int i = 0; i < 256; ++i) EXPECT_EQ(st.length[i], len[i]);
}

TEST(VecEnv, NotebookAndSuttonBartoRewards) {
  auto b = cpu();
  for (RewardMode mode : {RewardMode::kNotebook, RewardMode::kSuttonBarto}) {
    CartPoleParams p;
    p.reward_mode = mode;
    const auto t = run(*b, 128, Precision::kF32, 1, 60, p);
    int terminal = 0;
    for (const auto& out : t.outputs) {
      for (std::size_t i = 0; i < out.reward.size(); ++i) {
        const bool term = out.terminated[i] != 0;
        terminal += term;
        const float want = cartpole_reward(mode, term);
        ASSERT_EQ(out.reward[i], want);
      }
    }
    EXPECT_GT(terminal, 50);
  }
}

TEST(VecEnv, ResultsDoNotDependOnThreadCount) {
  // Large enough to run multi-threaded (the CPU goes parallel from 8192 envs).
  auto one = cpu(1);
  auto two = cpu(2);
  for (Precision p : {Precision::kF32, Precision::kF64}) {
    const auto a = run(*one, 20000, p, 11, 40);
    const auto c = run(*two, 20000, p, 11, 40);
    for (int s = 0; s < 40; ++s) expect_same(a.outputs[s], c.outputs[s], s);
    VecEnv e1(*one, 20000, {}, p);
    VecEnv e2(*two, 20000, {}, p);
    e1.reset(5);
    e2.reset(5);
    EXPECT_EQ(e1.run_random(300), e2.run_random(300));
    EXPECT_TRUE(bitwise_equal(e1.fetch().obs, e2.fetch().obs));
  }
}

// The CPU step takes a faster sin/cos for chunks whose angles are all small (the usual case):
// a chunk with large angles (a user's own start states, a wide threshold) must step exactly as
// the element function does.
TEST(VecEnv, LargeAnglesStepAsTheElementFunction) {
  auto b = cpu();
  CartPoleParams params;
  params.theta_threshold = 3.0;  // radians: keep the large angles alive
  for (Precision p : {Precision::kF32, Precision::kF64}) {
    constexpr int64_t kN = 1500;
    VecEnv env(*b, kN, params, p);
    env.reset(3);
    EnvState st = env.get_state();
    for (int64_t i = 0; i < kN; ++i) {
      // Chunks of 512: the first all large, the second mixed, the third all small.
      const double big = -2.8 + 5.6 * static_cast<double>(i % 97) / 96.0;
      if (i < 512 || (i < 1024 && i % 3 == 0)) st.theta[i] = big;
    }
    env.set_state(st);
    const auto actions = host_random_actions(kN, 3, 0);
    env.step_host(actions);
    const EnvState got = env.get_state();
    const auto out = env.fetch();
    int compared = 0;
    for (int64_t i = 0; i < kN; ++i) {
      if (out.terminated[i] != 0 || out.truncated[i] != 0) continue;
      if (p == Precision::kF32) {
        CartState<float> s{static_cast<float>(st.x[i]), static_cast<float>(st.x_dot[i]),
                           static_cast<float>(st.theta[i]), static_cast<float>(st.theta_dot[i])};
        cartpole_physics_step(Physics<float>::from(params), actions[i] == 1, s);
        ASSERT_EQ(static_cast<float>(got.theta[i]), s.theta) << i;
        ASSERT_EQ(static_cast<float>(got.x_dot[i]), s.x_dot) << i;
      } else {
        CartState<double> s{st.x[i], st.x_dot[i], st.theta[i], st.theta_dot[i]};
        cartpole_physics_step(Physics<double>::from(params), actions[i] == 1, s);
        ASSERT_EQ(got.theta[i], s.theta) << i;
        ASSERT_EQ(got.x_dot[i], s.x_dot) << i;
      }
      ++compared;
    }
    EXPECT_GT(compared, kN * 9 / 10);
  }
}

// run_tasks: every task once, on a worker below threads(), and the first exception of a task
// comes back to the caller (after the region, not out of an OpenMP thread).
TEST(Device, RunTasksRunsEveryTaskOnceAndRethrows) {
  for (const int threads : {1, 2, 3}) {
    auto b = cpu(threads);
    std::vector<std::atomic<int>> runs(1000);
    std::atomic<bool> bad_worker{false};
    b->run_tasks(1000, [&](int64_t task, int worker) {
      runs[static_cast<std::size_t>(task)].fetch_add(1);
      if (worker < 0 || worker >= b->threads()) bad_worker = true;
    });
    for (std::size_t t = 0; t < runs.size(); ++t) ASSERT_EQ(runs[t].load(), 1) << t;
    EXPECT_FALSE(bad_worker.load());
    try {
      b->run_tasks(50, [&](int64_t task, int) {
        if (task == 7) throw Error(Error::Kind::kInvalidArgument, "task 7 failed");
      });
      ADD_FAILURE() << "no exception from a failing task (" << threads << " threads)";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("task 7 failed"), std::string::npos) << e.what();
    }
    b->run_tasks(0, [&](int64_t, int) { ADD_FAILURE() << "a task of zero ran"; });
  }
}

// The fused random-action path leaves the envs exactly where step() with the same actions
// does, and the CPU's chunked form equals env_run_random, the per-env loop the GPU runs.
TEST(VecEnv, RunRandomEqualsSteppingAndTheElementLoop) {
  auto b = cpu();
  for (Precision p : {Precision::kF32, Precision::kF64}) {
    constexpr int64_t kN = 700;  // not a multiple of the CPU chunk
    constexpr int kSteps = 300;  // crosses several 128-step action draws
    VecEnv fused(*b, kN, {}, p);
    VecEnv stepped(*b, kN, {}, p);
    fused.reset(9);
    stepped.reset(9);
    stepped.step_host(host_random_actions(kN, 9, 0));
    fused.run_random(1);  // unaligned start
    const uint64_t ended = fused.run_random(kSteps);
    uint64_t ended_stepped = 0;
    for (int s = 0; s < kSteps; ++s) {
      stepped.step_host(host_random_actions(kN, 9, stepped.steps_taken()));
      const auto out = stepped.fetch();
      for (int64_t i = 0; i < kN; ++i) ended_stepped += out.terminated[i] | out.truncated[i];
    }
    EXPECT_EQ(ended, ended_stepped);
    const EnvState a = fused.get_state();
    const EnvState c = stepped.get_state();
    EXPECT_EQ(a.x, c.x);
    EXPECT_EQ(a.theta_dot, c.theta_dot);
    EXPECT_EQ(a.length, c.length);
    EXPECT_EQ(a.episode, c.episode);
    EXPECT_EQ(a.ret, c.ret);
    EXPECT_EQ(fused.fetch().obs, stepped.fetch().obs);
  }
  // Element loop reference.
  VecEnv fused(*b, 300, {}, Precision::kF32);
  fused.reset(4);
  fused.run_random(257);
  const EnvState got = fused.get_state();
  VecEnv ref(*b, 300, {}, Precision::kF32);
  ref.reset(4);
  EnvState st = ref.get_state();
  const auto k = Physics<float>::from(CartPoleParams{});
  EnvConfig<float> c{k, RewardMode::kV1, 500, 0.05, 4};
  std::vector<float> x(st.x.begin(), st.x.end()), xd(st.x_dot.begin(), st.x_dot.end()),
      th(st.theta.begin(), st.theta.end()), thd(st.theta_dot.begin(), st.theta_dot.end());
  std::vector<float> obs(4 * 300), scratch(300);
  std::vector<int32_t> iscratch(300);
  std::vector<uint8_t> flags(300);
  EnvArrays<float> a{x.data(),         xd.data(),      th.data(),         thd.data(),
                     st.length.data(), st.ret.data(),  st.episode.data(), obs.data(),
                     scratch.data(),   flags.data(),   flags.data(),      obs.data(),
                     scratch.data(),   iscratch.data()};
  for (int64_t i = 0; i < 300; ++i) env_run_random(c, a, i, 0, 257);
  for (int64_t i = 0; i < 300; ++i) {
    ASSERT_EQ(x[i], static_cast<float>(got.x[i])) << i;
    ASSERT_EQ(thd[i], static_cast<float>(got.theta_dot[i])) << i;
    ASSERT_EQ(st.episode[i], got.episode[i]) << i;
    ASSERT_EQ(st.length[i], got.length[i]) << i;
  }
}

TEST(VecEnv, GetSetStateRoundTripAndValidation) {
  auto b = cpu();
  VecEnv env(*b, 8, {}, Precision::kF64);
  env.reset(1);
  env.step_host(std::vector<int32_t>(8, 1));
  EnvState st = env.get_state();
  st.x[3] = 1.25;
  st.length[3] = 17;
  env.set_state(st);
  const EnvState back = env.get_state();
  EXPECT_EQ(back.x[3], 1.25);
  EXPECT_EQ(back.length[3], 17);
  EXPECT_EQ(env.fetch().obs[12], 1.25F);
  st.length[2] = 500;  // an episode cannot already be at the time limit
  EXPECT_THROW(env.set_state(st), Error);
  st.length[2] = 0;
  st.theta[1] = std::numeric_limits<double>::infinity();
  EXPECT_THROW(env.set_state(st), Error);
  st.theta[1] = 0;
  st.x.pop_back();
  EXPECT_THROW(env.set_state(st), Error);
}

TEST(VecEnv, BadInputIsRefusedWithClearErrors) {
  auto b = cpu();
  EXPECT_THROW(VecEnv(*b, 0), Error);
  EXPECT_THROW(VecEnv(*b, -5), Error);
  try {
    VecEnv too_big(*b, int64_t{2000000000}, {}, Precision::kF64);
    FAIL() << "2e9 envs should not fit in this machine's memory";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("bytes"), std::string::npos) << e.what();
  }
  VecEnv env(*b, 4);
  env.reset(2);
  const EnvState before = env.get_state();
  try {
    env.step_host(std::vector<int32_t>{0, 1, 2, 0});
    FAIL() << "action 2 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("env 2"), std::string::npos) << e.what();
  }
  EXPECT_EQ(env.get_state().x, before.x);  // nothing changed
  EXPECT_EQ(env.steps_taken(), 0U);
  EXPECT_THROW(env.step_host(std::vector<int32_t>{0, 1}), Error);
  EXPECT_THROW(DeviceRequest::parse("tpu"), Error);
  EXPECT_THROW(env.run_random(-1), Error);
}

// ---- autoreset modes ------------------------------------------------------------------------

// The CPU's two passes (vectorised physics, then the ended envs) against env_step, the element
// function the GPU runs per env, in every mode, over more than one chunk of envs.
TEST(VecEnv, AutoresetModesStepAsTheElementFunction) {
  auto b = cpu();
  constexpr int64_t kN = 1100;
  constexpr int kSteps = 300;
  for (const AutoresetMode mode :
       {AutoresetMode::kSameStep, AutoresetMode::kNextStep, AutoresetMode::kDisabled}) {
    SCOPED_TRACE(to_string(mode));
    CartPoleParams params;
    params.max_episode_steps = 60;  // truncations too
    VecEnv env(*b, kN, params, Precision::kF32, mode);
    env.reset(8);
    EnvState st = env.get_state();
    std::vector<float> x(st.x.begin(), st.x.end()), xd(st.x_dot.begin(), st.x_dot.end()),
        th(st.theta.begin(), st.theta.end()), thd(st.theta_dot.begin(), st.theta_dot.end());
    std::vector<float> obs(4 * kN), reward(kN), final_obs(4 * kN), final_return(kN);
    std::vector<int32_t> final_length(kN);
    std::vector<uint8_t> term(kN), trunc(kN), pending(kN, 0);
    const EnvArrays<float> a{x.data(),
                             xd.data(),
                             th.data(),
                             thd.data(),
                             st.length.data(),
                             st.ret.data(),
                             st.episode.data(),
                             obs.data(),
                             reward.data(),
                             term.data(),
                             trunc.data(),
                             final_obs.data(),
                             final_return.data(),
                             final_length.data(),
                             0,
                             pending.data()};
    const EnvConfig<float> c{Physics<float>::from(params),
                             params.reward_mode,
                             params.max_episode_steps,
                             params.reset_bound,
                             8,
                             mode};
    int64_t ends = 0;
    for (int t = 0; t < kSteps; ++t) {
      const auto actions = host_random_actions(kN, 8, static_cast<uint64_t>(t));
      env.step_host(actions);
      for (int64_t i = 0; i < kN; ++i) env_step(c, a, i, actions[i]);
      const HostStep got = env.fetch();
      ASSERT_TRUE(bitwise_equal(got.obs, obs)) << "step " << t;
      ASSERT_TRUE(bitwise_equal(got.reward, reward)) << "step " << t;
      ASSERT_TRUE(bitwise_equal(got.terminated, term)) << "step " << t;
      ASSERT_TRUE(bitwise_equal(got.truncated, trunc)) << "step " << t;
      for (int64_t i = 0; i < kN; ++i) {
        if ((term[i] | trunc[i]) != 0) {
          ++ends;
          ASSERT_EQ(got.final_return[i], final_return[i]) << "step " << t << " env " << i;
          ASSERT_EQ(got.final_length[i], final_length[i]) << "step " << t << " env " << i;
          if (mode == AutoresetMode::kSameStep) {
            ASSERT_EQ(std::memcmp(&got.final_obs[4 * i], &final_obs[4 * i], 16), 0);
          }
        }
      }
    }
    EXPECT_GT(ends, 1000);
    const EnvState end = env.get_state();
    EXPECT_EQ(end.episode, st.episode);
    EXPECT_EQ(end.length, st.length);
    EXPECT_EQ(end.x, std::vector<double>(x.begin(), x.end()));
  }
}

// One episode end in each mode, from a state that fails on the next step.
TEST(VecEnv, AutoresetModesAtAnEpisodesEnd) {
  auto b = cpu();
  const auto at_edge = [](VecEnv& env) {
    env.reset(5);
    EnvState s = env.get_state();
    s.theta = {0.2, 0.0};
    s.theta_dot = {1.0, 0.0};
    env.set_state(s);
  };
  VecEnv same(*b, 2, {}, Precision::kF64, AutoresetMode::kSameStep);
  VecEnv next(*b, 2, {}, Precision::kF64, AutoresetMode::kNextStep);
  VecEnv none(*b, 2, {}, Precision::kF64, AutoresetMode::kDisabled);
  for (VecEnv* env : {&same, &next, &none}) at_edge(*env);
  const std::vector<int32_t> push{1, 1};
  same.step_host(push);
  next.step_host(push);
  none.step_host(push);
  const HostStep s1 = same.fetch();
  const HostStep n1 = next.fetch();
  const HostStep d1 = none.fetch();
  for (const HostStep* h : {&s1, &n1, &d1}) {
    EXPECT_EQ(h->terminated[0], 1);
    EXPECT_EQ(h->terminated[1], 0);
    EXPECT_EQ(h->final_return[0], 1.0F);
    EXPECT_EQ(h->final_length[0], 1);
  }
  // NEXT_STEP and DISABLED return the last observation; SAME_STEP keeps it in final_obs.
  EXPECT_TRUE(std::equal(n1.obs.begin(), n1.obs.begin() + 4, s1.final_obs.begin()));
  EXPECT_EQ(n1.obs, d1.obs);
  EXPECT_NE(s1.obs, n1.obs);
  same.step_host(push);
  next.step_host(push);
  none.step_host(push);
  const HostStep n2 = next.fetch();
  const HostStep d2 = none.fetch();
  // NEXT_STEP begins the episode SAME_STEP began a step earlier: same draw, reward 0, no flags.
  EXPECT_TRUE(std::equal(n2.obs.begin(), n2.obs.begin() + 4, s1.obs.begin()));
  EXPECT_EQ(n2.reward[0], 0.0F);
  EXPECT_EQ(n2.terminated[0] | n2.truncated[0], 0);
  EXPECT_EQ(next.get_state().length[0], 0);
  EXPECT_EQ(next.get_state().episode, same.get_state().episode);
  EXPECT_EQ(next.get_state().length[1], 2);
  // DISABLED steps on from the failed state.
  EXPECT_EQ(d2.terminated[0], 1);
  EXPECT_EQ(none.get_state().length[0], 2);
  EXPECT_EQ(none.get_state().episode[0], 0U);
  // set_state clears a pending NEXT_STEP reset: the next step is a physics step.
  at_edge(next);
  next.step_host(push);
  at_edge(next);
  next.step_host(push);
  EXPECT_EQ(next.fetch().terminated[0], 1);
  EXPECT_EQ(next.get_state().length[0], 1);
}

TEST(VecEnv, NextEpisodeRestartsTheMaskedEnvs) {
  auto b = cpu();
  VecEnv env(*b, 6, {}, Precision::kF64, AutoresetMode::kNextStep);
  env.reset(3);
  for (int t = 0; t < 20; ++t) env.step_host(host_random_actions(6, 3, t));
  const EnvState before = env.get_state();
  Buffer<uint8_t> mask(*b, 6);
  mask.from_host(std::vector<uint8_t>{0, 1, 0, 0, 1, 0});
  env.next_episode(mask.data());
  const EnvState after = env.get_state();
  const HostStep h = env.fetch();
  VecEnv fresh(*b, 6, {}, Precision::kF64);
  fresh.reset(3);
  EnvState drawn = fresh.get_state();
  for (int64_t i = 0; i < 6; ++i) {
    const bool masked = i == 1 || i == 4;
    EXPECT_EQ(after.episode[i], before.episode[i] + (masked ? 1U : 0U)) << i;
    EXPECT_EQ(after.length[i], masked ? 0 : before.length[i]) << i;
    if (!masked) {
      EXPECT_EQ(after.x[i], before.x[i]) << i;
    }
    EXPECT_EQ(h.obs[4 * i + 2], static_cast<float>(after.theta[i])) << i;
  }
  // Without a mask every env begins its next episode: from the draws of episode 1.
  fresh.next_episode();
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(fresh.get_state().episode[i], 1U);
    EXPECT_NE(fresh.get_state().x[i], drawn.x[i]);
  }
}

// ---- CPU == GPU, bit for bit ------------------------------------------------------------------

class CpuGpuParity : public ::testing::TestWithParam<Precision> {};

TEST_P(CpuGpuParity, SameSeedSameActionsBitIdentical) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto host = cpu();
  const Precision p = GetParam();
  const auto a = run(*host, 5000, p, 21, 300);
  const auto g = run(*gpu, 5000, p, 21, 300);
  for (int s = 0; s < 300; ++s) expect_same(a.outputs[s], g.outputs[s], s);
  EXPECT_EQ(a.final_state.x, g.final_state.x);
  EXPECT_EQ(a.final_state.episode, g.final_state.episode);
  // The fused path too.
  VecEnv ec(*host, 5000, {}, p);
  VecEnv eg(*gpu, 5000, {}, p);
  ec.reset(3);
  eg.reset(3);
  EXPECT_EQ(ec.run_random(1000), eg.run_random(1000));
  EXPECT_EQ(ec.get_state().theta, eg.get_state().theta);
  EXPECT_TRUE(bitwise_equal(ec.fetch().obs, eg.fetch().obs));
}

TEST_P(CpuGpuParity, AutoresetModesBitIdentical) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto host = cpu();
  const Precision p = GetParam();
  for (const AutoresetMode mode : {AutoresetMode::kNextStep, AutoresetMode::kDisabled}) {
    const auto a = run(*host, 3000, p, 22, 200, {}, mode);
    const auto g = run(*gpu, 3000, p, 22, 200, {}, mode);
    for (int s = 0; s < 200; ++s) expect_same(a.outputs[s], g.outputs[s], s);
    EXPECT_EQ(a.final_state.x, g.final_state.x);
    EXPECT_EQ(a.final_state.episode, g.final_state.episode);
  }
  VecEnv ec(*host, 3000, {}, p, AutoresetMode::kNextStep);
  VecEnv eg(*gpu, 3000, {}, p, AutoresetMode::kNextStep);
  ec.reset(4);
  eg.reset(4);
  std::vector<uint8_t> mask(3000);
  for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = static_cast<uint8_t>(i % 3 == 0);
  Buffer<uint8_t> mc(*host, mask.size());
  Buffer<uint8_t> mg(*gpu, mask.size());
  mc.from_host(mask);
  mg.from_host(mask);
  ec.next_episode(mc.data());
  eg.next_episode(mg.data());
  EXPECT_TRUE(bitwise_equal(ec.fetch().obs, eg.fetch().obs));
  EXPECT_EQ(ec.get_state().episode, eg.get_state().episode);
}

TEST_P(CpuGpuParity, GpuInvalidActionIsReportedAtTheNextSync) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  VecEnv env(*gpu, 4, {}, GetParam());
  env.reset(1);
  env.step_host(std::vector<int32_t>{0, 1, 0, 7});  // steps; env 3 as action 0
  try {
    (void)env.fetch();
    FAIL() << "invalid action not reported";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("env 3"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW((void)env.fetch());  // reported once, then cleared
}

INSTANTIATE_TEST_SUITE_P(Precisions, CpuGpuParity,
                         ::testing::Values(Precision::kF32, Precision::kF64),
                         [](const auto& p) { return to_string(p.param); });

}  // namespace
}  // namespace batchpole
