// What to train: the algorithm, its hyperparameters, the networks and the environment. The
// keys of `batchpole train --config FILE.json`, of summaries and of checkpoints, and the
// training flags of the command line, all come from train_config_fields().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "batchpole/core/fields.hpp"
#include "batchpole/device/device.hpp"
#include "batchpole/env/cartpole.hpp"

namespace batchpole {

enum class Algorithm : uint8_t { kReinforce, kBaseline, kA2C, kPpo, kDqn };
std::string to_string(Algorithm a);
Algorithm parse_algorithm(const std::string& s);  // throws Error(kInvalidArgument)
// The names parse_algorithm takes, in the order of the enum.
const std::vector<std::string>& algorithm_names();

// CartPole's two pushes, or a continuous force in [-1, 1] x force_mag (a Gaussian policy).
enum class ActionSpace : uint8_t { kDiscrete, kContinuous };
std::string to_string(ActionSpace a);
ActionSpace parse_action_space(const std::string& s);  // throws Error(kInvalidArgument)

struct TrainConfig {
  Algorithm algorithm = Algorithm::kA2C;
  // A2C defaults: what solved CartPole-v1 fastest on the 2-core CPU (BENCHMARKS.md).
  int64_t envs = 32;       // of each agent
  int64_t agents = 1;      // a population: agents trained at once, agent k with seed + k
  // Data-parallel training (one agent): the envs cut into `parts` contiguous parts of the
  // global env indices, each part's gradient and batch statistics computed on its own and
  // summed in part order (batchpole/rl/data_parallel.hpp); one process holds every part, or
  // each rank of `train --distributed` one. 1: the batch as one. envs must be a multiple.
  int32_t parts = 1;
  int32_t n_steps = 5;     // A2C: rollout length; 0 = whole episodes (the notebook's variant)
  float lr = 2e-3F;        // the policy's (or the actor-critic's) learning rate
  float value_lr = 1e-3F;  // baseline: the value network's learning rate
  float gamma = 0.99F;
  float entropy_coef = 0.01F;  // A2C
  float value_coef = 0.5F;     // A2C
  float max_grad_norm = 0.5F;  // A2C; <= 0: no clipping
  bool normalize = true;       // returns (REINFORCE) or advantages (baseline, A2C)
  int32_t hidden = 64;
  uint64_t seed = 0;
  Precision precision = Precision::kF32;
  CartPoleParams env;      // CartPole-v1 unless a variant is asked for
  int64_t chunk_rows = 0;  // network pass size; 0 = the device plan's
  // Keep the networks' activations from acting for the update, which then skips its forward
  // pass (PolicyValueModel::reserve_record): a quarter less arithmetic per A2C step, for
  // Trainer::record_bytes of memory. Used when that fits the device plan's record budget;
  // false: always run the forward pass again. The two can round differently in the last bits.
  bool reuse_activations = true;

  // Advantages: GAE's lambda (A2C and PPO). 1 gives the n-step returns minus V(s), computed as
  // A2C always has (A2C's default); PPO's default is 0.95.
  float gae_lambda = 1.0F;
  // PPO (Schulman et al. 2017): the clip range of the probability ratio, epochs over each
  // rollout, minibatches per epoch, whether the value loss is clipped too, the KL divergence
  // at which an update stops its epochs early (0 = never), and the env steps over which the
  // learning rate falls linearly to 0 (0 = constant; any algorithm).
  float clip = 0.2F;
  int32_t epochs = 4;
  int32_t minibatches = 4;
  bool clip_value_loss = false;
  float target_kl = 0.0F;
  int64_t lr_anneal_steps = 0;

  // Continuous actions (REINFORCE, baseline, A2C, PPO): the policy is a Gaussian whose mean
  // comes from the network and whose log-std is a learned vector (the notebook's
  // ContinuousPolicyNetwork) or, with state_dependent_std, a second output of the network.
  ActionSpace actions = ActionSpace::kDiscrete;
  bool state_dependent_std = false;
  float log_std_init = 0.0F;

  // DQN (Mnih et al. 2015, with van Hasselt's double-DQN target): an update is n_steps
  // epsilon-greedy steps of every env stored in the replay buffer, then gradient_steps Adam
  // steps on minibatches of batch_size transitions drawn uniformly from it (once it has
  // stored learning_starts in all), the Huber loss of the TD error, gradients clipped to
  // max_grad_norm. The target network follows every target_update gradient steps: a copy (tau 1) or
  // tau * online + (1 - tau) * target. Epsilon falls linearly from epsilon_start to
  // epsilon_end over epsilon_decay_steps env steps.
  // The defaults are CleanRL's for CartPole, batched (TrainConfig::defaults sets the rest), but
  // for the Huber threshold: delta 1 made Q diverge in every seed (EXPERIMENTS.md).
  int64_t buffer_size = 10'000;
  int32_t batch_size = 128;
  int64_t learning_starts = 10'000;
  int32_t gradient_steps = 8;
  int64_t target_update = 50;
  float tau = 1.0F;
  float epsilon_start = 1.0F;
  float epsilon_end = 0.05F;
  int64_t epsilon_decay_steps = 250'000;
  bool double_dqn = true;
  float huber_delta = 100.0F;

  // The defaults of an algorithm on a device: its learning rate (the notebook's 1e-3 for
  // REINFORCE and baseline), the plan's batch size, and PPO's large-batch recipe for it.
  static TrainConfig defaults(Algorithm a, const DevicePlan& plan);
  // PPO's recipe for `envs` environments (README, "PPO at any batch size"): the settings that
  // scale with the batch (rollout length, minibatches, learning rate), each unless `keep`
  // names its key (keys the user gave).
  void apply_ppo_recipe(const std::vector<std::string>& keep = {});
  // The notebook's hyperparameters for an algorithm (one env, reward 0 on the terminating step,
  // 500-step cap; REINFORCE and baseline lr 1e-3, A2C lr 3e-4 and whole episodes).
  static TrainConfig notebook(Algorithm a);
  // Throws Error(kInvalidArgument) naming the field. (Each field's own range is checked when
  // it is set through the table; this adds what depends on several fields.)
  void validate() const;
};

// The fields of TrainConfig, in the order of the JSON text (config_to_json).
const std::vector<Field<TrainConfig>>& train_config_fields();

}  // namespace batchpole
