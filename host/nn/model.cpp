// PolicyValueModel: construction, memory, parameters and optimiser state. The passes (acting,
// values, learning) are in model_passes.cpp.
#include "batchpole/nn/model.hpp"

#include <algorithm>
#include <string>

#include "activation_record.hpp"
#include "batchpole/nn/blas.hpp"
#include "model_workspace.hpp"

namespace batchpole {

using model_detail::scratch_layout;
using model_detail::ScratchLayout;

MemoryReport PolicyValueModel::memory_required(const ModelConfig& config, int64_t chunk_rows,
                                               int workers, int32_t shards) {
  config.validate();
  BP_CHECK_ARG(workers >= 1 && shards >= 1, "memory_required: workers ("
                                                << workers << ") and shards (" << shards
                                                << ") must be positive");
  MemoryReport r;
  const auto p = static_cast<std::size_t>(config.parameter_count());
  r.parameters = (2 * p + kStatSlots) * sizeof(float);
  const std::size_t groups = config.has_trunk() || !config.has_value() ? 1 : 2;
  r.optimizer = (2 * p + groups) * sizeof(float);
  r.workspace = static_cast<std::size_t>(workers) * Workspace::bytes(config, chunk_rows) +
                ShardedRunner::bytes(shards, static_cast<int64_t>(p) + kStatColumnsClipped);
  r.chunk_rows = chunk_rows;
  return r;
}

PolicyValueModel::PolicyValueModel(Device& device, const ModelConfig& config,
                                   const ModelOptions& options) try
    : device_(&device),
      config_(config),
      options_(options),
      ops_(options.ops != nullptr ? options.ops : &device.nn()),
      parameter_count_((config.validate(), config.parameter_count())),
      runner_(device, options.chunk_rows > 0 ? options.chunk_rows : device.plan().chunk_rows,
              options.shards > 0 ? options.shards : device.plan().shards,
              parameter_count_ + kStatColumnsClipped) {
  BP_CHECK_ARG(options.chunk_rows >= 0,
               "ModelOptions: chunk_rows must be >= 0 (0 = default), got " << options.chunk_rows);
  BP_CHECK_ARG(
      runner_.chunk_rows() <= (int64_t{1} << 31) / 256,
      "ModelOptions: chunk_rows = " << runner_.chunk_rows() << " is too large for one pass");
  BP_CHECK_ARG(options.shards >= 0 && options.shards <= 4096,
               "ModelOptions: shards must be in [0, 4096] (0 = default), got " << options.shards);
  const auto p = static_cast<std::size_t>(parameter_count_);
  params_ = Buffer<float>(device, p);
  acc_ = Buffer<float>(device, p + kStatSlots);
  acc_.zero();

  // Flat layout: [trunk][policy][value].
  policy_offset_ = config_.has_trunk() ? config_.trunk_config().parameter_count() : 0;
  value_offset_ = policy_offset_ + config_.policy_config().parameter_count();
  const int64_t chunk = runner_.chunk_rows();
  const ScratchLayout sl = scratch_layout(config_, chunk);
  Blas& blas = device.blas();
  for (int w = 0; w < device.threads(); ++w) {
    auto ws = std::make_unique<Workspace>();
    float* prm = params_.data();
    float* grd = acc_.data();
    if (config_.has_trunk()) {
      ws->trunk =
          std::make_unique<Mlp>(device, blas, *ops_, config_.trunk_config(), chunk, prm, grd);
    }
    ws->policy = std::make_unique<Mlp>(device, blas, *ops_, config_.policy_config(), chunk,
                                       prm + policy_offset_, grd + policy_offset_);
    if (config_.has_value()) {
      ws->value = std::make_unique<Mlp>(device, blas, *ops_, config_.value_config(), chunk,
                                        prm + value_offset_, grd + value_offset_);
    }
    ws->scratch = Buffer<float>(device, static_cast<std::size_t>(sl.total));
    ws->scratch.zero();
    float* base = ws->scratch.data();
    ws->d_logits = base + sl.d_logits;
    ws->d_values = base + sl.d_values;
    ws->d_features = config_.has_trunk() ? base + sl.d_features : nullptr;
    ws->sample_stats = base + sl.stats;
    ws->ones = base + sl.ones;
    ops_->fill(ws->ones, chunk, 1.0f);
    workspaces_.push_back(std::move(ws));
  }

  // Initial parameters: init blocks numbered layer by layer in the flat layout's order.
  Workspace& first = *workspaces_.front();
  uint32_t block = 0;
  for (Mlp* net : {first.trunk.get(), first.policy.get(), first.value.get()}) {
    if (net == nullptr) continue;
    net->init(options.seed, block);
    block += 2U * static_cast<uint32_t>(net->config().layers());
  }
  if (config_.gaussian()) {
    // The log-std units start at log_std_init; with a learned vector their weights are 0 and
    // stay there (zero_pinned_gradients), so the log-std is their bias alone.
    const Mlp& policy = *first.policy;
    const int32_t last = policy.config().layers() - 1;
    const int64_t d = config_.num_actions;
    const int64_t in = policy.config().sizes[static_cast<std::size_t>(last)];
    float* prm = params_.data() + policy_offset_;
    ops_->fill(prm + policy.bias_offset(last) + d, d, config_.log_std_init);
    if (!config_.state_dependent_std) {
      ops_->fill(prm + policy.weight_offset(last) + d * in, d * in, 0.0f);
    }
  }

  if (config_.has_trunk() || !config_.has_value()) {
    adam_.push_back(std::make_unique<Adam>(device, blas, *ops_, parameter_count_, options.adam));
  } else {
    adam_.push_back(std::make_unique<Adam>(device, blas, *ops_, value_offset_, options.adam));
    adam_.push_back(std::make_unique<Adam>(device, blas, *ops_, parameter_count_ - value_offset_,
                                           options.value_adam));
  }
  record_ = std::make_unique<ActivationRecord>(device, config_);
} catch (const Error& e) {
  // The device refuses what does not fit; say what the model can do about it.
  if (e.kind() != Error::Kind::kOutOfMemory) throw;
  throw Error(
      Error::Kind::kOutOfMemory,
      std::string(e.what()) + "; the model's workspace holds chunks of " +
          std::to_string(options.chunk_rows > 0 ? options.chunk_rows : device.plan().chunk_rows) +
          " rows per worker: lower ModelOptions::chunk_rows (--chunk-rows)");
}

PolicyValueModel::~PolicyValueModel() = default;

MemoryReport PolicyValueModel::memory() const {
  MemoryReport r;
  r.parameters = params_.bytes() + acc_.bytes();
  for (const auto& a : adam_) r.optimizer += a->bytes();
  for (const auto& ws : workspaces_) r.workspace += ws->bytes();
  r.workspace += runner_.bytes();
  r.record = record_->bytes();
  r.chunk_rows = runner_.chunk_rows();
  return r;
}

std::size_t PolicyValueModel::record_bytes_per_row(const ModelConfig& config, bool values) {
  return ActivationRecord::bytes_per_row(config, values);
}

void PolicyValueModel::reserve_record(int64_t rows, bool values) { record_->reserve(rows, values); }

float* PolicyValueModel::parameters() {
  ++params_version_;
  return params_.data();
}

std::vector<float> PolicyValueModel::get_gradients() const {
  std::vector<float> g(static_cast<std::size_t>(parameter_count_));
  device_->copy_to_host(g.data(), acc_.data(), g.size() * sizeof(float));
  return g;
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

UpdateStats PolicyValueModel::stats() const {
  std::vector<float> s(kStatSlots);
  device_->copy_to_host(s.data(), device_stats(), s.size() * sizeof(float));
  return stats_from(s.data());
}

UpdateStats PolicyValueModel::stats_from(const float* s) const {
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
  if (last_clipped_) {
    const double per_sample = u.valid_samples > 0 ? 1.0 / u.valid_samples : 0.0;
    u.approx_kl = static_cast<double>(s[kStatApproxKl]) * per_sample;
    u.clip_fraction = static_cast<double>(s[kStatClipped]) * per_sample;
  }
  return u;
}

}  // namespace batchpole
