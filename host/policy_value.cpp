#include "batchpole/policy_value.hpp"

#include <algorithm>
#include <array>
#include <string>

namespace batchpole {

namespace {

// Slots of the device statistics vector (device_stats()).
constexpr int64_t kSlotDivisor = kStatColumns;  // C
constexpr int64_t kSlotGradNorm = kStatColumns + 1;
constexpr int64_t kSlotValueGradNorm = kStatColumns + 2;
constexpr int64_t kStatSlots = kStatColumns + 4;

// Rows per pass. CPU: a chunk runs on one core (parts of the batch run in parallel, see below);
// measured on 2 cores, A2C training at 4096 envs, chunks of 256 to 4096 rows all ran at
// 0.9-1.2M env steps/s, within the noise of each other. (Before the parts, when OpenBLAS
// threaded each call, 2048 was the best: 85% of the sgemm rate against 66% at 4096.) GPU: big
// enough to fill an H100.
constexpr int64_t kCpuChunkRows = 2048;
constexpr int64_t kGpuChunkRows = 262144;
// Parts a CPU batch is cut into: enough to keep 16 threads busy and to balance 2 or 3; each
// costs a copy of the gradients (35 KiB for the notebook's networks) and one sum per update.
constexpr int32_t kCpuShards = 16;
// A floor on the rows of a part, so that small batches are not cut into tasks of a few rows
// (a guess, not tuned).
constexpr int64_t kMinShardRows = 64;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::vector<int32_t> concat(int32_t first, const std::vector<int32_t>& mid, int32_t last) {
  std::vector<int32_t> v{first};
  v.insert(v.end(), mid.begin(), mid.end());
  v.push_back(last);
  return v;
}

struct ScratchLayout {
  int64_t d_logits = 0, d_values = 0, d_features = 0, stats = 0, ones = 0, total = 0;
};

ScratchLayout scratch_layout(const ModelConfig& c, int64_t rows) {
  ScratchLayout s;
  int64_t at = 0;
  s.d_logits = at;
  at += rows * c.num_actions;
  s.d_values = at;
  at += rows;
  s.d_features = at;
  at += c.has_trunk() ? rows * c.shared_hidden.back() : 0;
  s.stats = at;
  at += rows * kStatColumns;
  s.ones = at;
  s.total = at + rows;
  return s;
}

std::string mib(std::size_t bytes) {
  std::ostringstream os;
  os.precision(1);
  os << std::fixed << static_cast<double>(bytes) / (1024.0 * 1024.0) << " MiB";
  return os.str();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ModelConfig

ModelConfig ModelConfig::separate(int32_t obs_dim, int32_t num_actions, int32_t hidden) {
  ModelConfig c;
  c.architecture = Architecture::kSeparate;
  c.obs_dim = obs_dim;
  c.num_actions = num_actions;
  c.shared_hidden = {};
  c.policy_hidden = {hidden, hidden};
  c.value_hidden = {hidden, hidden};
  return c;
}

ModelConfig ModelConfig::actor_critic(int32_t obs_dim, int32_t num_actions, int32_t hidden) {
  ModelConfig c;
  c.architecture = Architecture::kActorCritic;
  c.obs_dim = obs_dim;
  c.num_actions = num_actions;
  c.shared_hidden = {hidden};
  c.policy_hidden = {hidden};
  c.value_hidden = {hidden};
  return c;
}

void ModelConfig::validate() const {
  BP_CHECK_ARG(obs_dim >= 1, "ModelConfig: obs_dim must be positive, got " << obs_dim);
  BP_CHECK_ARG(
      num_actions >= 1 && num_actions <= kMaxActions,
      "ModelConfig: num_actions is " << num_actions << ", supported are 1 to " << kMaxActions);
  if (architecture == Architecture::kActorCritic) {
    BP_CHECK_ARG(!shared_hidden.empty(),
                 "ModelConfig: the actor-critic needs at least one shared layer");
  } else {
    BP_CHECK_ARG(shared_hidden.empty(), "ModelConfig: separate networks share no layer, but "
                                            << shared_hidden.size() << " shared layers were given");
  }
  if (has_trunk()) trunk_config().validate();
  policy_config().validate();
  value_config().validate();
}

MlpConfig ModelConfig::trunk_config() const {
  MlpConfig m;
  m.sizes = {obs_dim};
  m.sizes.insert(m.sizes.end(), shared_hidden.begin(), shared_hidden.end());
  m.hidden_activation = activation;
  m.output_activation = activation;  // the trunk's output feeds both heads, activated
  return m;
}

MlpConfig ModelConfig::policy_config() const {
  const int32_t in = has_trunk() ? shared_hidden.back() : obs_dim;
  return {concat(in, policy_hidden, num_actions), activation, Activation::kIdentity};
}

MlpConfig ModelConfig::value_config() const {
  const int32_t in = has_trunk() ? shared_hidden.back() : obs_dim;
  return {concat(in, value_hidden, 1), activation, Activation::kIdentity};
}

int64_t ModelConfig::parameter_count() const {
  return (has_trunk() ? trunk_config().parameter_count() : 0) + policy_config().parameter_count() +
         value_config().parameter_count();
}

// ---------------------------------------------------------------------------------------------
// PolicyValueModel

// ---------------------------------------------------------------------------------------------
// Lanes and partitions

struct PolicyValueModel::Lane {
  std::unique_ptr<Mlp> trunk;  // actor-critic only
  std::unique_ptr<Mlp> policy;
  std::unique_ptr<Mlp> value;
  Buffer<float> scratch;  // d_logits, d_values, d_features, per-sample stats, ones
  float* d_logits = nullptr;
  float* d_values = nullptr;
  float* d_features = nullptr;
  float* sample_stats = nullptr;
  float* ones = nullptr;

  // Workspace bytes of one lane.
  static std::size_t bytes(const ModelConfig& c, int64_t rows) {
    std::size_t w = Mlp::workspace_bytes(c.policy_config(), rows) +
                    Mlp::workspace_bytes(c.value_config(), rows);
    if (c.has_trunk()) w += Mlp::workspace_bytes(c.trunk_config(), rows);
    return w + static_cast<std::size_t>(scratch_layout(c, rows).total) * sizeof(float);
  }
  [[nodiscard]] std::size_t bytes() const {
    return policy->workspace_bytes() + value->workspace_bytes() +
           (trunk ? trunk->workspace_bytes() : 0) + scratch.bytes();
  }
  // The trunk's output (in `into` where given), or x itself.
  ConstMatrix features(const ConstMatrix& x, const LayerOutputs* into = nullptr) {
    if (!trunk) return x;
    return {trunk->forward(x, into), x.rows, trunk->config().outputs()};
  }
  void bind_gradients(float* grads, int64_t policy_offset, int64_t value_offset) {
    if (trunk) trunk->bind_gradients(grads);
    policy->bind_gradients(grads + policy_offset);
    value->bind_gradients(grads + value_offset);
  }
};

struct PolicyValueModel::Partition {
  int64_t shard_rows = 0;  // rows of every shard but the last
  int64_t shards = 0;      // shards that hold rows (<= shards_)
};

int64_t PolicyValueModel::shard_rows(int64_t rows, int32_t shards) {
  return shards == 1 ? rows : std::max(kMinShardRows, ceil_div(rows, shards));
}

PolicyValueModel::Partition PolicyValueModel::partition(int64_t rows) const {
  Partition p;
  p.shard_rows = shard_rows(rows, shards_);
  p.shards = ceil_div(rows, p.shard_rows);
  return p;
}

template <class Body>
void PolicyValueModel::for_each_chunk(const ConstMatrix& obs, Body body) {
  const Partition p = partition(obs.rows);
  backend_->run_tasks(p.shards, [&](int64_t shard, int worker) {
    Lane& lane = *lanes_.at(static_cast<std::size_t>(worker));
    const int64_t first = shard * p.shard_rows;
    const int64_t end = std::min(obs.rows, first + p.shard_rows);
    for (int64_t begin = first; begin < end; begin += chunk_rows_) {
      const int64_t rows = std::min(chunk_rows_, end - begin);
      body(lane, shard, ConstMatrix{obs.data + begin * obs.cols, rows, obs.cols}, begin,
           begin == first);
    }
  });
}

float* PolicyValueModel::shard_gradients(int64_t shard) {
  return shards_ == 1 ? grads_.data() : shard_grads_.data() + shard * parameter_count();
}

float* PolicyValueModel::shard_stats(int64_t shard) {
  return shards_ == 1 ? stats_.data() : shard_stats_.data() + shard * kStatColumns;
}

// ---------------------------------------------------------------------------------------------
// PolicyValueModel

int64_t PolicyValueModel::default_chunk_rows(DeviceKind kind) {
  return kind == DeviceKind::kCuda ? kGpuChunkRows : kCpuChunkRows;
}

int32_t PolicyValueModel::default_shards(DeviceKind kind) {
  return kind == DeviceKind::kCuda ? 1 : kCpuShards;
}

MemoryReport PolicyValueModel::memory_required(const ModelConfig& config, int64_t chunk_rows,
                                               int workers, int32_t shards) {
  config.validate();
  BP_CHECK_ARG(workers >= 1 && shards >= 1, "memory_required: workers ("
                                                << workers << ") and shards (" << shards
                                                << ") must be positive");
  MemoryReport r;
  const auto p = static_cast<std::size_t>(config.parameter_count());
  r.parameters = 2 * p * sizeof(float);
  const std::size_t groups = config.has_trunk() ? 1 : 2;
  r.optimizer = (2 * p + groups) * sizeof(float);
  r.workspace = static_cast<std::size_t>(workers) * Lane::bytes(config, chunk_rows) +
                static_cast<std::size_t>(kStatSlots) * sizeof(float);
  if (shards > 1) {
    r.workspace += static_cast<std::size_t>(shards) * (p + kStatColumns) * sizeof(float);
  }
  r.chunk_rows = chunk_rows;
  return r;
}

PolicyValueModel::PolicyValueModel(Backend& backend, const ModelConfig& config,
                                   const ModelOptions& options)
    : backend_(&backend),
      config_(config),
      options_(options),
      chunk_rows_(options.chunk_rows > 0 ? options.chunk_rows : default_chunk_rows(backend.kind())),
      shards_(options.shards > 0 ? options.shards : default_shards(backend.kind())) {
  config_.validate();
  BP_CHECK_ARG(options.chunk_rows >= 0,
               "ModelOptions: chunk_rows must be >= 0 (0 = default), got " << options.chunk_rows);
  BP_CHECK_ARG(chunk_rows_ <= (int64_t{1} << 31) / 256,
               "ModelOptions: chunk_rows = " << chunk_rows_ << " is too large for one pass");
  BP_CHECK_ARG(options.shards >= 0 && options.shards <= 4096,
               "ModelOptions: shards must be in [0, 4096] (0 = default), got " << options.shards);
  const int workers = backend.threads();
  const MemoryReport need = memory_required(config_, chunk_rows_, workers, shards_);
  const std::size_t free_bytes = backend.available_memory();
  BP_REQUIRE(need.total() <= free_bytes, kOutOfMemory,
             "the policy/value model needs "
                 << mib(need.total()) << " (workspace for chunks of " << chunk_rows_
                 << " rows: " << mib(need.workspace) << ") but " << backend.description() << " has "
                 << mib(free_bytes) << " free; lower ModelOptions::chunk_rows");

  blas_ = make_blas(backend, BlasOptions{options.allow_tf32});
  ops_ = make_nn_ops(backend);
  const auto p = static_cast<std::size_t>(config_.parameter_count());
  params_ = Buffer<float>(backend, p);
  grads_ = Buffer<float>(backend, p);
  grads_.zero();

  // Flat layout: [trunk][policy][value].
  policy_offset_ = config_.has_trunk() ? config_.trunk_config().parameter_count() : 0;
  value_offset_ = policy_offset_ + config_.policy_config().parameter_count();
  const ScratchLayout sl = scratch_layout(config_, chunk_rows_);
  for (int w = 0; w < workers; ++w) {
    auto lane = std::make_unique<Lane>();
    float* prm = params_.data();
    float* grd = grads_.data();
    if (config_.has_trunk()) {
      lane->trunk = std::make_unique<Mlp>(backend, *blas_, *ops_, config_.trunk_config(),
                                          chunk_rows_, prm, grd);
    }
    lane->policy = std::make_unique<Mlp>(backend, *blas_, *ops_, config_.policy_config(),
                                         chunk_rows_, prm + policy_offset_, grd + policy_offset_);
    lane->value = std::make_unique<Mlp>(backend, *blas_, *ops_, config_.value_config(), chunk_rows_,
                                        prm + value_offset_, grd + value_offset_);
    lane->scratch = Buffer<float>(backend, static_cast<std::size_t>(sl.total));
    float* base = lane->scratch.data();
    lane->d_logits = base + sl.d_logits;
    lane->d_values = base + sl.d_values;
    lane->d_features = config_.has_trunk() ? base + sl.d_features : nullptr;
    lane->sample_stats = base + sl.stats;
    lane->ones = base + sl.ones;
    ops_->fill(lane->ones, chunk_rows_, 1.0f);
    lanes_.push_back(std::move(lane));
  }

  // Initial parameters: init blocks numbered layer by layer in the flat layout's order.
  Lane& first = *lanes_.front();
  uint32_t block = 0;
  for (Mlp* net : {first.trunk.get(), first.policy.get(), first.value.get()}) {
    if (net == nullptr) continue;
    net->init(options.seed, block);
    block += 2U * static_cast<uint32_t>(net->config().layers());
  }

  if (config_.has_trunk()) {
    adam_.push_back(
        std::make_unique<Adam>(backend, *blas_, *ops_, config_.parameter_count(), options.adam));
  } else {
    adam_.push_back(std::make_unique<Adam>(backend, *blas_, *ops_, value_offset_, options.adam));
    adam_.push_back(std::make_unique<Adam>(
        backend, *blas_, *ops_, config_.parameter_count() - value_offset_, options.value_adam));
  }

  if (shards_ > 1) {
    shard_grads_ = Buffer<float>(backend, static_cast<std::size_t>(shards_) * p);
    shard_stats_ = Buffer<float>(backend, static_cast<std::size_t>(shards_) * kStatColumns);
    shard_grads_.zero();
    shard_stats_.zero();
  }
  stats_ = Buffer<float>(backend, kStatSlots);
  stats_.zero();
}

PolicyValueModel::~PolicyValueModel() = default;

MemoryReport PolicyValueModel::memory() const {
  MemoryReport r;
  r.parameters = params_.bytes() + grads_.bytes();
  for (const auto& a : adam_) r.optimizer += a->bytes();
  for (const auto& lane : lanes_) r.workspace += lane->bytes();
  r.workspace += shard_grads_.bytes() + shard_stats_.bytes() + stats_.bytes();
  r.record = record_.bytes();
  r.chunk_rows = chunk_rows_;
  return r;
}

namespace {
// The networks a model records, in the order of LayerOutputs indices: 0 trunk, 1 policy, 2 value.
std::array<MlpConfig, 3> recorded_networks(const ModelConfig& c) {
  return {c.has_trunk() ? c.trunk_config() : MlpConfig{}, c.policy_config(), c.value_config()};
}
}  // namespace

std::size_t PolicyValueModel::record_bytes_per_row(const ModelConfig& config, bool values) {
  std::size_t floats = 0;
  const auto nets = recorded_networks(config);
  for (std::size_t net = 0; net < (values ? 3U : 2U); ++net) {
    const MlpConfig& m = nets[net];
    for (std::size_t l = 1; l < m.sizes.size(); ++l) floats += static_cast<std::size_t>(m.sizes[l]);
  }
  return floats * sizeof(float);
}

void PolicyValueModel::reserve_record(int64_t rows, bool values) {
  BP_CHECK_ARG(rows >= 0, "reserve_record: rows must be >= 0, got " << rows);
  if (rows <= record_capacity_ && (record_has_values_ || !values)) return;
  rows = std::max(rows, record_capacity_);
  values = values || record_has_values_;
  const std::size_t bytes = static_cast<std::size_t>(rows) * record_bytes_per_row(config_, values);
  const std::size_t free_bytes = backend_->available_memory();
  BP_REQUIRE(bytes <= free_bytes, kOutOfMemory,
             "recording the activations of " << rows << " rows needs " << mib(bytes) << " but "
                                             << backend_->description() << " has "
                                             << mib(free_bytes) << " free");
  record_ = Buffer<float>(*backend_, bytes / sizeof(float));
  record_capacity_ = rows;
  record_has_values_ = values;
  record_offsets_.clear();
  int64_t at = 0;
  const auto nets = recorded_networks(config_);
  for (std::size_t net = 0; net < (values ? 3U : 2U); ++net) {
    std::vector<int64_t> offsets;
    for (std::size_t l = 1; l < nets[net].sizes.size(); ++l) {
      offsets.push_back(at);
      at += rows * nets[net].sizes[l];
    }
    record_offsets_.push_back(std::move(offsets));
  }
  recorded_rows_ = 0;
}

LayerOutputs PolicyValueModel::recorded(int net, int64_t row) {
  const MlpConfig m = recorded_networks(config_)[static_cast<std::size_t>(net)];
  LayerOutputs o;
  const auto& offsets = record_offsets_[static_cast<std::size_t>(net)];
  for (std::size_t l = 0; l < offsets.size(); ++l) {
    o.layers.push_back(record_.data() + offsets[l] + row * m.sizes[l + 1]);
  }
  return o;
}

void PolicyValueModel::set_parameters(std::span<const float> host_params) {
  BP_CHECK_ARG(static_cast<int64_t>(host_params.size()) == parameter_count(),
               "set_parameters: " << host_params.size() << " values given, the model has "
                                  << parameter_count() << " parameters");
  params_.from_host(host_params);
  ++params_version_;
}

PolicyValueModel::OptimizerState PolicyValueModel::get_optimizer_state(int index) const {
  BP_CHECK_ARG(index >= 0 && index < optimizer_count(),
               "optimizer " << index << " asked for, the model has " << optimizer_count());
  return adam_[index]->get_state();
}

void PolicyValueModel::set_optimizer_state(int index, const OptimizerState& state) {
  BP_CHECK_ARG(index >= 0 && index < optimizer_count(),
               "optimizer " << index << " asked for, the model has " << optimizer_count());
  adam_[index]->set_state(state);
}

void PolicyValueModel::check_obs(const char* call, const ConstMatrix& obs) const {
  BP_CHECK_ARG(obs.rows > 0,
               call << ": empty batch (observations are " << obs.rows << " x " << obs.cols << ")");
  BP_CHECK_ARG(obs.cols == config_.obs_dim, call << ": observations are " << obs.rows << " x "
                                                 << obs.cols << " but the model takes " << obs.rows
                                                 << " x " << config_.obs_dim);
  BP_CHECK_ARG(obs.data != nullptr, call << ": observations are a null pointer");
}

void PolicyValueModel::act(const ConstMatrix& obs, uint64_t step, int32_t* actions, float* log_prob,
                           float* values, int64_t record_row) {
  check_obs("act", obs);
  BP_CHECK_ARG(actions != nullptr, "act: actions is a null pointer");
  BP_CHECK_ARG(obs.rows <= (int64_t{1} << 32),
               "act: " << obs.rows << " rows exceed the 2^32 environment indices of the draw");
  const bool record = record_row >= 0;
  if (record) {
    BP_CHECK_ARG(record_row == 0 || record_row == recorded_rows_,
                 "act: a recording continues at row " << recorded_rows_ << ", not at row "
                                                      << record_row << " (or starts at 0)");
    BP_CHECK_ARG(record_row + obs.rows <= record_capacity_,
                 "act: rows [" << record_row << ", " << record_row + obs.rows
                               << ") exceed the recording's room for " << record_capacity_
                               << " rows (reserve_record)");
    BP_CHECK_ARG(record_row == 0 || recorded_version_ == params_version_,
                 "act: the parameters changed during a recording; start again at row 0");
    recorded_version_ = params_version_;
    recorded_values_ =
        (record_row == 0 || recorded_values_) && values != nullptr && record_has_values_;
    recorded_rows_ = record_row;  // until this call has finished
  }
  const bool record_values = record && record_has_values_;
  for_each_chunk(obs, [&](Lane& lane, int64_t, const ConstMatrix& x, int64_t begin, bool) {
    LayerOutputs to, po, vo;
    if (record) {
      if (lane.trunk) to = recorded(0, record_row + begin);
      po = recorded(1, record_row + begin);
      if (record_values) vo = recorded(2, record_row + begin);
    }
    const ConstMatrix f = lane.features(x, record ? &to : nullptr);
    const float* logits = lane.policy->forward(f, record ? &po : nullptr);
    const SampleKey key{options_.seed, step, static_cast<uint32_t>(begin)};
    ops_->sample_actions(logits, x.rows, config_.num_actions, key, actions + begin,
                         log_prob != nullptr ? log_prob + begin : nullptr, nullptr);
    if (values != nullptr) {
      const float* v = lane.value->forward(f, record_values ? &vo : nullptr);
      backend_->copy_on_device(values + begin, v, static_cast<std::size_t>(x.rows) * sizeof(float));
    }
  });
  if (record) recorded_rows_ = record_row + obs.rows;
}

void PolicyValueModel::values(const ConstMatrix& obs, float* out) {
  check_obs("values", obs);
  BP_CHECK_ARG(out != nullptr, "values: out is a null pointer");
  for_each_chunk(obs, [&](Lane& lane, int64_t, const ConstMatrix& x, int64_t begin, bool) {
    const float* v = lane.value->forward(lane.features(x));
    backend_->copy_on_device(out + begin, v, static_cast<std::size_t>(x.rows) * sizeof(float));
  });
}

void PolicyValueModel::logits(const ConstMatrix& obs, float* out) {
  check_obs("logits", obs);
  BP_CHECK_ARG(out != nullptr, "logits: out is a null pointer");
  const int64_t na = config_.num_actions;
  for_each_chunk(obs, [&](Lane& lane, int64_t, const ConstMatrix& x, int64_t begin, bool) {
    const float* z = lane.policy->forward(lane.features(x));
    backend_->copy_on_device(out + begin * na, z,
                             static_cast<std::size_t>(x.rows * na) * sizeof(float));
  });
}

void PolicyValueModel::probabilities(const ConstMatrix& obs, float* out) {
  check_obs("probabilities", obs);
  BP_CHECK_ARG(out != nullptr, "probabilities: out is a null pointer");
  const int64_t na = config_.num_actions;
  for_each_chunk(obs, [&](Lane& lane, int64_t, const ConstMatrix& x, int64_t begin, bool) {
    const float* z = lane.policy->forward(lane.features(x));
    ops_->softmax(z, x.rows, config_.num_actions, out + begin * na);
  });
}

void PolicyValueModel::accumulate_gradients(const RolloutView& batch, const LossConfig& loss,
                                            GradientMode mode) {
  check_obs("accumulate_gradients", batch.obs);
  BP_CHECK_ARG(batch.actions != nullptr && batch.weights != nullptr,
               "accumulate_gradients: the rollout needs actions and weights (samples = "
                   << batch.obs.rows << ")");
  const bool rec = batch.recorded;
  if (rec) {
    BP_CHECK_ARG(recorded_version_ == params_version_ && batch.obs.rows <= recorded_rows_,
                 "accumulate_gradients: the rollout is marked recorded but "
                     << (recorded_version_ != params_version_
                             ? std::string("the parameters changed after the recording")
                             : "only " + std::to_string(recorded_rows_) + " of its " +
                                   std::to_string(batch.obs.rows) + " rows were recorded"));
    BP_CHECK_ARG(batch.value_targets == nullptr || recorded_values_,
                 "accumulate_gradients: the value loss needs the value network's activations, "
                 "which act() recorded without values");
  }
  float* divisor = stats_.data() + kSlotDivisor;
  if (batch.count > 0.0f) {
    ops_->fill(divisor, 1, batch.count);
  } else if (batch.mask != nullptr) {
    ops_->count_nonzero(batch.mask, batch.obs.rows, divisor);
  } else {
    ops_->fill(divisor, 1, static_cast<float>(batch.obs.rows));
  }
  last_loss_ = loss;
  const bool with_value = batch.value_targets != nullptr;
  const int64_t value_params = parameter_count() - value_offset_;
  // With one shard its gradients are grads_ itself and `mode` applies to its first chunk; with
  // several, every shard starts afresh and the sum below applies `mode`.
  const GradientMode first_mode = shards_ == 1 ? mode : GradientMode::kOverwrite;

  for_each_chunk(batch.obs, [&](Lane& lane, int64_t shard, const ConstMatrix& x, int64_t begin,
                                bool first_chunk) {
    const GradientMode m = first_chunk ? first_mode : GradientMode::kAccumulate;
    float* grads = shard_gradients(shard);
    lane.bind_gradients(grads, policy_offset_, value_offset_);
    const uint8_t* mask = batch.mask != nullptr ? batch.mask + begin : nullptr;
    // Recorded: the activations act() kept; otherwise a forward pass into the workspace.
    LayerOutputs to, po, vo;
    if (rec) {
      if (lane.trunk) to = recorded(0, begin);
      po = recorded(1, begin);
      if (with_value) vo = recorded(2, begin);
    }
    const ConstMatrix f =
        !rec ? lane.features(x)
             : (lane.trunk ? ConstMatrix{to.layers.back(), x.rows, lane.trunk->config().outputs()}
                           : x);

    PolicyLossArgs pa;
    pa.logits = rec ? po.layers.back() : lane.policy->forward(f);
    pa.rows = x.rows;
    pa.num_actions = config_.num_actions;
    pa.actions = batch.actions + begin;
    pa.weights = batch.weights + begin;
    pa.mask = mask;
    pa.count = divisor;
    pa.entropy_coef = loss.entropy_coef;
    pa.d_logits = lane.d_logits;
    pa.stats = lane.sample_stats;
    ops_->policy_loss_grad(pa);
    lane.policy->backward(f, lane.d_logits, m, lane.d_features, GradientMode::kOverwrite,
                          rec ? &po : nullptr);

    if (with_value) {
      ValueLossArgs va;
      va.values = rec ? vo.layers.back() : lane.value->forward(f);
      va.targets = batch.value_targets + begin;
      va.mask = mask;
      va.rows = x.rows;
      va.count = divisor;
      va.value_coef = loss.value_coef;
      va.d_values = lane.d_values;
      va.stats = lane.sample_stats;
      ops_->value_loss_grad(va);
      lane.value->backward(f, lane.d_values, m, lane.d_features, GradientMode::kAccumulate,
                           rec ? &vo : nullptr);
    } else if (m == GradientMode::kOverwrite) {
      // No value loss: its gradient is zero, which overwriting means writing.
      ops_->fill(grads + value_offset_, value_params, 0.0f);
    }
    if (lane.trunk) {
      lane.trunk->backward(x, lane.d_features, m, nullptr, GradientMode::kOverwrite,
                           rec ? &to : nullptr);
    }

    // Per-sample statistics summed into the shard's: stats = beta stats + S^T 1.
    blas_->gemv(Trans::kYes, x.rows, kStatColumns, 1.0f, lane.sample_stats, kStatColumns, lane.ones,
                1, m == GradientMode::kOverwrite ? 0.0f : 1.0f, shard_stats(shard), 1);
  });

  if (shards_ > 1) {
    // Shard 0 + shard 1 + ... in this order, whichever thread computed which.
    const int64_t used = partition(batch.obs.rows).shards;
    const int64_t n = parameter_count();
    for (int64_t s = 0; s < used; ++s) {
      if (s == 0 && mode == GradientMode::kOverwrite) {
        backend_->copy_on_device(grads_.data(), shard_gradients(0),
                                 static_cast<std::size_t>(n) * sizeof(float));
        backend_->copy_on_device(stats_.data(), shard_stats(0), kStatColumns * sizeof(float));
      } else {
        blas_->axpy(n, 1.0f, shard_gradients(s), 1, grads_.data(), 1);
        blas_->axpy(kStatColumns, 1.0f, shard_stats(s), 1, stats_.data(), 1);
      }
    }
  }
}

void PolicyValueModel::step() {
  ++params_version_;
  adam_[0]->step(params_.data(), grads_.data(), stats_.data() + kSlotGradNorm);
  if (adam_.size() > 1) {
    adam_[1]->step(params_.data() + value_offset_, grads_.data() + value_offset_,
                   stats_.data() + kSlotValueGradNorm);
  }
}

UpdateStats PolicyValueModel::stats() const {
  const std::vector<float> s = stats_.to_host();
  UpdateStats u;
  u.divisor = s[kSlotDivisor];
  const double inv = u.divisor > 0 ? 1.0 / u.divisor : 0.0;
  u.policy_loss = -static_cast<double>(s[kStatWeightedLogProb]) * inv;
  u.entropy = static_cast<double>(s[kStatEntropy]) * inv;
  u.value_loss = static_cast<double>(s[kStatSquaredError]) * inv;
  u.total_loss = u.policy_loss - static_cast<double>(last_loss_.entropy_coef) * u.entropy +
                 static_cast<double>(last_loss_.value_coef) * u.value_loss;
  u.valid_samples = s[kStatValid];
  u.grad_norm = s[kSlotGradNorm];
  u.value_grad_norm = s[kSlotValueGradNorm];
  return u;
}

}  // namespace batchpole
