// Element functions of the vectorised environment: one environment index at a time, over
// structure-of-arrays buffers. The CPU loops (host/cpu/cpu_env_ops.cpp) and the CUDA kernels
// (kernels/env_step.cu) both call exactly these.
#pragma once

#include <cstdint>

#include "batchpole/env/cartpole.hpp"

namespace batchpole {

// Raw views of the environment's buffers, valid on whichever device owns them. The state and
// counters are the environment's own; the outputs (obs to final_length) are where the current
// step writes, the environment's own buffers or rows of a trainer's rollout (VecEnv::step).
template <class Real>
struct EnvArrays {
  Real* x;
  Real* x_dot;
  Real* theta;
  Real* theta_dot;
  int32_t* length;    // steps taken in the current episode
  float* ret;         // undiscounted return of the current episode so far
  uint32_t* episode;  // episode number of each env (the reset draw's counter)
  float* obs;         // N x 4, row-major
  float* reward;
  uint8_t* terminated;
  uint8_t* truncated;
  float* final_obs;     // N x 4, written where the episode ended this step
  float* final_return;  // written where the episode ended this step
  int32_t* final_length;
};

template <class Real>
struct EnvConfig {
  Physics<Real> physics;
  RewardMode reward_mode;
  int32_t max_episode_steps;
  double reset_bound;
  uint64_t seed;
};

// Whether an episode of `length` steps hits the time limit (0 = no limit).
BP_HD bool truncates(int32_t max_episode_steps, int32_t length) {
  return static_cast<bool>(static_cast<int>(max_episode_steps > 0) &
                           static_cast<int>(length >= max_episode_steps));
}

template <class Real>
BP_HD CartState<Real> load_state(const EnvArrays<Real>& a, int64_t i) {
  return {a.x[i], a.x_dot[i], a.theta[i], a.theta_dot[i]};
}

template <class Real>
BP_HD void store_state(const EnvArrays<Real>& a, int64_t i, const CartState<Real>& s) {
  a.x[i] = s.x;
  a.x_dot[i] = s.x_dot;
  a.theta[i] = s.theta;
  a.theta_dot[i] = s.theta_dot;
}

template <class Real>
BP_HD void store_obs(float* obs, int64_t i, const CartState<Real>& s) {
  obs[4 * i + 0] = static_cast<float>(s.x);
  obs[4 * i + 1] = static_cast<float>(s.x_dot);
  obs[4 * i + 2] = static_cast<float>(s.theta);
  obs[4 * i + 3] = static_cast<float>(s.theta_dot);
}

// Start a new episode in env i: the episode counter advances, the state is drawn, the
// observation written. Counter and state depend only on (seed, i, episode number).
template <class Real>
BP_HD void env_begin_episode(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i) {
  const CartState<Real> s =
      cartpole_reset_state<Real>(c.seed, static_cast<uint32_t>(i), a.episode[i], c.reset_bound);
  store_state(a, i, s);
  store_obs(a.obs, i, s);
  a.length[i] = 0;
  a.ret[i] = 0.0F;
}

// Abandon env i's episode if it has begun (length > 0) and start the next one: trainers that
// need whole episodes (REINFORCE) begin every rollout this way. The abandoned episode is not
// counted anywhere; the next draws from the next episode number, never a repeat.
template <class Real>
BP_HD void env_restart_episode(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i) {
  if (a.length[i] > 0) {
    a.episode[i] = a.episode[i] + 1;
    env_begin_episode(c, a, i);
  }
}

// Physics under `force`, reward, flags and the observation of the step. Returns whether the
// episode ended; the caller then calls env_end_episode (the CPU does so in a second, scalar pass
// so that this pass vectorises).
template <class Real>
BP_HD bool env_step_physics_force(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i,
                                  Real force) {
  CartState<Real> s = load_state(a, i);
  const bool term = cartpole_physics_step_force(c.physics, force, s);
  const int32_t len = a.length[i] + 1;
  const bool trunc = truncates(c.max_episode_steps, len);
  const float r = cartpole_reward(c.reward_mode, term);
  store_state(a, i, s);
  store_obs(a.obs, i, s);
  a.reward[i] = r;
  a.terminated[i] = static_cast<uint8_t>(term);
  a.truncated[i] = static_cast<uint8_t>(trunc);
  a.length[i] = len;
  a.ret[i] = a.ret[i] + r;
  return term || trunc;
}

// env_step_physics_force with the discrete action's force (action 1 pushes right).
template <class Real>
BP_HD bool env_step_physics(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i,
                            int32_t action) {
  return env_step_physics_force(c, a, i, cartpole_discrete_force(c.physics, action == 1));
}

// env_step_physics_force with the continuous action's force (cartpole_continuous_force).
template <class Real>
BP_HD bool env_step_physics_continuous(const EnvConfig<Real>& c, const EnvArrays<Real>& a,
                                       int64_t i, float action) {
  return env_step_physics_force(c, a, i, cartpole_continuous_force(c.physics, action));
}

// Same-step auto-reset (Gymnasium's SAME_STEP): keep the ended episode's last observation and
// statistics, then begin the next episode so that obs already holds its first observation.
template <class Real>
BP_HD void env_end_episode(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i) {
  for (int k = 0; k < 4; ++k) a.final_obs[4 * i + k] = a.obs[4 * i + k];
  a.final_return[i] = a.ret[i];
  a.final_length[i] = a.length[i];
  a.episode[i] = a.episode[i] + 1;
  env_begin_episode(c, a, i);
}

// Counters of the fused random-action path, summed over envs by the caller.
struct RolloutTally {
  uint64_t episodes = 0;
  double return_sum = 0.0;
};

// K steps of env i with random actions (bench_action) and the state kept in registers; writes
// only the final state and counters back. For env-only benchmarks.
template <class Real>
BP_HD uint32_t env_run_random(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i,
                              uint64_t first_step, int32_t steps) {
  CartState<Real> s = load_state(a, i);
  int32_t len = a.length[i];
  float ret = a.ret[i];
  uint32_t episode = a.episode[i];
  uint32_t ended = 0;
  const auto env = static_cast<uint32_t>(i);
  // One draw gives the actions of 128 consecutive steps (see bench_action).
  Philox4x32::Counter bits = philox_draw(c.seed, Stream::kBenchAction, env, first_step >> 7U);
  for (int32_t t = 0; t < steps; ++t) {
    const uint64_t step = first_step + static_cast<uint64_t>(t);
    const auto bit = static_cast<uint32_t>(step) & 127U;
    if (bit == 0 && t > 0) bits = philox_draw(c.seed, Stream::kBenchAction, env, step >> 7U);
    const bool push_right = ((bits[bit >> 5U] >> (bit & 31U)) & 1U) != 0U;
    const bool term = cartpole_physics_step(c.physics, push_right, s);
    len += 1;
    ret += cartpole_reward(c.reward_mode, term);
    if (term || truncates(c.max_episode_steps, len)) {
      ++episode;
      ++ended;
      s = cartpole_reset_state<Real>(c.seed, env, episode, c.reset_bound);
      len = 0;
      ret = 0.0F;
    }
  }
  store_state(a, i, s);
  store_obs(a.obs, i, s);
  a.length[i] = len;
  a.ret[i] = ret;
  a.episode[i] = episode;
  return ended;
}

}  // namespace batchpole
