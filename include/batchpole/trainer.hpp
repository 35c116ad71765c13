// The policy-gradient trainers, written once against the device-agnostic layer (VecEnv,
// PolicyValueModel, RlOps): REINFORCE, REINFORCE with a learned baseline, and A2C, on N
// environments stepped together. No line here branches on the device.
//
// One update is one rollout and one gradient step:
//   REINFORCE, baseline, A2C with n_steps = 0: every env plays one whole episode (envs that
//     finish early are masked until the slowest one ends or the time limit cuts it); returns
//     G_t are discounted backwards inside each episode, as in the notebook.
//   A2C with n_steps = n: n steps of every env, returns bootstrapped from V(s_n) (A2C's "up to
//     n-step" returns); on truncation the return bootstraps from V(final_obs), on termination
//     it does not.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "batchpole/backend.hpp"
#include "batchpole/cartpole.hpp"
#include "batchpole/policy_value.hpp"
#include "batchpole/rl_ops.hpp"
#include "batchpole/vec_env.hpp"

namespace batchpole {

enum class Algorithm : uint8_t { kReinforce, kBaseline, kA2C };
std::string to_string(Algorithm a);
Algorithm parse_algorithm(const std::string& s);  // throws Error(kInvalidArgument)

struct TrainConfig {
  Algorithm algorithm = Algorithm::kA2C;
  // A2C defaults: what solved CartPole-v1 fastest on the 2-core CPU (BENCHMARKS.md).
  int64_t envs = 32;
  int32_t n_steps = 5;  // A2C: rollout length; 0 = whole episodes (the notebook's variant)
  float lr = 2e-3F;      // the policy's (or the actor-critic's) learning rate
  float value_lr = 1e-3F;  // baseline: the value network's learning rate
  float gamma = 0.99F;
  float entropy_coef = 0.01F;  // A2C
  float value_coef = 0.5F;     // A2C
  float max_grad_norm = 0.5F;  // A2C; <= 0: no clipping
  bool normalize = true;       // returns (REINFORCE) or advantages (baseline, A2C)
  int32_t hidden = 64;
  uint64_t seed = 0;
  Precision precision = Precision::kF32;
  CartPoleParams env;  // CartPole-v1 unless a variant is asked for
  int64_t chunk_rows = 0;  // network pass size; 0 = the model's default for the device
  // Keep the networks' activations from acting for the update, which then skips its forward
  // pass (PolicyValueModel::reserve_record): a quarter less arithmetic per A2C step, for
  // Trainer::record_bytes of memory. Used when that is at most 2 GiB (CPU) or 8 GiB (GPU);
  // false: always run the forward pass again. The two can round differently in the last bits.
  bool reuse_activations = true;

  // The notebook's hyperparameters for an algorithm (one env, reward 0 on the terminating step,
  // 500-step cap; REINFORCE and baseline lr 1e-3, A2C lr 3e-4 and whole episodes).
  static TrainConfig notebook(Algorithm a);
  // Throws Error(kInvalidArgument) naming the field.
  void validate() const;
};

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
  int64_t update = 0;      // 1-based
  int64_t env_steps = 0;   // cumulative
  int64_t episodes = 0;    // cumulative
  int64_t rollout_steps = 0;  // T of this update
  EpisodeTally recent;     // the RecentEpisodes window after this update
  // Of the policy (or actor-critic) update. loss.entropy and value_loss are means per valid
  // sample for every algorithm (the REINFORCE losses themselves divide by episodes).
  UpdateStats loss;
  double value_loss = 0;
  bool finite = true;      // every loss and gradient norm finite
};

class Trainer {
 public:
  Trainer(Backend& backend, const TrainConfig& config);
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;
  ~Trainer();

  // Bytes of device memory that a configuration needs (environments, rollout, model), checked
  // before anything is allocated.
  static std::size_t bytes_required(const TrainConfig& config, const Backend& backend);
  // Bytes of recorded activations a configuration uses (0: it runs the forward pass again).
  static std::size_t record_bytes(const TrainConfig& config, DeviceKind device);

  UpdateRecord update();

  [[nodiscard]] const TrainConfig& config() const { return config_; }
  [[nodiscard]] int64_t updates() const { return updates_; }
  [[nodiscard]] int64_t env_steps() const { return env_steps_; }
  [[nodiscard]] const RecentEpisodes& recent() const { return recent_; }
  [[nodiscard]] PolicyValueModel& model() { return *model_; }
  [[nodiscard]] VecEnv& env() { return *env_; }
  // Whether the updates reuse the activations of acting (reuse_activations, and they fit).
  [[nodiscard]] bool reuses_activations() const { return reuse_; }

  // Checkpoints: everything needed to continue exactly (parameters, optimiser moments, the
  // environments' full state, counters, the recent-episode window), with the configuration as
  // JSON text. Written to a temporary file, flushed and renamed: a crash never leaves a broken
  // file behind. `extra` is the caller's own JSON text (e.g. wall time), returned by load.
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
  struct Rollout;
  int64_t collect(int64_t max_steps, bool whole_episodes);

  Backend* backend_;
  TrainConfig config_;
  std::unique_ptr<VecEnv> env_;
  std::unique_ptr<PolicyValueModel> model_;
  std::unique_ptr<RlOps> rl_;
  std::unique_ptr<Rollout> rollout_;
  RecentEpisodes recent_;
  int64_t updates_ = 0;
  int64_t env_steps_ = 0;
  int64_t episodes_ = 0;
  uint64_t act_steps_ = 0;  // the policy-sampling counter (Stream::kPolicyAction)
  bool reuse_ = false;
};

// The networks a configuration trains: separate policy and value networks (REINFORCE,
// baseline) or the shared-trunk actor-critic (A2C), with `hidden` units per layer.
ModelConfig model_config_for(const TrainConfig& c);

// The configuration as JSON text and back (unknown keys are refused by name).
std::string config_to_json(const TrainConfig& c);
TrainConfig config_from_json(const std::string& text, const TrainConfig& base = {});

}  // namespace batchpole
