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

// Slots of the device statistics (device_stats()): the per-sample sums of nn_elements.hpp
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
                                      int workers = 1, int32_t shards = 1);

  // ---- acting: any number of rows >= 1, chunked inside; device pointers; never syncs ----
  // actions[i] ~ pi(.|obs_i), drawn from philox_draw(seed, kPolicyAction, i, step): the same
  // on both devices for the same logits. log_prob (log pi(actions[i])) and values (V(obs_i)),
  // n floats each, are written where not null.
  // record_row >= 0: also keep every layer's output for rows [record_row, record_row + n) of
  // the recording (reserve_record), for accumulate_gradients on a RolloutView marked recorded.
  // A recording starts at row 0 and continues where the last act() ended.
  void act(const ConstMatrix& obs, uint64_t step, int32_t* actions, float* log_prob = nullptr,
           float* values = nullptr, int64_t record_row = -1);
  // The Gaussian head: actions (n x num_actions floats) a = mu + sigma * eps, eps drawn from
  // policy_normal(seed, i, step, k); otherwise as act().
  void act_continuous(const ConstMatrix& obs, uint64_t step, float* actions,
                      float* log_prob = nullptr, float* values = nullptr, int64_t record_row = -1);
  // Epsilon-greedy on the policy network's outputs (kQNetwork: the Q-values), drawn from
  // (seed, kExplore, i, step).
  void act_epsilon_greedy(const ConstMatrix& obs, uint64_t step, float epsilon, int32_t* actions);
  void values(const ConstMatrix& obs, float* out);         // n
  void logits(const ConstMatrix& obs, float* out);         // n x config().policy_outputs()
  void probabilities(const ConstMatrix& obs, float* out);  // n x num_actions

  // ---- recording what acting computed, so that learning skips a forward pass ----
  // Room to record `rows` rows (grows, never shrinks): record_bytes_per_row(config, values)
  // each. values = false leaves out the value network (acting without values, as REINFORCE).
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
  // Synchronises once and returns the statistics of the update.
  [[nodiscard]] UpdateStats stats() const;
  // The same, left on the device (kStatSlots floats, the slots above), for trainers that read
  // them together with their own statistics.
  [[nodiscard]] const float* device_stats() const { return acc_.data() + parameter_count(); }
  // Turns kStatSlots floats read from device_stats() into the statistics.
  [[nodiscard]] UpdateStats stats_from(const float* host_slots) const;

  // ---- parameters ----
  [[nodiscard]] int64_t parameter_count() const { return parameter_count_; }
  // Writable: counts as a change of the parameters (a recording made before is stale).
  [[nodiscard]] float* parameters();
  [[nodiscard]] const float* gradients() const { return acc_.data(); }
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
  [[nodiscard]] OptimizerState get_optimizer_state(int index) const;
  void set_optimizer_state(int index, const OptimizerState& state);

 private:
  struct Workspace;  // one worker's networks (shared parameters, own activations) and scratch

  void check_obs(const char* call, const ConstMatrix& obs) const;
  // act() and act_continuous(): the passes, with `sample` turning a chunk's policy outputs into
  // actions.
  template <class Sample>
  void act_chunks(const char* call, const ConstMatrix& obs, float* values, int64_t record_row,
                  Sample sample);
  // The Gaussian head with a learned log-std vector: zero the gradients of the weights that are
  // held at zero (the log-std units' inputs) in `grads`.
  void zero_pinned_gradients(float* grads);
  // Runs body(workspace, shard, chunk, first_row, first_chunk_of_shard) over every chunk of obs.
  template <class Body>
  void for_each_chunk(const ConstMatrix& obs, Body body);
  // The features the heads read: the trunk's output (in `into` where given), or x itself.
  ConstMatrix features(Workspace& w, const ConstMatrix& x, const LayerOutputs* into = nullptr);

  Device* device_;
  ModelConfig config_;
  ModelOptions options_;
  NnOps* ops_;
  int64_t parameter_count_;
  ShardedRunner runner_;
  Buffer<float> params_;
  // The accumulators: the gradients (parameter_count floats), then kStatSlots statistics. The
  // shards accumulate gradients and the kStatColumnsClipped sums in blocks of the same layout.
  Buffer<float> acc_;
  int64_t policy_offset_ = 0;
  int64_t value_offset_ = 0;
  std::vector<std::unique_ptr<Workspace>> workspaces_;  // one per device thread
  std::vector<std::unique_ptr<Adam>> adam_;
  LossConfig last_loss_;
  bool last_clipped_ = false;  // the last loss was the clipped surrogate
  std::unique_ptr<ActivationRecord> record_;
  uint64_t params_version_ = 1;  // changes whenever the parameters do
};

}  // namespace batchpole
