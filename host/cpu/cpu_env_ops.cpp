// The CPU environment operations: OpenMP loops over the element functions of env_elements.hpp
// (the CUDA kernels call the same ones), vectorised where the per-env work allows.
#include <omp.h>

#include <algorithm>
#include <memory>
#include <type_traits>

#include "batchpole/env/env_ops.hpp"
#include "cpu_device.hpp"

namespace batchpole {

namespace {

// Below this many envs a step is a few microseconds: waking a second thread costs more.
constexpr int64_t kParallelMinEnvs = 8192;
// Envs per chunk: small enough that a chunk's state stays in L1 across the steps of
// run_random, large enough that the vectorised pass dominates the scalar reset pass. Chunks are
// handed out dynamically: on shared cores a thread whose core is busy would otherwise hold up
// the whole step with its static half (results do not depend on which thread runs a chunk).
constexpr int64_t kChunk = 512;

int64_t chunk_count(int64_t n) { return (n + kChunk - 1) / kChunk; }

template <class Real>
void reset_all(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n, int threads) {
  // Every env, active or not: a reset starts all agents afresh.
#pragma omp parallel for schedule(static) num_threads(threads) if (n >= kParallelMinEnvs)
  for (int64_t i = 0; i < n; ++i) env_begin_episode(c, a, i);
}

template <class Real>
void restart_all(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (n >= kParallelMinEnvs)
  for (int64_t i = 0; i < n; ++i) {
    if (env_active(c, i)) env_restart_episode(c, a, i);
  }
}

template <class Real>
void next_episode_all(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n,
                      const uint8_t* mask, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (n >= kParallelMinEnvs)
  for (int64_t i = 0; i < n; ++i) env_next_episode(c, a, i, mask);
}

// The indices j < len with done[j] set, written branch-free (a data-dependent branch per env
// mispredicts on every episode end); returns how many.
int64_t compact_done(const uint8_t* done, int64_t len, int32_t* index) {
  int64_t count = 0;
  for (int64_t j = 0; j < len; ++j) {
    index[count] = static_cast<int32_t>(j);
    count += done[j];
  }
  return count;
}

// The vectorised half of a CPU step over one chunk: env_step_physics, restated over restrict-
// qualified pointers. GCC cannot prove that the EnvArrays pointers do not alias (the uint8_t
// flag stores may alias anything) and then keeps this loop scalar; with restrict parameters it
// vectorises. The element loop is tested against env_step_physics (tests/test_vec_env.cpp).
// Whether every |theta[j]|, j < len, is at most kSmallAngle (NaN is not): then the physics
// pass may take the small-angle sin/cos. While a pole is up its angle is under the threshold
// (12 degrees by default), so this holds on nearly every step.
template <class Real>
bool angles_small(const Real* __restrict theta, int64_t len) {
  int small = 1;
#pragma omp simd reduction(& : small)
  for (int64_t j = 0; j < len; ++j) {
    small &= static_cast<int>(theta[j] <= Real(kSmallAngle)) &
             static_cast<int>(theta[j] >= Real(-kSmallAngle));
  }
  return small != 0;
}

template <bool kOutputs, bool kSmallAngle, class Real, class Action>
void physics_pass_impl(const Physics<Real> k, RewardMode mode, int32_t max_steps, int64_t len,
                       Real* __restrict x, Real* __restrict x_dot, Real* __restrict theta,
                       Real* __restrict theta_dot, int32_t* __restrict length,
                       float* __restrict ret, float* __restrict obs, float* __restrict reward,
                       uint8_t* __restrict terminated, uint8_t* __restrict truncated,
                       const Action* __restrict actions, uint8_t* __restrict done) {
#pragma omp simd
  for (int64_t j = 0; j < len; ++j) {
    CartState<Real> s{x[j], x_dot[j], theta[j], theta_dot[j]};
    const bool term =
        cartpole_physics_step_force<Real, kSmallAngle>(k, action_force(k, actions[j]), s);
    x[j] = s.x;
    x_dot[j] = s.x_dot;
    theta[j] = s.theta;
    theta_dot[j] = s.theta_dot;
    const int32_t l = length[j] + 1;
    const bool trunc = truncates(max_steps, l);
    const float r = cartpole_reward(mode, term);
    length[j] = l;
    ret[j] = ret[j] + r;
    if constexpr (kOutputs) {
      store_obs(obs, j, s);
      reward[j] = r;
      terminated[j] = static_cast<uint8_t>(term);
      truncated[j] = static_cast<uint8_t>(trunc);
    }
    done[j] = static_cast<uint8_t>(term || trunc);
  }
}

template <bool kOutputs, class Real, class... Args>
void physics_pass(const Physics<Real> k, RewardMode mode, int32_t max_steps, int64_t len, Real* x,
                  Real* x_dot, Real* theta, Args... rest) {
  if (angles_small(theta, len)) {
    physics_pass_impl<kOutputs, true>(k, mode, max_steps, len, x, x_dot, theta, rest...);
  } else {
    physics_pass_impl<kOutputs, false>(k, mode, max_steps, len, x, x_dot, theta, rest...);
  }
}

// The chunks of a step: each agent's envs cut into chunks of at most kChunk, so that a chunk's
// outputs are contiguous also in an agent-major rollout (one agent: the envs cut into chunks).
struct Chunks {
  int64_t per_agent, per_agent_chunks, count;
  Chunks(int64_t n, int64_t envs_per_agent)
      : per_agent(envs_per_agent > 0 ? envs_per_agent : n),
        per_agent_chunks(chunk_count(per_agent)),
        count(n / per_agent * per_agent_chunks) {}
  [[nodiscard]] int64_t agent(int64_t ch) const { return ch / per_agent_chunks; }
  [[nodiscard]] int64_t begin(int64_t ch) const {
    return agent(ch) * per_agent + (ch % per_agent_chunks) * kChunk;
  }
  [[nodiscard]] int64_t size(int64_t ch) const {
    return std::min(kChunk, per_agent - (ch % per_agent_chunks) * kChunk);
  }
};

// Action: int32_t (discrete, 0 or 1) or float (continuous, any value).
template <class Real, class Action>
void step_all(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n, const Action* actions,
              int threads) {
  if constexpr (std::is_same_v<Action, int32_t>) {
    // Validate everything before touching any state, so a bad call changes nothing. Actions sit
    // where the outputs go (an agent-major rollout for a population).
    int64_t first_bad = n;
    for (int64_t i = 0; i < n; ++i) {
      if (env_active(c, i) && (actions[out_row(c, a, i)] & ~1) != 0) {
        first_bad = i;
        break;
      }
    }
    BP_CHECK_ARG(first_bad == n, "invalid action "
                                     << (first_bad < n ? actions[out_row(c, a, first_bad)] : 0)
                                     << " for env " << first_bad
                                     << " (CartPole actions are 0 and 1)");
  }
  const Chunks chunks(n, c.envs_per_agent);
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (n >= kParallelMinEnvs)
  for (int64_t ch = 0; ch < chunks.count; ++ch) {
    if (c.active != nullptr && c.active[chunks.agent(ch)] == 0) continue;
    const int64_t b = chunks.begin(ch);
    const int64_t len = chunks.size(ch);
    const int64_t o = out_row(c, a, b);
    uint8_t done[kChunk];
    int32_t ended[kChunk];
    physics_pass<true>(c.physics, c.reward_mode, c.max_episode_steps, len, a.x + b, a.x_dot + b,
                       a.theta + b, a.theta_dot + b, a.length + b, a.ret + b, a.obs + 4 * o,
                       a.reward + o, a.terminated + o, a.truncated + o, actions + o, done);
    if (c.autoreset == AutoresetMode::kNextStep) {
      // Envs whose last step ended an episode were stepped too (the vectorised pass does not
      // branch per env); beginning their next episode now overwrites everything that wrote.
      const uint8_t* pending = a.pending_reset + b;
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) done[j] = static_cast<uint8_t>(done[j] | pending[j]);
      const int64_t count = compact_done(done, len, ended);
      for (int64_t e = 0; e < count; ++e) {
        const int64_t i = b + ended[e];
        if (a.pending_reset[i] != 0) {
          env_begin_pending(c, a, i);
        } else {
          env_end_episode(c, a, i);
        }
      }
    } else {
      const int64_t count = compact_done(done, len, ended);
      for (int64_t e = 0; e < count; ++e) env_end_episode(c, a, b + ended[e]);
    }
  }
}

// The CPU form of env_run_random: per chunk, time runs inside and envs vectorise. The results
// equal env_run_random's (tests/test_vec_env.cpp checks it), which the GPU runs per thread.
template <class Real>
uint64_t run_random_all(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n,
                        uint64_t first_step, int32_t steps, int threads) {
  const int64_t chunks = chunk_count(n);
  uint64_t ended = 0;
#pragma omp parallel for schedule(dynamic) num_threads(threads) reduction(+ : ended) if (n >= kParallelMinEnvs)
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t begin = ch * kChunk;
    const int64_t len = std::min(n, begin + kChunk) - begin;
    uint32_t bits[4][kChunk];
    int32_t actions[kChunk];
    uint8_t done[kChunk];
    int32_t ended_index[kChunk];
    for (int32_t t = 0; t < steps; ++t) {
      const uint64_t step = first_step + static_cast<uint64_t>(t);
      const auto bit = static_cast<uint32_t>(step) & 127U;
      if (t == 0 || bit == 0) {
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) {
          const auto r = philox_draw(c.seed, Stream::kBenchAction, static_cast<uint32_t>(begin + j),
                                     step >> 7U);
          for (int w = 0; w < 4; ++w) bits[w][j] = r[w];
        }
      }
      const uint32_t* word = bits[bit >> 5U];
      const uint32_t shift = bit & 31U;
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) actions[j] = static_cast<int32_t>((word[j] >> shift) & 1U);
      // Intermediate steps write no observations, rewards or flags: only the state moves.
      physics_pass<false>(c.physics, c.reward_mode, c.max_episode_steps, len, a.x + begin,
                          a.x_dot + begin, a.theta + begin, a.theta_dot + begin, a.length + begin,
                          a.ret + begin, nullptr, nullptr, nullptr, nullptr, actions, done);
      const int64_t count = compact_done(done, len, ended_index);
      ended += static_cast<uint64_t>(count);
      for (int64_t e = 0; e < count; ++e) {
        const int64_t i = begin + ended_index[e];
        a.episode[i] = a.episode[i] + 1;
        store_state(a, i,
                    cartpole_reset_state<Real>(c.seed, static_cast<uint32_t>(i), a.episode[i],
                                               c.reset_bound));
        a.length[i] = 0;
        a.ret[i] = 0.0F;
      }
    }
    for (int64_t i = begin; i < begin + len; ++i) store_obs(a.obs, i, load_state(a, i));
  }
  return ended;
}

class CpuEnvOps final : public EnvOps {
 public:
  explicit CpuEnvOps(Device& device) : EnvOps(device), threads_(device.threads()) {}

 protected:
  void do_reset(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n) override {
    reset_all(c, a, n, threads_);
  }
  void do_reset(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n) override {
    reset_all(c, a, n, threads_);
  }
  void do_restart(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n) override {
    restart_all(c, a, n, threads_);
  }
  void do_restart(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n) override {
    restart_all(c, a, n, threads_);
  }
  void do_next_episode(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                       const uint8_t* mask) override {
    next_episode_all(c, a, n, mask, threads_);
  }
  void do_next_episode(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                       const uint8_t* mask) override {
    next_episode_all(c, a, n, mask, threads_);
  }
  void do_step(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
               const int32_t* actions) override {
    step_all(c, a, n, actions, threads_);
  }
  void do_step(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
               const int32_t* actions) override {
    step_all(c, a, n, actions, threads_);
  }
  void do_step_continuous(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                          const float* actions) override {
    step_all(c, a, n, actions, threads_);
  }
  void do_step_continuous(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                          const float* actions) override {
    step_all(c, a, n, actions, threads_);
  }
  uint64_t do_run_random(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                         uint64_t first_step, int32_t steps) override {
    return run_random_all(c, a, n, first_step, steps, threads_);
  }
  uint64_t do_run_random(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                         uint64_t first_step, int32_t steps) override {
    return run_random_all(c, a, n, first_step, steps, threads_);
  }
  void do_bench_actions(uint64_t seed, uint64_t step, int64_t n, int32_t* out) override {
#pragma omp parallel for simd schedule(static) num_threads(threads_) if (n >= kParallelMinEnvs)
    for (int64_t i = 0; i < n; ++i) out[i] = bench_action(seed, static_cast<uint32_t>(i), step);
  }

 private:
  int threads_;
};

}  // namespace

std::unique_ptr<EnvOps> make_cpu_env_ops(Device& device) {
  return std::make_unique<CpuEnvOps>(device);
}

}  // namespace batchpole
