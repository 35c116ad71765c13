// One algorithm of the trainers: what its rollout keeps, which networks it trains, and how it
// turns a collected rollout into a gradient step. One subclass per file (reinforce.cpp,
// baseline.cpp, a2c.cpp), each written against the device-agnostic layer; the loop around
// them (collecting, counting episodes, statistics, checkpoints) is Trainer's.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "batchpole/env/vec_env.hpp"
#include "batchpole/nn/model.hpp"
#include "batchpole/rl/data_parallel.hpp"
#include "batchpole/rl/rl_ops.hpp"
#include "batchpole/rl/train_config.hpp"
#include "batchpole/rl/trainer.hpp"
#include "rollout.hpp"

namespace batchpole {

// What a learner works on in one update. A population's agents are one rollout in the
// agent-major layout (rollout.hpp); the per-agent spans hold one entry per agent.
struct LearnContext {
  Device& device;
  const TrainConfig& config;
  VecEnv& env;
  PolicyValueModel& model;
  Rollout& rollout;
  int64_t steps;        // T of this rollout: the most steps any agent took
  const uint8_t* mask;  // whole episodes: the first-episode mask; else nullptr
  // The episodes that ended in this rollout, per agent; empty in a sync-free update of an n-step
  // rollout (DevicePlan::sync_free_updates), which reads it only at its end.
  std::span<const EpisodeTally> tally;
  bool recorded;        // the rollout's activations were recorded while acting
  int64_t update;       // 0-based index of this update (PPO keys its shuffles by it)
  std::span<const int64_t> agent_steps;  // the steps each agent took (T_k; 0: inactive)
  std::span<const uint8_t> active;       // the agents that learn in this update
  const uint64_t* seeds;  // device memory, one per agent (PPO's per-agent shuffles)
  // Data-parallel parts (TrainConfig::parts > 1): the agents are this process's parts of one
  // batch, whose statistics and gradients are summed in part order before they are used;
  // nullptr otherwise.
  const DataParallel* parts = nullptr;

  [[nodiscard]] int64_t agents() const { return rollout.agents; }
  [[nodiscard]] int64_t stride() const { return rollout.agent_stride(); }
  // Every agent's rows: its T_k x N samples.
  [[nodiscard]] std::vector<int64_t> agent_rows() const;
  // The rows an operation over the whole rollout covers: T x N for one agent, the whole
  // agent-major buffer for a population.
  [[nodiscard]] int64_t span_rows() const {
    return agents() > 1 ? agents() * stride() : steps * rollout.envs;
  }
};

// What an update did beyond the model's statistics.
struct LearnReport {
  std::vector<int32_t> epochs;  // per agent: passes over the rollout (PPO may stop early)
  bool fit = false;             // rollout.fit holds the moments of the value fit
};

class Learner {
 public:
  virtual ~Learner() = default;
  [[nodiscard]] virtual RolloutSpec rollout_spec() const = 0;
  [[nodiscard]] virtual ModelConfig model_config() const = 0;
  [[nodiscard]] virtual ModelOptions model_options() const = 0;
  // Computes the loss of the rollout and takes its optimiser steps. Does not synchronise (PPO
  // with a target KL reads it back once per epoch).
  virtual LearnReport learn(const LearnContext& ctx) = 0;
  // Whether an update (acting and learn) may run as one recorded sequence where the device
  // records them (Device::run_recorded): learn waits for the device nowhere when the plan's
  // updates are sync-free.
  [[nodiscard]] virtual bool recordable() const { return true; }

  // ---- learners with state of their own (DQN: a target network and a replay buffer) ----
  // Device memory that state takes for `agents` agents of `envs` environments each
  // (Trainer::bytes_required).
  [[nodiscard]] virtual std::size_t bytes_required(const Device& /*device*/, int64_t /*envs*/,
                                                   int64_t /*agents*/) const {
    return 0;
  }
  // Called once the trainer has built the model (all its agents), before the first update:
  // make that state.
  virtual void attach(Device& /*device*/, PolicyValueModel& /*model*/) {}
  // That state as bytes for a checkpoint, one vector per agent (none: no state), and back.
  // check_state throws Error(kInvalidArgument) unless restore_state would take those bytes; it
  // needs no device (the checkpoint reader calls it on a learner made from the configuration).
  // restore_state checks every agent's bytes before it changes anything.
  [[nodiscard]] virtual std::vector<std::vector<unsigned char>> save_state() const { return {}; }
  virtual void check_state(const std::vector<std::vector<unsigned char>>& agents) const;
  virtual void restore_state(const std::vector<std::vector<unsigned char>>& agents) {
    check_state(agents);
  }
};

std::unique_ptr<Learner> make_learner(const TrainConfig& config);
std::unique_ptr<Learner> make_reinforce(const TrainConfig& config);
std::unique_ptr<Learner> make_baseline(const TrainConfig& config);
std::unique_ptr<Learner> make_a2c(const TrainConfig& config);
std::unique_ptr<Learner> make_ppo(const TrainConfig& config);
std::unique_ptr<Learner> make_dqn(const TrainConfig& config);

// ---- pieces the learners share (host/rl/returns.cpp) ----

// The policy-gradient learners' network with the configuration's action head: `config` as it
// is for discrete actions, with the Gaussian head over CartPole's one force for continuous ones.
ModelConfig with_action_head(const ModelConfig& config, const TrainConfig& c);
// The model options every learner takes from the configuration: seed, chunk rows, the learning
// rates of the policy (or Q-) network and of the value network, and with `clip_gradients` the
// global gradient-norm clipping (max_grad_norm; REINFORCE and its baseline do not clip).
ModelOptions model_options_for(const TrainConfig& c, bool clip_gradients);
// The rollout's actions into the view: `actions`, or `continuous_actions` for continuous ones.
void set_actions(RolloutView& view, Rollout& rollout);

// Discounted returns of the rollout into rollout.returns; last_value and truncation_value as
// ReturnsArgs (nullptr: 0).
void compute_returns(const LearnContext& ctx, const float* last_value,
                     const float* truncation_value);
// weights = returns - V(s) (into rollout.weights), or the returns themselves; normalised over
// the valid samples when the configuration says so. Returns the weights to use. With
// subtract_values, the moments of the value fit go to rollout.fit.
const float* advantage_weights(const LearnContext& ctx, bool subtract_values);
// V(s_T) into rollout.last_value (n-step rollouts), and V(final obs) into
// rollout.truncation_value where the rollout saw a truncation. Returns the two pointers for
// ReturnsArgs / GaeArgs (nullptr where not computed).
std::pair<const float*, const float*> bootstrap_values(const LearnContext& ctx);
// GAE(lambda) advantages into rollout.weights and value targets into rollout.returns, with the
// moments of the value fit into rollout.fit.
void gae(const LearnContext& ctx, const float* last_value, const float* truncation_value,
         float lambda);
// rollout.weights normalised over the valid samples when the configuration says so.
const float* normalized_advantages(const LearnContext& ctx);
// The epsilon of advantage normalisation: (x - mean) / (std + eps).
inline constexpr float kNormalizeEps = 1e-8F;
// The valid samples of agent k's rollout: the episodes' steps with whole episodes, else every
// row.
double valid_samples(const LearnContext& ctx, int64_t agent);
// Data-parallel parts (ctx.parts): every part's moments m[k] replaced by the sum of all parts'
// in part order, so that each part normalises with the whole batch's (nothing otherwise).
void combine_part_moments(const LearnContext& ctx, Moments* m);
// Data-parallel parts: every part's gradient and loss sums replaced by the sum of all parts' in
// part order, before the optimiser step (nothing otherwise).
void combine_part_gradients(const LearnContext& ctx);
// The divisor C of a loss over the rollout: with data-parallel parts the whole batch's sample
// count (each part's gradient is its share of the batch mean), else 0 (counted per agent).
float part_loss_count(const LearnContext& ctx);
// A report of `epochs` passes for every agent.
LearnReport report_of(const LearnContext& ctx, bool fit, int32_t epochs = 1);

// An agent's update record (Trainer): its counters (already advanced by the update), the loss
// statistics per valid sample and, with a critic, the explained variance 1 - Var(G - V) / Var(G)
// from the moments of its value targets and of their residuals (null without one).
UpdateRecord update_record(const AgentProgress& a, int64_t agent, int64_t rollout_steps,
                           const UpdateStats& st, const Moments* targets, const Moments* residuals,
                           int32_t epochs, OpCounts ops);

}  // namespace batchpole
