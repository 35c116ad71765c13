// The policy and value networks of the notebook's agents, over the whole batch, on either
// device, with their losses, gradients and optimisers. This is the surface a trainer uses:
//
//   PolicyValueModel model(device, ModelConfig::actor_critic(), options);
//   each environment step:  model.act(obs, step, actions, log_prob, values);   // no host sync
//   each update:            model.accumulate_gradients(rollout, loss);          // chunk by chunk
//                           model.step();                                       // clip + Adam
//                           UpdateStats s = model.stats();                      // one host sync
//
// The networks are those of ModelConfig (model_config.hpp). Memory is bounded by the chunk
// size, not by the batch: every pass runs through workspace for `chunk_rows` rows, so a rollout
// of a million environments times hundreds of steps is a loop over chunks whose gradients
// accumulate. The batch is cut into shards run in parallel (ShardedRunner); chunk size and
// shard count come from the device's plan unless the options set them.
//
// A population (ModelOptions::agents > 1) is many such models in one: agent k has its own
// parameters (initialised from its own seed exactly as a model of its own), Adam moments,
// sampling stream and statistics, and every pass takes each agent's rows in an agent-major
// layout: agent k's rows of a call start k * agent_stride rows into every per-row array, and
// obs.rows counts one agent's rows. Where the plan says so (the GPU) all agents run each layer
// as one strided-batched gemm; otherwise each agent's passes are tasks of their own and compute
// exactly what the agent alone would.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/adam.hpp"
#include "batchpole/nn/mlp.hpp"
#include "batchpole/nn/model_config.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "batchpole/nn/sharded_runner.hpp"

namespace batchpole {

class ActivationRecord;

struct ModelOptions {
  uint64_t seed = 0;       // initial parameters (Stream::kInit) and sampled actions (kPolicyAction)
  int64_t chunk_rows = 0;  // rows per pass; 0: the device plan's
  int32_t shards = 0;      // shards a batch is cut into; 0: the device plan's
  AdamConfig adam;         // actor-critic: the optimiser; separate: the policy network's
  AdamConfig value_adam;   // separate: the value network's optimiser; unused otherwise
  // The element operations to use instead of the device's (benchmarks run the BLAS calls of a
  // pass alone with operations that do nothing). Must outlive the model.
  NnOps* ops = nullptr;
  // A population: `agents` agents, agent k seeded with seeds[k] (empty: `seed` for one agent).
  int64_t agents = 1;
  std::vector<uint64_t> seeds;
  // Data-parallel parts (rl/data_parallel.hpp): the agents are parts of one batch whose row j
  // of agent k is the batch's env first_env + k * rows + j, and actions are drawn keyed by that
  // global index (every part with the same seed).
  bool global_envs = false;
  uint32_t first_env = 0;
};

// Coefficients of the loss whose gradient accumulate_gradients takes:
//   L = -(sum_valid w log pi(a|s)) / C - entropy_coef * (sum_valid H(pi(.|s))) / C
//       + value_coef * (sum_valid (V(s) - target)^2) / C
// With separate networks the value term reaches only the value network, the rest only the
// policy network (the notebook's REINFORCE with baseline: value_coef = 1). A2C: 0.5 and 0.01.
struct LossConfig {
  float entropy_coef = 0.0f;
  float value_coef = 0.5f;
};

// A stored rollout, all in device memory, `samples = obs.rows` rows; a T x N rollout is T * N
// rows (row t * N + env). Masked samples contribute nothing, but their observations must be
// finite (a NaN would reach the weight gradients through the gemm); their actions, weights and
// targets may be anything.
struct RolloutView {
  ConstMatrix obs;  // samples x obs_dim
  // The networks' activations for these rows were recorded by act(..., record_row) with rows
  // 0, n, 2n, ... (reserve_record): backward reuses them and the forward pass is not run
  // again. Checked: the recording must cover the rows and the parameters must not have changed
  // since; obs must be what act() saw.
  bool recorded = false;
  const int32_t* actions = nullptr;      // samples, in [0, num_actions)
  const float* weights = nullptr;        // samples: returns or advantages
  const float* value_targets = nullptr;  // samples; nullptr: no value loss
  const uint8_t* mask = nullptr;         // samples, nonzero = valid; nullptr: all valid
  float count = 0.0f;  // C; <= 0: the number of valid samples (counted on the device)
  // PPO: the log-probabilities of the acting policy turn the policy loss into the clipped
  // surrogate with range `clip` (weights are then the advantages); old values, where given,
  // clip the value loss to old_value +- value_clip.
  const float* old_log_prob = nullptr;  // samples, or nullptr
  float clip = 0.2f;
  const float* old_values = nullptr;  // samples, or nullptr
  float value_clip = 0.2f;
  // The Gaussian head: the actions taken (samples x num_actions floats) instead of `actions`.
  const float* continuous_actions = nullptr;
  // DQN (kQNetwork): the TD targets, fixed; the loss is then the Huber loss (delta huber_delta)
  // of Q(s, a) against them, summed over the valid samples and divided by C, instead of the
  // policy gradient (weights unused; its statistic is the value loss).
  const float* q_targets = nullptr;
  float huber_delta = 1.0f;
  // A population: agent k's rows start k * agent_stride rows into every per-row array (obs.rows
  // rows each); agent_rows[k], where given, is how many of them are agent k's samples (the rest
  // must be masked): the agents' own passes run exactly those, batched agents all obs.rows.
  int64_t agent_stride = 0;
  std::span<const int64_t> agent_rows;
  // A population whose agents weigh the value loss differently: LossConfig::value_coef of
  // each (empty: the loss's for all).
  std::span<const float> value_coefs;
};

// Scalars of the last update, read back once per update (stats()). Sums are over the valid
// samples of every accumulate_gradients call since the last kOverwrite; C is the last call's.
struct UpdateStats {
  double policy_loss = 0;  // -(sum w log pi) / C
  double entropy = 0;      // (sum H) / C: the mean entropy when C is the valid count
  double value_loss = 0;   // (sum (V - target)^2) / C, before value_coef
  double total_loss = 0;   // policy_loss - entropy_coef * entropy + value_coef * value_loss
  double valid_samples = 0;
  double divisor = 0;          // C
  double grad_norm = 0;        // before clipping, at the last step(): all parameters
                               // (actor-critic) or the policy network's (separate)
  double value_grad_norm = 0;  // separate: the value network's; 0 otherwise
  // The clipped surrogate (PPO) only: means over the valid samples.
  double approx_kl = 0;      // of the new policy from the acting one, (r - 1) - log r
  double clip_fraction = 0;  // share of samples whose ratio was clipped
};

// Slots of each agent's device statistics: the per-sample sums of nn_elements.hpp
// (kStatWeightedLogProb .. kStatClipped), then these.
inline constexpr int64_t kSlotDivisor = kStatColumnsClipped;  // C
inline constexpr int64_t kSlotGradNorm = kStatColumnsClipped + 1;
inline constexpr int64_t kSlotValueGradNorm = kStatColumnsClipped + 2;
inline constexpr int64_t kStatSlots = kStatColumnsClipped + 4;

struct MemoryReport {
  std::size_t parameters = 0;  // parameters and gradients
  std::size_t optimizer = 0;   // Adam moments
  std::size_t workspace = 0;   // activations and scratch for one chunk per worker, shard sums
  std::size_t record = 0;      // recorded activations of a rollout (reserve_record)
  int64_t chunk_rows = 0;
  [[nodiscard]] std::size_t total() const { return parameters + optimizer + workspace + record; }
};

class PolicyValueModel {
 public:
  explicit PolicyValueModel(Device& device, const ModelConfig& config = {},
                            const ModelOptions& options = {});
  PolicyValueModel(const PolicyValueModel&) = delete;
  PolicyValueModel& operator=(const PolicyValueModel&) = delete;
  ~PolicyValueModel();

  // What a model takes whose device has `workers` threads (one workspace each).
  static MemoryReport memory_required(const ModelConfig& config, int64_t chunk_rows,
                                      int workers = 1, int32_t shards = 1, int64_t agents = 1,
                                      bool batched = false);

  // ---- acting: any number of rows >= 1, chunked inside; device pointers; never syncs ----
  // actions[i] ~ pi(.|obs_i), drawn from philox_draw(seed, kPolicyAction, i, step): the same
  // on both devices for the same logits. log_prob (log pi(actions[i])) and values (V(obs_i)),
  // n floats each, are written where not null.
  // record_row >= 0: also keep every layer's output for rows [record_row, record_row + n) of
  // the recording (reserve_record), for accumulate_gradients on a RolloutView marked recorded.
  // A recording starts at row 0 and continues where the last act() ended.
  // A population: agent k's rows at k * agent_stride in obs and in the outputs alike, drawn at
  // step steps[k] + step (set_steps); inactive agents are left out.
  void act(const ConstMatrix& obs, uint64_t step, int32_t* actions, float* log_prob = nullptr,
           float* values = nullptr, int64_t record_row = -1, int64_t agent_stride = 0);
  // The Gaussian head: actions (n x num_actions floats) a = mu + sigma * eps, eps drawn from
  // policy_normal(seed, i, step, k); otherwise as act().
  void act_continuous(const ConstMatrix& obs, uint64_t step, float* actions,
                      float* log_prob = nullptr, float* values = nullptr, int64_t record_row = -1,
                      int64_t agent_stride = 0);
  // Epsilon-greedy on the policy network's outputs (kQNetwork: the Q-values), drawn from
  // (seed, kExplore, i, step), agent k exploring with epsilons[k] (one per agent).
  void act_epsilon_greedy(const ConstMatrix& obs, uint64_t step, std::span<const float> epsilons,
                          int32_t* actions, int64_t agent_stride = 0);
  // A population: agent k's rows at k * in_stride in obs, its values at k * out_stride in out,
  // agent_rows[k] of them where given (else obs.rows).
  void values(const ConstMatrix& obs, float* out, int64_t in_stride = 0, int64_t out_stride = 0,
              std::span<const int64_t> agent_rows = {});
  // The policy network's outputs, n x config().policy_outputs() (the logits, the Gaussian's
  // means and log-stds, or a Q-network's Q-values); a population's strides as values' (rows).
  void logits(const ConstMatrix& obs, float* out, int64_t in_stride = 0, int64_t out_stride = 0);
  // One agent only (evaluation, parity checks):
  void probabilities(const ConstMatrix& obs, float* out);  // n x num_actions

  // ---- recording what acting computed, so that learning skips a forward pass ----
  // Room to record `rows` rows of every agent (grows, never shrinks): record_bytes_per_row(
  // config, values) each. values = false leaves out the value network (acting without values,
  // as REINFORCE). Batched agents do not record (the update runs the forward pass again).
  void reserve_record(int64_t rows, bool values = true);
  static std::size_t record_bytes_per_row(const ModelConfig& config, bool values = true);

  // ---- learning ----
  // Adds the gradient of the loss over `batch` (processed chunk by chunk). kOverwrite starts
  // the gradients and the statistics afresh; kAccumulate adds to them (several rollouts in one
  // update). Never syncs.
  void accumulate_gradients(const RolloutView& batch, const LossConfig& loss,
                            GradientMode mode = GradientMode::kOverwrite);
  // Clips (per optimiser, when its max_grad_norm > 0) and applies Adam. Never syncs.
  void step();
  // Synchronises once and returns the statistics of the update (agent 0's).
  [[nodiscard]] UpdateStats stats() const;
  // Every agent's, with one synchronisation (inactive agents' are stale).
  [[nodiscard]] std::vector<UpdateStats> agent_stats() const;
  // The same in two halves, for a caller that reads them with its own copies in one wait:
  // the copy that fills `slots`, then the statistics from what it holds.
  [[nodiscard]] Device::HostCopy stats_copy(std::vector<float>& slots) const;
  [[nodiscard]] std::vector<UpdateStats> agent_stats_from(const std::vector<float>& slots) const;

  // ---- data-parallel parts (rl/data_parallel.hpp): the agents are parts of one batch ----
  // Floats of one part's block: its gradient, then its loss sums (the statistic slots that
  // accumulate_gradients sums over samples).
  [[nodiscard]] int64_t part_block() const { return parameter_count_ + kStatColumnsClipped; }
  // Every agent's block, agent after agent, copied to the host (one wait).
  [[nodiscard]] std::vector<float> part_blocks() const;
  // Writes one block (the sum of all parts' in part order) as every agent's gradient and loss
  // sums, so that each takes the same step from it.
  void set_part_blocks(std::span<const float> sum);

  // ---- a population ----
  [[nodiscard]] int64_t agents() const { return agents_; }
  [[nodiscard]] const std::vector<uint64_t>& seeds() const { return seeds_; }
  // Which agents act and learn (all, after construction). An inactive agent's rows are not
  // computed (or, batched, computed and ignored) and its parameters and moments stay as they
  // are.
  void set_active(std::span<const uint8_t> active);
  [[nodiscard]] const std::vector<uint8_t>& active() const { return active_; }
  // Each agent's sampling counter: act(..., step, ...) draws agent k's actions at step
  // steps[k] + step (all 0 after construction).
  void set_steps(std::span<const uint64_t> steps);
  // An update begins: its optimiser steps are numbered from the first again (Adam::begin_update).
  void begin_update();
  // Whether the agents run as one batch (the plan's batch_agents, with more than one agent).
  [[nodiscard]] bool batched() const { return batched_; }

  // ---- parameters ----
  // One agent's parameters; a population's agents follow each other, agent k's at
  // k * parameter_count() in parameters(), gradients(), get_parameters and set_parameters.
  [[nodiscard]] int64_t parameter_count() const { return parameter_count_; }
  // Writable: counts as a change of the parameters (a recording made before is stale).
  [[nodiscard]] float* parameters();
  [[nodiscard]] const float* gradients() const { return grads_.data(); }
  [[nodiscard]] std::vector<float> get_parameters() const { return params_.to_host(); }
  [[nodiscard]] std::vector<float> get_gradients() const;
  void set_parameters(std::span<const float> host_params);
  // Where each network starts in the flat parameter (and gradient) vector: the trunk (actor-
  // critic only, else -1), the policy network or head, the value network or head. Each network
  // is laid out as Mlp documents.
  [[nodiscard]] int64_t trunk_offset() const { return config_.has_trunk() ? 0 : -1; }
  [[nodiscard]] int64_t policy_offset() const { return policy_offset_; }
  [[nodiscard]] int64_t value_offset() const { return value_offset_; }

  [[nodiscard]] const ModelConfig& config() const { return config_; }
  [[nodiscard]] const ModelOptions& options() const { return options_; }
  [[nodiscard]] int64_t chunk_rows() const { return runner_.chunk_rows(); }
  [[nodiscard]] int32_t shards() const { return runner_.shards(); }
  [[nodiscard]] MemoryReport memory() const;
  [[nodiscard]] std::size_t bytes() const { return memory().total(); }
  [[nodiscard]] Device& device() const { return *device_; }
  [[nodiscard]] Blas& blas() const { return device_->blas(); }
  [[nodiscard]] NnOps& ops() const { return *ops_; }
  // Optimisers: one (actor-critic) or two (separate: 0 the policy's, 1 the value network's).
  [[nodiscard]] int optimizer_count() const { return static_cast<int>(adam_.size()); }
  [[nodiscard]] const Adam& optimizer(int index = 0) const { return *adam_.at(index); }
  [[nodiscard]] Adam& optimizer(int index = 0) { return *adam_.at(index); }
  using OptimizerState = Adam::State;  // for checkpoints
  [[nodiscard]] OptimizerState get_optimizer_state(int index, int64_t agent = 0) const;
  void set_optimizer_state(int index, const OptimizerState& state, int64_t agent = 0);

 private:
  struct Workspace;  // one worker's networks (shared parameters, own activations) and scratch
  struct Acc {       // where a pass accumulates: gradients and per-sample statistic sums
    float* grads;
    float* stats;
  };

  void check_obs(const char* call, const ConstMatrix& obs) const;
  // Runs body(workspace, agent, shard, first_row, rows, first_chunk_of_shard) over every chunk
  // of the active agents' rows (rows_of(agent) each), the workspace bound to the agent's
  // networks.
  template <class RowsOf, class Body>
  void for_each_chunk(RowsOf rows_of, Body body);
  // act(), act_continuous() and act_epsilon_greedy(): the policy network over every active
  // agent's rows (batched: over all agents at once), with sample(head, rows, at, key, out,
  // agent) turning `rows` rows of its outputs into actions written from row `at` as `out` lays
  // them out, drawn with `key`; agent is the agent of a pass of its own, -1 for batched agents.
  template <class Sample>
  void act_chunks(const char* call, const ConstMatrix& obs, uint64_t step, float* values,
                  int64_t record_row, int64_t agent_stride, Sample sample);
  // The gradient of the head's loss (policy gradient or clipped surrogate, categorical or
  // Gaussian, or the Huber TD loss) for `rows` rows of head outputs into w.d_logits, with the
  // statistics into w.sample_stats; the batch's per-row inputs from row `at`, laid out as `in`.
  void head_loss_grad(Workspace& w, const RolloutView& batch, const LossConfig& loss,
                      const float* head, int64_t rows, int64_t at, const AgentRows& in,
                      const float* count, int32_t stat_columns);
  // The Gaussian head with a learned log-std vector: zero every agent's gradients of the weights
  // that are held at zero (the log-std units' inputs).
  void zero_pinned_gradients();
  // The features the heads read: the trunk's output (in `into` where given), or x itself.
  ConstMatrix features(Workspace& w, const ConstMatrix& x, const LayerOutputs* into = nullptr);
  [[nodiscard]] Acc acc_for(int64_t agent, int64_t shard);
  [[nodiscard]] float* divisors() { return stats_.data() + agents_ * kStatSlots; }
  void accumulate_batched(const RolloutView& batch, const LossConfig& loss, GradientMode mode);
  [[nodiscard]] UpdateStats stats_from(const float* slots, float divisor, int64_t agent) const;

  Device* device_;
  ModelConfig config_;
  ModelOptions options_;
  NnOps* ops_;
  int64_t parameter_count_;
  int64_t agents_;
  bool batched_;
  ShardedRunner runner_;
  Buffer<float> params_;  // agents x parameter_count
  Buffer<float> grads_;   // agents x parameter_count
  // agents x kStatSlots, then one loss divisor per agent. The shards accumulate gradients and
  // the kStatColumnsClipped sums in blocks of parameter_count + kStatColumnsClipped floats.
  Buffer<float> stats_;
  int64_t policy_offset_ = 0;
  int64_t value_offset_ = 0;
  std::vector<std::unique_ptr<Workspace>> workspaces_;  // one per device thread (batched: one)
  std::vector<std::unique_ptr<Adam>> adam_;
  LossConfig last_loss_;
  std::vector<float> last_value_coefs_;  // the last batch's per-agent value_coef, if any
  bool last_clipped_ = false;            // the last loss was the clipped surrogate
  bool value_grads_written_ = false;
  std::unique_ptr<ActivationRecord> record_;
  uint64_t params_version_ = 1;  // changes whenever the parameters do
  // The population: seeds, active flags, sampling counters (host, and device where batched
  // kernels read them), the active agents' indices, and per-agent value coefficients.
  std::vector<uint64_t> seeds_;
  std::vector<uint8_t> active_;
  std::vector<uint64_t> steps_;
  std::vector<int64_t> active_list_;
  Buffer<uint64_t> seeds_device_;
  Buffer<uint8_t> active_device_;
  Buffer<uint64_t> steps_device_;
  Buffer<float> value_coefs_device_;
  // act_epsilon_greedy's epsilons in device memory, one per agent a step (batched, or where
  // the device records updates).
  ParameterSlots<float> epsilons_device_;
};

}  // namespace batchpole
