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
  // Rows between consecutive agents' blocks of outputs (a population's rollout is agent-major);
  // 0: the outputs are indexed by env, as the state is.
  int64_t out_stride = 0;
  // kNextStep only (nullptr otherwise): 1 where the last step ended an episode, so that the
  // next step begins the next one instead of stepping.
  uint8_t* pending_reset = nullptr;
};

template <class Real>
struct EnvConfig {
  Physics<Real> physics;
  RewardMode reward_mode;
  int32_t max_episode_steps;
  double reset_bound;
  uint64_t seed;
  AutoresetMode autoreset = AutoresetMode::kSameStep;
  // A population (several agents in one batch): envs [k * envs_per_agent, (k + 1) *
  // envs_per_agent) are agent k's, their draws keyed by seeds[k] and the env's index within
  // the agent, so that agent k steps exactly as it would alone. envs_per_agent = 0: one agent
  // with `seed`. active[k] = 0: agent k's envs do not step (nullptr: all step).
  int64_t envs_per_agent = 0;
  const uint64_t* seeds = nullptr;
  const uint8_t* active = nullptr;
  // Data-parallel parts (rl/data_parallel.hpp): env i is the batch's env first_key + i, its
  // draws keyed by that global index (all parts share one seed), so that every env keeps its
  // stream however the batch is cut into parts and processes.
  bool global_keys = false;
  uint32_t first_key = 0;
};

template <class Real>
BP_HD int64_t agent_of(const EnvConfig<Real>& c, int64_t i) {
  return c.envs_per_agent > 0 ? i / c.envs_per_agent : 0;
}

// The env's index within its agent, and its agent's seed: the keys of its random draws.
template <class Real>
BP_HD uint32_t local_env(const EnvConfig<Real>& c, int64_t i) {
  return static_cast<uint32_t>(i - agent_of(c, i) * c.envs_per_agent);
}

// The env index its draws are keyed by: its index within its agent, or with global keys its
// index in the whole data-parallel batch.
template <class Real>
BP_HD uint32_t key_env(const EnvConfig<Real>& c, int64_t i) {
  return c.global_keys ? c.first_key + static_cast<uint32_t>(i) : local_env(c, i);
}

template <class Real>
BP_HD uint64_t seed_of(const EnvConfig<Real>& c, int64_t i) {
  return c.seeds != nullptr ? c.seeds[agent_of(c, i)] : c.seed;
}

template <class Real>
BP_HD bool env_active(const EnvConfig<Real>& c, int64_t i) {
  return c.active == nullptr || c.active[agent_of(c, i)] != 0;
}

// Where env i's outputs go: its own index, or its row in its agent's block.
template <class Real>
BP_HD int64_t out_row(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i) {
  return a.out_stride > 0 ? agent_of(c, i) * a.out_stride + local_env(c, i) : i;
}

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

// Row i of an N x 4 observation array. On the GPU one 16-byte store where the row is 16-byte
// aligned (always, in batchpole's buffers: rows of four floats from 256-byte aligned
// allocations), so that a warp writes its 512 bytes in four transactions rather than sixteen.
BP_HD void store_obs_row(float* obs, int64_t i, float x, float x_dot, float theta,
                         float theta_dot) {
  float* row = obs + 4 * i;
#ifdef __CUDA_ARCH__
  if ((reinterpret_cast<uintptr_t>(row) & 15U) == 0) {
    *reinterpret_cast<float4*>(row) = make_float4(x, x_dot, theta, theta_dot);
    return;
  }
#endif
  row[0] = x;
  row[1] = x_dot;
  row[2] = theta;
  row[3] = theta_dot;
}

template <class Real>
BP_HD void store_obs(float* obs, int64_t i, const CartState<Real>& s) {
  store_obs_row(obs, i, static_cast<float>(s.x), static_cast<float>(s.x_dot),
                static_cast<float>(s.theta), static_cast<float>(s.theta_dot));
}

// Start a new episode in env i: the episode counter advances, the state is drawn, the
// observation written. Counter and state depend only on (seed, i, episode number).
template <class Real>
BP_HD void env_begin_episode(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i) {
  const CartState<Real> s =
      cartpole_reset_state<Real>(seed_of(c, i), key_env(c, i), a.episode[i], c.reset_bound);
  store_state(a, i, s);
  store_obs(a.obs, out_row(c, a, i), s);
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
    if (a.pending_reset != nullptr) a.pending_reset[i] = 0;
  }
}

// Envs where mask is set (every env without a mask) begin their next episode; the others keep
// their episode. Every env's observation is written (it is the state, rounded to float), so
// that obs holds the whole batch's. A Gymnasium reset without a seed, or with a reset mask.
template <class Real>
BP_HD void env_next_episode(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i,
                            const uint8_t* mask) {
  if (mask == nullptr || mask[i] != 0) {
    a.episode[i] = a.episode[i] + 1;
    env_begin_episode(c, a, i);
    if (a.pending_reset != nullptr) a.pending_reset[i] = 0;
  } else {
    store_obs(a.obs, i, load_state(a, i));
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
  const int64_t o = out_row(c, a, i);
  store_obs(a.obs, o, s);
  a.reward[o] = r;
  a.terminated[o] = static_cast<uint8_t>(term);
  a.truncated[o] = static_cast<uint8_t>(trunc);
  a.length[i] = len;
  a.ret[i] = a.ret[i] + r;
  return term || trunc;
}

// The force of a discrete action (1 pushes right, 0 left) or a continuous one
// (cartpole_continuous_force).
template <class Real>
BP_HD Real action_force(const Physics<Real>& k, int32_t action) {
  return cartpole_discrete_force(k, action == 1);
}
template <class Real>
BP_HD Real action_force(const Physics<Real>& k, float action) {
  return cartpole_continuous_force(k, action);
}

// env_step_physics_force with the force of `action`: int32_t (discrete) or float (continuous).
template <class Real, class Action>
BP_HD bool env_step_physics(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i,
                            Action action) {
  return env_step_physics_force(c, a, i, action_force(c.physics, action));
}

// The step ended env i's episode: keep its return and length, then, by the autoreset mode,
// SAME_STEP: keep the last observation and begin the next episode, so that obs already holds
// its first observation; NEXT_STEP: mark the env, so that its next step begins the next
// episode; DISABLED: nothing more (the env steps on until the caller restarts it).
template <class Real>
BP_HD void env_end_episode(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i) {
  const int64_t o = out_row(c, a, i);
  a.final_return[o] = a.ret[i];
  a.final_length[o] = a.length[i];
  if (c.autoreset == AutoresetMode::kSameStep) {
    const float* last = a.obs + 4 * o;
    store_obs_row(a.final_obs, o, last[0], last[1], last[2], last[3]);
    a.episode[i] = a.episode[i] + 1;
    env_begin_episode(c, a, i);
  } else if (c.autoreset == AutoresetMode::kNextStep) {
    a.pending_reset[i] = 1;
  }
}

// NEXT_STEP, for an env whose last step ended its episode: this step begins the next episode
// instead of stepping, and returns its first observation with reward 0 and both flags clear
// (Gymnasium's NEXT_STEP). The episode counter advances here rather than at the end, so that
// each episode starts from the same draw as in SAME_STEP.
template <class Real>
BP_HD void env_begin_pending(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i) {
  a.pending_reset[i] = 0;
  a.episode[i] = a.episode[i] + 1;
  env_begin_episode(c, a, i);
  const int64_t o = out_row(c, a, i);
  a.reward[o] = 0.0F;
  a.terminated[o] = 0;
  a.truncated[o] = 0;
}

// One step of env i in the config's autoreset mode (the GPU's per-env step; the CPU runs the
// same in two passes, see cpu_env_ops.cpp). Action: int32_t (discrete) or float (continuous).
template <class Real, class Action>
BP_HD void env_step(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t i, Action action) {
  if (c.autoreset == AutoresetMode::kNextStep && a.pending_reset[i] != 0) {
    env_begin_pending(c, a, i);
  } else if (env_step_physics(c, a, i, action)) {
    env_end_episode(c, a, i);
  }
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
  const uint32_t env = key_env(c, i);
  const uint64_t seed = seed_of(c, i);
  // One draw gives the actions of 128 consecutive steps (see bench_action).
  Philox4x32::Counter bits = philox_draw(seed, Stream::kBenchAction, env, first_step >> 7U);
  for (int32_t t = 0; t < steps; ++t) {
    const uint64_t step = first_step + static_cast<uint64_t>(t);
    const auto bit = static_cast<uint32_t>(step) & 127U;
    if (bit == 0 && t > 0) bits = philox_draw(seed, Stream::kBenchAction, env, step >> 7U);
    const bool push_right = ((bits[bit >> 5U] >> (bit & 31U)) & 1U) != 0U;
    const bool term = cartpole_physics_step(c.physics, push_right, s);
    len += 1;
    ret += cartpole_reward(c.reward_mode, term);
    if (term || truncates(c.max_episode_steps, len)) {
      ++episode;
      ++ended;
      s = cartpole_reset_state<Real>(seed, env, episode, c.reset_bound);
      len = 0;
      ret = 0.0F;
    }
  }
  store_state(a, i, s);
  store_obs(a.obs, out_row(c, a, i), s);
  a.length[i] = len;
  a.ret[i] = ret;
  a.episode[i] = episode;
  return ended;
}

}  // namespace batchpole
