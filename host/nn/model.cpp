// PolicyValueModel: construction, memory, parameters, optimiser state and the population's
// flags. The passes (acting, values, learning) are in model_passes.cpp.
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
                                               int workers, int32_t shards, int64_t agents,
                                               bool batched) {
  config.validate();
  BP_CHECK_ARG(workers >= 1 && shards >= 1 && agents >= 1,
               "memory_required: workers (" << workers << "), shards (" << shards
                                            << ") and agents (" << agents << ") must be positive");
  batched = batched && agents > 1;
  MemoryReport r;
  const auto p = static_cast<std::size_t>(config.parameter_count());
  const auto k = static_cast<std::size_t>(agents);
  r.parameters = k * (2 * p + kStatSlots + 1) * sizeof(float);
  const std::size_t groups = config.optimizer_sizes().size();
  r.optimizer = k * (2 * p + groups) * sizeof(float);
  r.workspace = batched ? Workspace::bytes(config, chunk_rows)
                        : static_cast<std::size_t>(workers) * Workspace::bytes(config, chunk_rows) +
                              ShardedRunner::bytes(
                                  shards, static_cast<int64_t>(p) + kStatColumnsClipped, agents);
  r.chunk_rows = chunk_rows;
  return r;
}

namespace {

std::vector<uint64_t> agent_seeds(const ModelOptions& o) {
  BP_CHECK_ARG(o.agents >= 1 && o.agents <= (int64_t{1} << 20),
               "ModelOptions: agents must be in [1, 2^20], got " << o.agents);
  if (o.seeds.empty()) {
    BP_CHECK_ARG(o.agents == 1, "ModelOptions: " << o.agents << " agents need their seeds");
    return {o.seed};
  }
  BP_CHECK_ARG(static_cast<int64_t>(o.seeds.size()) == o.agents,
               "ModelOptions: " << o.seeds.size() << " seeds for " << o.agents << " agents");
  return o.seeds;
}

}  // namespace

PolicyValueModel::PolicyValueModel(Device& device, const ModelConfig& config,
                                   const ModelOptions& options) try
    : device_(&device),
      config_(config),
      options_(options),
      ops_(options.ops != nullptr ? options.ops : &device.nn()),
      parameter_count_((config.validate(), config.parameter_count())),
      agents_(options.agents),
      batched_(options.agents > 1 && device.plan().batch_agents),
      runner_(device, options.chunk_rows > 0 ? options.chunk_rows : device.plan().chunk_rows,
              batched_ ? 1 : (options.shards > 0 ? options.shards : device.plan().shards),
              parameter_count_ + kStatColumnsClipped, batched_ ? 1 : std::max<int64_t>(agents_, 1)),
      seeds_(agent_seeds(options)) {
  BP_CHECK_ARG(options.chunk_rows >= 0,
               "ModelOptions: chunk_rows must be >= 0 (0 = default), got " << options.chunk_rows);
  BP_CHECK_ARG(
      runner_.chunk_rows() <= (int64_t{1} << 31) / 256,
      "ModelOptions: chunk_rows = " << runner_.chunk_rows() << " is too large for one pass");
  BP_CHECK_ARG(options.shards >= 0 && options.shards <= 4096,
               "ModelOptions: shards must be in [0, 4096] (0 = default), got " << options.shards);
  BP_CHECK_ARG(!batched_ || agents_ <= runner_.chunk_rows(),
               "ModelOptions: " << agents_ << " batched agents need chunks of at least one row "
                                << "each; raise chunk_rows (" << runner_.chunk_rows() << ")");
  const int64_t p = parameter_count_;
  params_ = Buffer<float>(device, static_cast<std::size_t>(agents_ * p));
  grads_ = Buffer<float>(device, static_cast<std::size_t>(agents_ * p));
  grads_.zero();
  stats_ = Buffer<float>(device, static_cast<std::size_t>(agents_ * (kStatSlots + 1)));
  stats_.zero();

  // Flat layout of each agent: [trunk][policy][value].
  policy_offset_ = config_.has_trunk() ? config_.trunk_config().parameter_count() : 0;
  value_offset_ = policy_offset_ + config_.policy_config().parameter_count();
  const int64_t chunk = runner_.chunk_rows();
  const ScratchLayout sl = scratch_layout(config_, chunk);
  Blas& blas = device.blas();
  const int workers = batched_ ? 1 : device.threads();
  for (int w = 0; w < workers; ++w) {
    auto ws = std::make_unique<Workspace>();
    float* prm = params_.data();
    float* grd = grads_.data();
    if (config_.has_trunk()) {
      ws->trunk =
          std::make_unique<Mlp>(device, blas, *ops_, config_.trunk_config(), chunk, prm, grd, p);
    }
    ws->policy = std::make_unique<Mlp>(device, blas, *ops_, config_.policy_config(), chunk,
                                       prm + policy_offset_, grd + policy_offset_, p);
    if (config_.has_value()) {
      ws->value = std::make_unique<Mlp>(device, blas, *ops_, config_.value_config(), chunk,
                                        prm + value_offset_, grd + value_offset_, p);
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

  // Initial parameters, agent by agent from its seed: init blocks numbered layer by layer in
  // the flat layout's order.
  Workspace& first = *workspaces_.front();
  for (int64_t k = 0; k < agents_; ++k) {
    first.bind_parameters(params_.data() + k * p, policy_offset_, value_offset_);
    uint32_t block = 0;
    for (Mlp* net : {first.trunk.get(), first.policy.get(), first.value.get()}) {
      if (net == nullptr) continue;
      net->init(seeds_[static_cast<std::size_t>(k)], block);
      block += 2U * static_cast<uint32_t>(net->config().layers());
    }
  }
  first.bind_parameters(params_.data(), policy_offset_, value_offset_);
  if (config_.gaussian()) {
    // The log-std units start at log_std_init; with a learned vector their weights are 0 and
    // stay there (zero_pinned_gradients), so the log-std is their bias alone. Every agent's.
    const Mlp& policy = *first.policy;
    const int32_t last = policy.config().layers() - 1;
    const int64_t d = config_.num_actions;
    const int64_t in = policy.config().sizes[static_cast<std::size_t>(last)];
    float* prm = params_.data() + policy_offset_;
    ops_->fill(prm + policy.bias_offset(last) + d, d, config_.log_std_init, agents_, p);
    if (!config_.state_dependent_std) {
      ops_->fill(prm + policy.weight_offset(last) + d * in, d * in, 0.0f, agents_, p);
    }
  }

  if (config_.has_trunk() || !config_.has_value()) {
    adam_.push_back(
        std::make_unique<Adam>(device, blas, *ops_, p, options.adam, agents_, batched_));
  } else {
    adam_.push_back(std::make_unique<Adam>(device, blas, *ops_, value_offset_, options.adam,
                                           agents_, batched_));
    adam_.push_back(std::make_unique<Adam>(device, blas, *ops_, p - value_offset_,
                                           options.value_adam, agents_, batched_));
  }
  record_ = std::make_unique<ActivationRecord>(device, config_);

  active_.assign(static_cast<std::size_t>(agents_), 1);
  steps_.assign(static_cast<std::size_t>(agents_), 0);
  for (int64_t k = 0; k < agents_; ++k) active_list_.push_back(k);
  if (batched_ || device.plan().graphs) {
    epsilons_device_ = ParameterSlots<float>(device, static_cast<std::size_t>(agents_));
    // The act steps in device memory: a population's batched sampling reads them there, and so
    // does every sampling call of a recorded update (its arguments must not change).
    steps_device_ = Buffer<uint64_t>(device, static_cast<std::size_t>(agents_));
    steps_device_.zero();
  }
  if (batched_) {
    seeds_device_ = Buffer<uint64_t>(device, static_cast<std::size_t>(agents_));
    seeds_device_.from_host(seeds_);
    active_device_ = Buffer<uint8_t>(device, static_cast<std::size_t>(agents_));
    active_device_.from_host(active_);
    value_coefs_device_ = Buffer<float>(device, static_cast<std::size_t>(agents_));
  }
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
  r.parameters = params_.bytes() + grads_.bytes() + stats_.bytes();
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

void PolicyValueModel::reserve_record(int64_t rows, bool values) {
  BP_CHECK_ARG(!batched_, "reserve_record: batched agents do not record their activations");
  record_->reserve(rows, values, agents_);
}

float* PolicyValueModel::parameters() {
  ++params_version_;
  return params_.data();
}

std::vector<float> PolicyValueModel::get_gradients() const { return grads_.to_host(); }

void PolicyValueModel::set_parameters(std::span<const float> host_params) {
  BP_CHECK_ARG(static_cast<int64_t>(host_params.size()) == agents_ * parameter_count(),
               "set_parameters: " << host_params.size() << " values given, the model has "
                                  << agents_ * parameter_count() << " parameters (" << agents_
                                  << " agent" << (agents_ == 1 ? "" : "s") << " of "
                                  << parameter_count() << ")");
  params_.from_host(host_params);
  ++params_version_;
}

PolicyValueModel::OptimizerState PolicyValueModel::get_optimizer_state(int index,
                                                                       int64_t agent) const {
  BP_CHECK_ARG(index >= 0 && index < optimizer_count(),
               "optimizer " << index << " asked for, the model has " << optimizer_count());
  return adam_[index]->get_state(agent);
}

void PolicyValueModel::set_optimizer_state(int index, const OptimizerState& state, int64_t agent) {
  BP_CHECK_ARG(index >= 0 && index < optimizer_count(),
               "optimizer " << index << " asked for, the model has " << optimizer_count());
  adam_[index]->set_state(state, agent);
}

void PolicyValueModel::set_active(std::span<const uint8_t> active) {
  BP_CHECK_ARG(static_cast<int64_t>(active.size()) == agents_,
               "set_active: " << active.size() << " flags for " << agents_ << " agents");
  active_.assign(active.begin(), active.end());
  active_list_.clear();
  for (int64_t k = 0; k < agents_; ++k) {
    if (active_[k] != 0) active_list_.push_back(k);
  }
  if (batched_) active_device_.from_host(active_);
}

void PolicyValueModel::begin_update() {
  for (const auto& a : adam_) a->begin_update();
  epsilons_device_.rewind();
}

void PolicyValueModel::set_steps(std::span<const uint64_t> steps) {
  BP_CHECK_ARG(static_cast<int64_t>(steps.size()) == agents_,
               "set_steps: " << steps.size() << " counters for " << agents_ << " agents");
  steps_.assign(steps.begin(), steps.end());
  if (steps_device_.size() > 0) {
    device_->copy_parameters(steps_device_.data(), steps_.data(), steps_.size() * sizeof(uint64_t));
  }
}

std::vector<float> PolicyValueModel::part_blocks() const {
  const int64_t block = part_block();
  std::vector<float> out(static_cast<std::size_t>(agents_ * block));
  std::vector<Device::HostCopy> reads;
  for (int64_t k = 0; k < agents_; ++k) {
    float* at = out.data() + k * block;
    reads.push_back({at, grads_.data() + k * parameter_count_,
                     static_cast<std::size_t>(parameter_count_) * sizeof(float)});
    reads.push_back({at + parameter_count_, stats_.data() + k * kStatSlots,
                     static_cast<std::size_t>(kStatColumnsClipped) * sizeof(float)});
  }
  device_->copy_to_host(reads);
  return out;
}

void PolicyValueModel::set_part_blocks(std::span<const float> sum) {
  BP_CHECK_ARG(static_cast<int64_t>(sum.size()) == part_block(),
               "set_part_blocks: " << sum.size() << " floats, expected " << part_block());
  for (int64_t k = 0; k < agents_; ++k) {
    device_->copy_from_host(grads_.data() + k * parameter_count_, sum.data(),
                            static_cast<std::size_t>(parameter_count_) * sizeof(float));
    device_->copy_from_host(stats_.data() + k * kStatSlots, sum.data() + parameter_count_,
                            static_cast<std::size_t>(kStatColumnsClipped) * sizeof(float));
  }
}

UpdateStats PolicyValueModel::stats() const { return agent_stats().front(); }

std::vector<UpdateStats> PolicyValueModel::agent_stats() const {
  return agent_stats_from(stats_.to_host());
}

Device::HostCopy PolicyValueModel::stats_copy(std::vector<float>& slots) const {
  slots.resize(stats_.size());
  return {slots.data(), stats_.data(), stats_.bytes()};
}

std::vector<UpdateStats> PolicyValueModel::agent_stats_from(const std::vector<float>& s) const {
  BP_CHECK_ARG(s.size() == stats_.size(),
               "agent_stats_from: " << s.size() << " slots, expected " << stats_.size());
  const float* divisor = s.data() + agents_ * kStatSlots;
  std::vector<UpdateStats> out;
  out.reserve(static_cast<std::size_t>(agents_));
  for (int64_t k = 0; k < agents_; ++k) {
    out.push_back(stats_from(s.data() + k * kStatSlots, divisor[k], k));
  }
  return out;
}

UpdateStats PolicyValueModel::stats_from(const float* s, float divisor, int64_t agent) const {
  UpdateStats u;
  u.divisor = divisor;
  const double inv = u.divisor > 0 ? 1.0 / u.divisor : 0.0;
  u.policy_loss = -static_cast<double>(s[kStatWeightedLogProb]) * inv;
  u.entropy = static_cast<double>(s[kStatEntropy]) * inv;
  u.value_loss = static_cast<double>(s[kStatSquaredError]) * inv;
  const float value_coef = last_value_coefs_.empty()
                               ? last_loss_.value_coef
                               : last_value_coefs_[static_cast<std::size_t>(agent)];
  u.total_loss = u.policy_loss - static_cast<double>(last_loss_.entropy_coef) * u.entropy +
                 static_cast<double>(value_coef) * u.value_loss;
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
