// A rollout: what the trainers store of T steps of N environments, time-major (row t * N +
// env), all in device memory, and the collection loop that fills it. The environment writes
// each step's outputs straight into row t (VecEnv::step with StepTargets) and the model its
// actions and values, so that nothing is copied per step.
//
// A population's rollout holds one such block per agent, agent-major: agent k's arrays start
// k * stride rows in (stride = (T + 1) x N, so that observations and every other array share
// it), its per-env arrays and per-agent results are packed (rl_elements.hpp).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

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
  Rollout(Device& device, const RolloutSpec& spec, int64_t envs, int64_t agents = 1);
  static std::size_t bytes_per_row(const RolloutSpec& spec);

  // Steps every active agent's envs up to spec.steps times, storing what the update needs;
  // with whole episodes the envs first restart their episodes and an agent's collection ends
  // once each of its envs has finished one. act_steps holds each agent's sampling counter and
  // advances by the steps it took. record: the model keeps the activations of acting
  // (PolicyValueModel::reserve_record). env_steps: each agent's env steps before this rollout
  // (the epsilon schedule's clock; empty when the rollout does not act epsilon-greedily).
  // Returns the steps stored of each agent (0 for the inactive).
  std::vector<int64_t> collect(VecEnv& env, PolicyValueModel& model,
                               std::span<uint64_t> act_steps, std::span<const uint8_t> active,
                               bool record, std::span<const int64_t> env_steps = {});

  // Rows between consecutive agents' blocks: 0 for one agent (the ops' convention), else
  // (T + 1) x N.
  [[nodiscard]] int64_t agent_stride() const { return agents > 1 ? (spec.steps + 1) * envs : 0; }

  Device* device;
  RolloutSpec spec;
  int64_t envs;    // N, of each agent
  int64_t agents;  // K
  // obs holds T + 1 rows: row t is what action t was taken on, and the step writes the next
  // observation into row t + 1 (row T: the observation after the rollout, V(s_T)'s input).
  Buffer<float> obs, rewards, returns, weights, final_return, values, final_obs, truncation_value,
      last_value, log_prob, continuous_actions;
  Buffer<int32_t> actions, final_length;
  Buffer<uint8_t> terminated, truncated, mask, ended;
  Buffer<int64_t> ended_count;  // one per agent
  Buffer<Moments> moments;      // one per agent
  // With a critic: the moments of the value targets (agents) and of their residuals G - V(s)
  // (agents more), for the explained variance 1 - Var(G - V) / Var(G).
  Buffer<Moments> fit;
  Buffer<EpisodeTally> tally;  // one per agent
};

}  // namespace batchpole
