#include "batchpole/policy_value.hpp"

#include <algorithm>

namespace batchpole {

namespace {

// Slots of the device statistics vector (device_stats()).
constexpr int64_t kSlotDivisor = kStatColumns;  // C
constexpr int64_t kSlotGradNorm = kStatColumns + 1;
constexpr int64_t kSlotValueGradNorm = kStatColumns + 2;
constexpr int64_t kStatSlots = kStatColumns + 4;

// Rows per pass. CPU: small enough that a layer's activations (2048 x 64 floats, 512 KiB) are
// still in cache for the elementwise pass after each gemm, large enough for OpenBLAS to use
// both cores. Measured on 2 cores (actor-critic, 65536 samples, share of the plain-sgemm rate
// reached, forward / forward+backward): 1024 rows 74% / 84%, 2048 73% / 85%, 4096 65% / 66%,
// 8192 50% / 60%, 16384 51% / 70%. GPU: big enough to fill an H100.
constexpr int64_t kCpuChunkRows = 2048;
constexpr int64_t kGpuChunkRows = 262144;

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

int64_t PolicyValueModel::default_chunk_rows(DeviceKind kind) {
  return kind == DeviceKind::kCuda ? kGpuChunkRows : kCpuChunkRows;
}

MemoryReport PolicyValueModel::memory_required(const ModelConfig& config, int64_t chunk_rows) {
  config.validate();
  MemoryReport r;
  const auto p = static_cast<std::size_t>(config.parameter_count());
  r.parameters = 2 * p * sizeof(float);
  const std::size_t groups = config.has_trunk() ? 1 : 2;
  r.optimizer = (2 * p + groups) * sizeof(float);
  std::size_t w = Mlp::workspace_bytes(config.policy_config(), chunk_rows) +
                  Mlp::workspace_bytes(config.value_config(), chunk_rows);
  if (config.has_trunk()) w += Mlp::workspace_bytes(config.trunk_config(), chunk_rows);
  w += static_cast<std::size_t>(scratch_layout(config, chunk_rows).total + kStatSlots) *
       sizeof(float);
  r.workspace = w;
  r.chunk_rows = chunk_rows;
  return r;
}

PolicyValueModel::PolicyValueModel(Backend& backend, const ModelConfig& config,
                                   const ModelOptions& options)
    : backend_(&backend),
      config_(config),
      options_(options),
      chunk_rows_(options.chunk_rows > 0 ? options.chunk_rows
                                         : default_chunk_rows(backend.kind())) {
  config_.validate();
  BP_CHECK_ARG(options.chunk_rows >= 0,
               "ModelOptions: chunk_rows must be >= 0 (0 = default), got " << options.chunk_rows);
  BP_CHECK_ARG(chunk_rows_ <= (int64_t{1} << 31) / 256,
               "ModelOptions: chunk_rows = " << chunk_rows_ << " is too large for one pass");
  const MemoryReport need = memory_required(config_, chunk_rows_);
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

  // Flat layout: [trunk][policy][value]; init blocks numbered layer by layer in that order.
  int64_t at = 0;
  uint32_t block = 0;
  if (config_.has_trunk()) {
    const MlpConfig t = config_.trunk_config();
    trunk_ = std::make_unique<Mlp>(backend, *blas_, *ops_, t, chunk_rows_, params_.data(),
                                   grads_.data());
    trunk_->init(options.seed, block);
    at += t.parameter_count();
    block += 2U * static_cast<uint32_t>(t.layers());
  }
  policy_offset_ = at;
  const MlpConfig pc = config_.policy_config();
  policy_ = std::make_unique<Mlp>(backend, *blas_, *ops_, pc, chunk_rows_, params_.data() + at,
                                  grads_.data() + at);
  policy_->init(options.seed, block);
  at += pc.parameter_count();
  block += 2U * static_cast<uint32_t>(pc.layers());
  value_offset_ = at;
  const MlpConfig vc = config_.value_config();
  value_ = std::make_unique<Mlp>(backend, *blas_, *ops_, vc, chunk_rows_, params_.data() + at,
                                 grads_.data() + at);
  value_->init(options.seed, block);

  if (config_.has_trunk()) {
    adam_.push_back(
        std::make_unique<Adam>(backend, *blas_, *ops_, config_.parameter_count(), options.adam));
  } else {
    adam_.push_back(std::make_unique<Adam>(backend, *blas_, *ops_, value_offset_, options.adam));
    adam_.push_back(std::make_unique<Adam>(
        backend, *blas_, *ops_, config_.parameter_count() - value_offset_, options.value_adam));
  }

  const ScratchLayout s = scratch_layout(config_, chunk_rows_);
  scratch_ = Buffer<float>(backend, static_cast<std::size_t>(s.total));
  d_logits_ = scratch_.data() + s.d_logits;
  d_values_ = scratch_.data() + s.d_values;
  d_features_ = config_.has_trunk() ? scratch_.data() + s.d_features : nullptr;
  sample_stats_ = scratch_.data() + s.stats;
  ones_ = scratch_.data() + s.ones;
  ops_->fill(ones_, chunk_rows_, 1.0f);
  stats_ = Buffer<float>(backend, kStatSlots);
  stats_.zero();
}

PolicyValueModel::~PolicyValueModel() = default;

MemoryReport PolicyValueModel::memory() const {
  MemoryReport r;
  r.parameters = params_.bytes() + grads_.bytes();
  for (const auto& a : adam_) r.optimizer += a->bytes();
  r.workspace = policy_->workspace_bytes() + value_->workspace_bytes() +
                (trunk_ ? trunk_->workspace_bytes() : 0) + scratch_.bytes() + stats_.bytes();
  r.chunk_rows = chunk_rows_;
  return r;
}

void PolicyValueModel::set_parameters(std::span<const float> host_params) {
  BP_CHECK_ARG(static_cast<int64_t>(host_params.size()) == parameter_count(),
               "set_parameters: " << host_params.size() << " values given, the model has "
                                  << parameter_count() << " parameters");
  params_.from_host(host_params);
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

ConstMatrix PolicyValueModel::features(const ConstMatrix& x) {
  if (!trunk_) return x;
  return {trunk_->forward(x), x.rows, trunk_->config().outputs()};
}

namespace {
// Runs `body(chunk_obs, begin)` over chunks of at most chunk_rows rows.
template <class Body>
void for_each_chunk(const ConstMatrix& obs, int64_t chunk_rows, Body body) {
  for (int64_t begin = 0; begin < obs.rows; begin += chunk_rows) {
    const int64_t rows = std::min(chunk_rows, obs.rows - begin);
    body(ConstMatrix{obs.data + begin * obs.cols, rows, obs.cols}, begin);
  }
}
}  // namespace

void PolicyValueModel::act(const ConstMatrix& obs, uint64_t step, int32_t* actions, float* log_prob,
                           float* values) {
  check_obs("act", obs);
  BP_CHECK_ARG(actions != nullptr, "act: actions is a null pointer");
  BP_CHECK_ARG(obs.rows <= (int64_t{1} << 32),
               "act: " << obs.rows << " rows exceed the 2^32 environment indices of the draw");
  for_each_chunk(obs, chunk_rows_, [&](const ConstMatrix& x, int64_t begin) {
    const ConstMatrix f = features(x);
    const float* logits = policy_->forward(f);
    const SampleKey key{options_.seed, step, static_cast<uint32_t>(begin)};
    ops_->sample_actions(logits, x.rows, config_.num_actions, key, actions + begin,
                         log_prob != nullptr ? log_prob + begin : nullptr, nullptr);
    if (values != nullptr) {
      const float* v = value_->forward(f);
      backend_->copy_on_device(values + begin, v, static_cast<std::size_t>(x.rows) * sizeof(float));
    }
  });
}

void PolicyValueModel::values(const ConstMatrix& obs, float* out) {
  check_obs("values", obs);
  BP_CHECK_ARG(out != nullptr, "values: out is a null pointer");
  for_each_chunk(obs, chunk_rows_, [&](const ConstMatrix& x, int64_t begin) {
    const float* v = value_->forward(features(x));
    backend_->copy_on_device(out + begin, v, static_cast<std::size_t>(x.rows) * sizeof(float));
  });
}

void PolicyValueModel::logits(const ConstMatrix& obs, float* out) {
  check_obs("logits", obs);
  BP_CHECK_ARG(out != nullptr, "logits: out is a null pointer");
  const int64_t na = config_.num_actions;
  for_each_chunk(obs, chunk_rows_, [&](const ConstMatrix& x, int64_t begin) {
    const float* z = policy_->forward(features(x));
    backend_->copy_on_device(out + begin * na, z,
                             static_cast<std::size_t>(x.rows * na) * sizeof(float));
  });
}

void PolicyValueModel::probabilities(const ConstMatrix& obs, float* out) {
  check_obs("probabilities", obs);
  BP_CHECK_ARG(out != nullptr, "probabilities: out is a null pointer");
  const int64_t na = config_.num_actions;
  for_each_chunk(obs, chunk_rows_, [&](const ConstMatrix& x, int64_t begin) {
    const float* z = policy_->forward(features(x));
    ops_->softmax(z, x.rows, config_.num_actions, out + begin * na);
  });
}

void PolicyValueModel::accumulate_gradients(const RolloutView& batch, const LossConfig& loss,
                                            GradientMode mode) {
  check_obs("accumulate_gradients", batch.obs);
  BP_CHECK_ARG(batch.actions != nullptr && batch.weights != nullptr,
               "accumulate_gradients: the rollout needs actions and weights (samples = "
                   << batch.obs.rows << ")");
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
  if (!with_value && mode == GradientMode::kOverwrite) {
    // No value loss: its gradient is zero, which overwriting means writing.
    ops_->fill(grads_.data() + value_offset_, value_->parameter_count(), 0.0f);
  }

  for_each_chunk(batch.obs, chunk_rows_, [&](const ConstMatrix& x, int64_t begin) {
    const GradientMode m = begin == 0 ? mode : GradientMode::kAccumulate;
    const uint8_t* mask = batch.mask != nullptr ? batch.mask + begin : nullptr;
    const ConstMatrix f = features(x);

    PolicyLossArgs pa;
    pa.logits = policy_->forward(f);
    pa.rows = x.rows;
    pa.num_actions = config_.num_actions;
    pa.actions = batch.actions + begin;
    pa.weights = batch.weights + begin;
    pa.mask = mask;
    pa.count = divisor;
    pa.entropy_coef = loss.entropy_coef;
    pa.d_logits = d_logits_;
    pa.stats = sample_stats_;
    ops_->policy_loss_grad(pa);
    policy_->backward(f, d_logits_, m, d_features_, GradientMode::kOverwrite);

    if (with_value) {
      ValueLossArgs va;
      va.values = value_->forward(f);
      va.targets = batch.value_targets + begin;
      va.mask = mask;
      va.rows = x.rows;
      va.count = divisor;
      va.value_coef = loss.value_coef;
      va.d_values = d_values_;
      va.stats = sample_stats_;
      ops_->value_loss_grad(va);
      value_->backward(f, d_values_, m, d_features_, GradientMode::kAccumulate);
    }
    if (trunk_) trunk_->backward(x, d_features_, m);

    // Per-sample statistics summed into the device accumulators: stats = beta stats + S^T 1.
    blas_->gemv(Trans::kYes, x.rows, kStatColumns, 1.0f, sample_stats_, kStatColumns, ones_, 1,
                m == GradientMode::kOverwrite ? 0.0f : 1.0f, stats_.data(), 1);
  });
}

void PolicyValueModel::step() {
  if (trunk_) {
    adam_[0]->step(params_.data(), grads_.data(), stats_.data() + kSlotGradNorm);
  } else {
    adam_[0]->step(params_.data(), grads_.data(), stats_.data() + kSlotGradNorm);
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
