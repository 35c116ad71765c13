// The policy and value networks of the notebook's agents, over the whole batch, on either
// device, with their losses, gradients and optimisers. This is the surface a trainer uses:
//
//   PolicyValueModel model(backend, ModelConfig::actor_critic(), options);
//   each environment step:  model.act(obs, step, actions, log_prob, values);   // no host sync
//   each update:            model.accumulate_gradients(rollout, loss);          // chunk by chunk
//                           model.step();                                       // clip + Adam
//                           UpdateStats s = model.stats();                      // one host sync
//
// Two architectures (PyTorch modules in the notebook):
//   kSeparate     PolicyNetwork 4-64-64-2 and ValueNetwork 4-64-64-1, ReLU, each with its own
//                 Adam (REINFORCE with baseline).
//   kActorCritic  a shared 4-64 ReLU layer, actor head 64-64 ReLU-2 and critic head
//                 64-64 ReLU-1, one Adam over all parameters (A2C).
//
// Memory is bounded by the chunk size, not by the batch: every pass runs through workspace for
// `chunk_rows` rows, so a rollout of a million environments times hundreds of steps is a loop
// over chunks whose gradients accumulate. memory() reports what is held.
//
// Parallel work: a batch is cut into `shards` contiguous parts of equal size (the last one
// shorter), each run chunk by chunk as one task of Backend::run_tasks, so on the CPU every
// thread runs whole parts through its own workspace. Gradients are summed within a part in row
// order and then over the parts in part order, so the result depends on the batch and the shard
// count, never on the thread count or on which thread ran which part. The GPU uses one part
// (its chunks already fill the device); the CPU default_shards.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "batchpole/blas.hpp"
#include "batchpole/buffer.hpp"
#include "batchpole/mlp.hpp"
#include "batchpole/nn_ops.hpp"
#include "batchpole/optim.hpp"

namespace batchpole {

enum class Architecture : uint8_t { kSeparate, kActorCritic };

struct ModelConfig {
  Architecture architecture = Architecture::kActorCritic;
  int32_t obs_dim = 4;
  int32_t num_actions = 2;
  std::vector<int32_t> shared_hidden = {64};  // actor-critic only: the shared (activated) layers
  std::vector<int32_t> policy_hidden = {64};  // hidden layers of the policy head or network
  std::vector<int32_t> value_hidden = {64};   // hidden layers of the value head or network
  Activation activation = Activation::kRelu;

  // The notebook's REINFORCE-with-baseline networks: obs-h-h-actions and obs-h-h-1.
  static ModelConfig separate(int32_t obs_dim = 4, int32_t num_actions = 2, int32_t hidden = 64);
  // The notebook's ActorCritic: obs-h shared, h-h-actions actor and h-h-1 critic.
  static ModelConfig actor_critic(int32_t obs_dim = 4, int32_t num_actions = 2,
                                  int32_t hidden = 64);

  void validate() const;  // throws Error(kInvalidArgument)
  [[nodiscard]] bool has_trunk() const { return architecture == Architecture::kActorCritic; }
  [[nodiscard]] MlpConfig trunk_config() const;  // valid when has_trunk()
  [[nodiscard]] MlpConfig policy_config() const;
  [[nodiscard]] MlpConfig value_config() const;
  [[nodiscard]] int64_t parameter_count() const;
};

struct ModelOptions {
  uint64_t seed = 0;       // initial parameters (Stream::kInit) and sampled actions (kPolicyAction)
  int64_t chunk_rows = 0;  // rows per pass; 0: default_chunk_rows(device)
  int32_t shards = 0;      // parts a batch is cut into (see above); 0: default_shards(device)
  bool allow_tf32 = false;  // cuBLAS TF32 math (BackendOptions::allow_tf32); FP32 otherwise
  AdamConfig adam;          // actor-critic: the optimiser; separate: the policy network's
  AdamConfig value_adam;    // separate: the value network's optimiser; unused otherwise
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
  ConstMatrix obs;                       // samples x obs_dim
  // The networks' activations for these rows were recorded by act(..., record_row) with rows
  // 0, n, 2n, ... (PolicyValueModel::reserve_record): backward reuses them and the forward pass
  // is not run again. Checked: the recording must cover the rows and the parameters must not
  // have changed since; obs must be what act() saw.
  bool recorded = false;
  const int32_t* actions = nullptr;      // samples, in [0, num_actions)
  const float* weights = nullptr;        // samples: returns or advantages
  const float* value_targets = nullptr;  // samples; nullptr: no value loss
  const uint8_t* mask = nullptr;         // samples, nonzero = valid; nullptr: all valid
  float count = 0.0f;  // C; <= 0: the number of valid samples (counted on the device)
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
};

struct MemoryReport {
  std::size_t parameters = 0;  // parameters and gradients
  std::size_t optimizer = 0;   // Adam moments
  std::size_t workspace = 0;   // activations and scratch for one chunk
  std::size_t record = 0;      // recorded activations of a rollout (reserve_record)
  int64_t chunk_rows = 0;
  [[nodiscard]] std::size_t total() const { return parameters + optimizer + workspace + record; }
};

class PolicyValueModel {
 public:
  // Throws Error(kOutOfMemory), before allocating, when the model and its chunk workspace do not
  // fit in the device's free memory.
  explicit PolicyValueModel(Backend& backend, const ModelConfig& config = {},
                            const ModelOptions& options = {});
  PolicyValueModel(const PolicyValueModel&) = delete;
  PolicyValueModel& operator=(const PolicyValueModel&) = delete;
  ~PolicyValueModel();

  static int64_t default_chunk_rows(DeviceKind kind);
  static int32_t default_shards(DeviceKind kind);
  // Rows in each shard but the last when `rows` are cut into at most `shards` parts.
  static int64_t shard_rows(int64_t rows, int32_t shards);
  // What a model takes whose backend has `workers` threads (one workspace each).
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
  void values(const ConstMatrix& obs, float* out);         // n
  void logits(const ConstMatrix& obs, float* out);         // n x num_actions
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
  // The same, left on the device: [sum w log pi, sum H, sum sq err, valid, C, grad norm, value
  // grad norm, 0], for trainers that log less often than they update.
  [[nodiscard]] const float* device_stats() const { return stats_.data(); }

  // ---- parameters ----
  [[nodiscard]] int64_t parameter_count() const { return config_.parameter_count(); }
  // Writable: counts as a change of the parameters (a recording made before is stale).
  [[nodiscard]] float* parameters() {
    ++params_version_;
    return params_.data();
  }
  [[nodiscard]] const float* gradients() const { return grads_.data(); }
  [[nodiscard]] std::vector<float> get_parameters() const { return params_.to_host(); }
  [[nodiscard]] std::vector<float> get_gradients() const { return grads_.to_host(); }
  void set_parameters(std::span<const float> host_params);
  // Where each network starts in the flat parameter (and gradient) vector: the trunk (actor-
  // critic only, else -1), the policy network or head, the value network or head. Each network
  // is laid out as Mlp documents.
  [[nodiscard]] int64_t trunk_offset() const { return config_.has_trunk() ? 0 : -1; }
  [[nodiscard]] int64_t policy_offset() const { return policy_offset_; }
  [[nodiscard]] int64_t value_offset() const { return value_offset_; }

  [[nodiscard]] const ModelConfig& config() const { return config_; }
  [[nodiscard]] const ModelOptions& options() const { return options_; }
  [[nodiscard]] int64_t chunk_rows() const { return chunk_rows_; }
  [[nodiscard]] int32_t shards() const { return shards_; }
  [[nodiscard]] MemoryReport memory() const;
  [[nodiscard]] std::size_t bytes() const { return memory().total(); }
  [[nodiscard]] Backend& backend() const { return *backend_; }
  [[nodiscard]] Blas& blas() const { return *blas_; }
  [[nodiscard]] NnOps& ops() const { return *ops_; }
  // Optimisers: one (actor-critic) or two (separate: 0 the policy's, 1 the value network's).
  [[nodiscard]] int optimizer_count() const { return static_cast<int>(adam_.size()); }
  [[nodiscard]] const Adam& optimizer(int index = 0) const { return *adam_.at(index); }
  [[nodiscard]] Adam& optimizer(int index = 0) { return *adam_.at(index); }
  using OptimizerState = Adam::State;  // for checkpoints
  [[nodiscard]] OptimizerState get_optimizer_state(int index) const;
  void set_optimizer_state(int index, const OptimizerState& state);

 private:
  struct Lane;       // one worker's networks (shared parameters, own activations) and scratch
  struct Partition;  // how a batch is cut into shards and chunks

  void check_obs(const char* call, const ConstMatrix& obs) const;
  [[nodiscard]] Partition partition(int64_t rows) const;
  // Runs body(lane, shard, chunk, first_row, first_chunk_of_shard) over every chunk of obs,
  // the shards in parallel as tasks.
  template <class Body>
  void for_each_chunk(const ConstMatrix& obs, Body body);
  // Where rows [row, row + rows) of network `net` (0 trunk, 1 policy, 2 value) are recorded.
  [[nodiscard]] LayerOutputs recorded(int net, int64_t row);
  [[nodiscard]] float* shard_gradients(int64_t shard);
  [[nodiscard]] float* shard_stats(int64_t shard);

  Backend* backend_;
  ModelConfig config_;
  ModelOptions options_;
  int64_t chunk_rows_;
  int32_t shards_;
  std::unique_ptr<Blas> blas_;
  std::unique_ptr<NnOps> ops_;
  Buffer<float> params_;
  Buffer<float> grads_;
  int64_t policy_offset_ = 0;
  int64_t value_offset_ = 0;
  std::vector<std::unique_ptr<Lane>> lanes_;  // one per backend thread
  std::vector<std::unique_ptr<Adam>> adam_;
  // With more than one shard: each shard's gradients and per-sample statistic sums, summed
  // into grads_ and stats_ after the tasks.
  Buffer<float> shard_grads_;
  Buffer<float> shard_stats_;
  Buffer<float> stats_;  // see device_stats()
  LossConfig last_loss_;
  // The recording: per network and layer a (record capacity x width) matrix in record_.
  Buffer<float> record_;
  int64_t record_capacity_ = 0;
  bool record_has_values_ = false;  // room for the value network's activations
  std::vector<std::vector<int64_t>> record_offsets_;  // [net][layer], floats into record_
  int64_t recorded_rows_ = 0;                         // rows [0, recorded_rows_) recorded ...
  bool recorded_values_ = false;                      // ... the value network's too ...
  uint64_t recorded_version_ = 0;                     // ... with the parameters of this version
  uint64_t params_version_ = 1;                       // changes whenever the parameters do
};

}  // namespace batchpole
