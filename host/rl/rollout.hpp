// A rollout: what the trainers store of T steps of N environments, time-major (row t * N +
// env), all in device memory, and the collection loop that fills it. The environment writes
// each step's outputs straight into row t (VecEnv::step with StepTargets) and the model its
// actions and values, so that nothing is copied per step.
#pragma once

#include <cstdint>

#include "batchpole/device/buffer.hpp"
#include "batchpole/env/vec_env.hpp"
#include "batchpole/nn/model.hpp"
#include "batchpole/rl/rl_elements.hpp"

namespace batchpole {

// Epsilon-greedy acting (DQN): epsilon falls linearly from `start` to `end` over the first
// `decay_steps` env steps, then stays at `end`.
struct EpsilonSchedule {
  float start = 1.0f;
  float end = 0.05f;
  int64_t decay_steps = 0;
  [[nodiscard]] float at(int64_t env_steps) const {
    if (env_steps >= decay_steps) return end;
    const double f = static_cast<double>(env_steps) / static_cast<double>(decay_steps);
    return static_cast<float>(start + f * (static_cast<double>(end) - start));
  }
};

// What an algorithm's rollout keeps.
struct RolloutSpec {
  int64_t steps = 0;            // T: the most steps one rollout holds
  bool whole_episodes = false;  // every env restarts its episode and the rollout runs until
                                // each has ended one; the steps after are masked
  bool values = false;          // V(s_t) while acting (a critic)
  bool bootstrap = false;       // final observations and V(final obs), V(s_T)
  bool log_probs = false;       // log pi(a_t|s_t) while acting (PPO's ratio)
  // The update's gradient step runs on the activations of acting (one step per rollout), so
  // they may be recorded instead of computed again (Trainer::record_bytes).
  bool reuses_activations = true;
  // Continuous actions (the Gaussian head): `continuous_actions` (one float per row) instead of
  // `actions`, and the environment's continuous step.
  bool continuous = false;
  // Act epsilon-greedily on the policy network's outputs (DQN's Q-values) instead of sampling.
  bool epsilon_greedy = false;
  EpsilonSchedule epsilon;
};

struct Rollout {
  Rollout(Device& device, const RolloutSpec& spec, int64_t envs);
  static std::size_t bytes_per_row(const RolloutSpec& spec);

  // Steps every env up to spec.steps times, storing what the update needs; with whole episodes
  // the envs first restart their episodes and collection ends once every env has finished one.
  // record: the model keeps the activations of acting (PolicyValueModel::reserve_record).
  // env_steps: the env steps taken before this rollout (the epsilon schedule's clock).
  // Returns the number of steps stored.
  int64_t collect(VecEnv& env, PolicyValueModel& model, uint64_t& act_step, bool record,
                  int64_t env_steps = 0);

  // Row t of an N-wide (or N x 4) buffer.
  template <class T>
  static T* row(Buffer<T>& b, int64_t t, int64_t width, int64_t envs) {
    return b.data() + t * width * envs;
  }

  Device* device;
  RolloutSpec spec;
  int64_t envs;
  // obs holds T + 1 rows: row t is what action t was taken on, and the step writes the next
  // observation into row t + 1 (row T: the observation after the rollout, V(s_T)'s input).
  Buffer<float> obs, rewards, returns, weights, final_return, values, final_obs, truncation_value,
      last_value, log_prob, continuous_actions;
  Buffer<int32_t> actions, final_length;
  Buffer<uint8_t> terminated, truncated, mask, ended;
  Buffer<int64_t> ended_count;
  Buffer<Moments> moments;
  // With a critic: the moments of the value targets and of their residuals G - V(s), for the
  // explained variance 1 - Var(G - V) / Var(G).
  Buffer<Moments> fit;
  Buffer<EpisodeTally> tally;
};

}  // namespace batchpole
