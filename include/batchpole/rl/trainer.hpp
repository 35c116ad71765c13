// The trainers, written once against the device-agnostic layer (VecEnv, PolicyValueModel,
// RlOps): REINFORCE, REINFORCE with a learned baseline, A2C and PPO, on N environments stepped
// together. The shared loop is here (host/rl/trainer.cpp); each algorithm is one file under
// host/rl/ that says what its rollout keeps, which networks it trains and how it turns a
// rollout into a loss. Nothing here names a device.
//
// One update is one rollout and one gradient step:
//   REINFORCE, baseline, A2C with n_steps = 0: every env plays one whole episode (envs that
//     finish early are masked until the slowest one ends or the time limit cuts it); returns
//     G_t are discounted backwards inside each episode, as in the notebook.
//   A2C with n_steps = n: n steps of every env, returns bootstrapped from V(s_n) (A2C's "up to
//     n-step" returns); on truncation the return bootstraps from V(final_obs), on termination
//     it does not.
//   PPO: n steps of every env as A2C, GAE advantages, then several epochs of minibatch steps on
//     the clipped surrogate (host/rl/ppo.cpp).
//
// A trainer holds a population of TrainConfig::agents agents (one by default): agent k trains
// with seed + k, its own networks, optimiser, environments and random streams, and its every
// update is the one `train` with that seed alone would take (exactly, on the CPU). The agents
// step and update in lockstep, as one batch; an agent that is stopped (solved) steps and
// updates no more.
//
// With TrainConfig::parts = P > 1 the trainer is one agent trained data-parallel
// (rl/data_parallel.hpp): this process's parts of the batch (all P, or those `data_parallel`
// names) run as a population of parts sharing one seed and one parameter set, every statistic
// and gradient summed in part order over all parts before it is used.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "batchpole/device/buffer.hpp"
#include "batchpole/env/vec_env.hpp"
#include "batchpole/nn/model.hpp"
#include "batchpole/rl/data_parallel.hpp"
#include "batchpole/rl/rl_elements.hpp"
#include "batchpole/rl/train_config.hpp"

namespace batchpole {

// Episodes that ended in the recent updates, at least `window` of them (the last updates' whole
// batches: with thousands of envs one update ends thousands of episodes).
class RecentEpisodes {
 public:
  explicit RecentEpisodes(int64_t window = 100) : window_(window) {}
  void add(const EpisodeTally& t);
  [[nodiscard]] EpisodeTally total() const;
  [[nodiscard]] const std::deque<EpisodeTally>& entries() const { return entries_; }
  void restore(std::deque<EpisodeTally> entries) { entries_ = std::move(entries); }

 private:
  int64_t window_;
  std::deque<EpisodeTally> entries_;
};

struct UpdateRecord {
  int64_t agent = 0;          // which agent of the population
  int64_t update = 0;         // 1-based, the agent's
  int64_t env_steps = 0;      // cumulative
  int64_t episodes = 0;       // cumulative
  int64_t rollout_steps = 0;  // T of this update
  EpisodeTally recent;        // the RecentEpisodes window after this update
  // Of the policy (or actor-critic) update. loss.entropy and value_loss are means per valid
  // sample for every algorithm (the REINFORCE losses themselves divide by episodes).
  UpdateStats loss;
  double value_loss = 0;
  // How much of the value targets' variance the critic explains, 1 - Var(G - V) / Var(G), over
  // the rollout (algorithms with a critic; 0 otherwise).
  double explained_variance = 0;
  int32_t epochs = 1;  // passes over the rollout (PPO: fewer than asked when the KL stopped it)
  bool finite = true;  // every loss and gradient norm finite
  OpCounts ops;        // stream operations and host synchronisations of this update (of the
                       // whole population's)
};

// One agent of a trainer's population: its seed and what it has done.
struct AgentProgress {
  uint64_t seed = 0;
  int64_t updates = 0;
  int64_t env_steps = 0;
  int64_t episodes = 0;
  uint64_t act_steps = 0;  // the policy-sampling counter (Stream::kPolicyAction)
  bool active = true;      // still stepping and updating
  RecentEpisodes recent;
};

// The networks a configuration trains: separate policy and value networks (REINFORCE,
// baseline) or the shared-trunk actor-critic (A2C), with `hidden` units per layer.
ModelConfig model_config_for(const TrainConfig& c);
// Throws Error(kInvalidArgument) unless `state` is learner state (Trainer::learner_state) that
// a trainer of configuration c takes: none for most algorithms, DQN's for DQN.
void check_learner_state(const TrainConfig& c, const std::vector<std::vector<unsigned char>>& state);

class Learner;  // host/rl/learner.hpp: one algorithm
struct Rollout;

class Trainer {
 public:
  Trainer(Device& device, const TrainConfig& config, DataParallel data_parallel = {});
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;
  ~Trainer();

  // Bytes of device memory that a configuration needs (environments, rollout, model), checked
  // once before anything is allocated.
  static std::size_t bytes_required(const TrainConfig& config, Device& device);
  // Bytes of recorded activations a configuration uses (0: it runs the forward pass again).
  static std::size_t record_bytes(const TrainConfig& config, const DevicePlan& plan);

  // One update of one agent (a trainer of one agent).
  UpdateRecord update();
  // One update of every active agent, in lockstep: a record for each (none when all have
  // stopped).
  std::vector<UpdateRecord> update_agents();
  // Stops an agent: it steps and updates no more (the population's solved agents).
  void stop(int64_t agent) { set_active(agent, false); }
  // Stops or restarts an agent (a resumed run with a new budget restarts those the old one
  // stopped).
  void set_active(int64_t agent, bool active);

  [[nodiscard]] const TrainConfig& config() const { return config_; }
  [[nodiscard]] int64_t agents() const { return static_cast<int64_t>(agents_.size()); }
  [[nodiscard]] const AgentProgress& agent(int64_t k) const { return agents_.at(k); }
  [[nodiscard]] int64_t active_agents() const;
  // Updates taken (by the population: each took part in at most this many).
  [[nodiscard]] int64_t updates() const { return updates_; }
  // Env steps of every agent together.
  [[nodiscard]] int64_t env_steps() const;
  [[nodiscard]] const RecentEpisodes& recent() const { return agents_.front().recent; }
  [[nodiscard]] PolicyValueModel& model() { return *model_; }
  [[nodiscard]] VecEnv& env() { return *env_; }
  [[nodiscard]] Device& device() { return *device_; }
  // Whether the updates reuse the activations of acting (reuse_activations, and they fit).
  [[nodiscard]] bool reuses_activations() const { return reuse_; }
  // How the updates ran on a device that records them (plan().graphs): times recorded, and
  // replayed as one launch.
  [[nodiscard]] const Recording& recording() const { return *recording_; }

  // Checkpoints (host/io/checkpoint.cpp): everything needed to continue exactly (parameters,
  // optimiser moments, the environments' full state, counters, the recent-episode window),
  // with the configuration as JSON text. Written to a temporary file, flushed and renamed: a
  // crash never leaves a broken file behind. `extra_json` is the caller's own JSON text (e.g.
  // wall time), returned by read_checkpoint_config.
  void save_checkpoint(const std::string& path, const std::string& extra_json = "{}") const;
  // Reads a checkpoint's configuration without building anything (the caller then constructs
  // a Trainer from it and calls restore). Throws Error(kInvalidArgument) for a file that is
  // truncated, corrupted, of another format version or not a checkpoint.
  static TrainConfig read_checkpoint_config(const std::string& path,
                                            std::string* extra_json = nullptr);
  void restore_checkpoint(const std::string& path);
  // Only the network parameters of a checkpoint (for evaluation), after the same checks.
  static std::vector<float> read_checkpoint_parameters(const std::string& path);

 private:
  void apply_active();  // the agents' flags to the model and the environments
  std::vector<UpdateRecord> update_parts();  // one data-parallel update (parts > 1)
  // This process's parts (1 without data-parallel parts: the agents are the population's).
  [[nodiscard]] int64_t parts_here() const { return config_.parts > 1 ? parts_.local_parts : 1; }
  // The learner's own state for checkpoints, one byte vector per agent (empty: none;
  // Learner::save_state, restore_state).
  [[nodiscard]] std::vector<std::vector<unsigned char>> learner_state() const;
  void restore_learner_state(const std::vector<std::vector<unsigned char>>& agents);

  Device* device_;
  TrainConfig config_;
  std::unique_ptr<Learner> learner_;
  std::unique_ptr<VecEnv> env_;
  std::unique_ptr<PolicyValueModel> model_;
  std::unique_ptr<Rollout> rollout_;
  std::vector<AgentProgress> agents_;
  Buffer<uint64_t> seeds_;  // the agents' seeds on the device (PPO's shuffles)
  int64_t updates_ = 0;
  bool reuse_ = false;
  DataParallel parts_;  // with parts > 1: this process's share (local_parts filled in)
  // An update's operations, from acting to the optimiser's step, as the device records them
  // (Device::run_recorded; on the GPU one CUDA graph).
  std::unique_ptr<Recording> recording_ = std::make_unique<Recording>();
};

}  // namespace batchpole
