// The loop every algorithm shares: build what the learner asks for, collect, count the
// episodes, let the learner take its step, report.
#include "batchpole/rl/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "learner.hpp"
#include "rollout.hpp"

namespace batchpole {

// ---- recent episodes ----------------------------------------------------------------------

void RecentEpisodes::add(const EpisodeTally& t) {
  if (t.episodes <= 0) return;
  entries_.push_back(t);
  // Drop the oldest update while the newer ones still hold at least `window_` episodes.
  double newer = 0;
  for (const auto& e : entries_) newer += e.episodes;
  while (entries_.size() > 1 && newer - entries_.front().episodes >= static_cast<double>(window_)) {
    newer -= entries_.front().episodes;
    entries_.pop_front();
  }
}

EpisodeTally RecentEpisodes::total() const {
  EpisodeTally sum;
  for (const auto& e : entries_) sum = batchpole::add(sum, e);
  return sum;
}

// ---- the trainer ----------------------------------------------------------------------------

ModelConfig model_config_for(const TrainConfig& c) { return make_learner(c)->model_config(); }

std::unique_ptr<Learner> make_learner(const TrainConfig& config) {
  switch (config.algorithm) {
    case Algorithm::kReinforce:
      return make_reinforce(config);
    case Algorithm::kBaseline:
      return make_baseline(config);
    case Algorithm::kPpo:
      return make_ppo(config);
    case Algorithm::kDqn:
      return make_dqn(config);
    case Algorithm::kA2C:
    default:
      return make_a2c(config);
  }
}

std::size_t Trainer::record_bytes(const TrainConfig& c, const DevicePlan& plan) {
  if (!c.reuse_activations) return 0;
  const auto learner = make_learner(c);
  const RolloutSpec spec = learner->rollout_spec();
  if (!spec.reuses_activations) return 0;
  const std::size_t bytes =
      static_cast<std::size_t>(spec.steps * c.envs) *
      PolicyValueModel::record_bytes_per_row(learner->model_config(), spec.values);
  return bytes <= plan.record_budget ? bytes : 0;
}

std::size_t Trainer::bytes_required(const TrainConfig& c, Device& device) {
  const auto learner = make_learner(c);
  const RolloutSpec spec = learner->rollout_spec();
  const DevicePlan& plan = device.plan();
  const auto rows = static_cast<std::size_t>(spec.steps * c.envs);
  const MemoryReport m = PolicyValueModel::memory_required(
      learner->model_config(), c.chunk_rows > 0 ? c.chunk_rows : plan.chunk_rows, device.threads(),
      plan.shards);
  return VecEnv::bytes_required(c.envs, c.precision) + rows * Rollout::bytes_per_row(spec) +
         static_cast<std::size_t>(c.envs) * 8 + m.total() + record_bytes(c, plan) +
         learner->bytes_required(device, c.envs);
}

Trainer::Trainer(Device& device, const TrainConfig& config) : device_(&device), config_(config) {
  config_.validate();
  const std::size_t need = bytes_required(config_, device);
  const std::size_t record = record_bytes(config_, device.plan());
  const std::size_t have = device.available_memory();
  BP_REQUIRE(need <= have, kOutOfMemory,
             "training " << to_string(config_.algorithm) << " on " << config_.envs
                         << " environments needs about " << need << " bytes on "
                         << device.description() << ", but only " << have
                         << " bytes are available (fewer --envs or a shorter rollout"
                         << (record > 0 ? ", or --no-reuse-activations to save " +
                                              std::to_string(record) + " bytes"
                                        : std::string())
                         << ")");
  learner_ = make_learner(config_);
  env_ = std::make_unique<VecEnv>(device, config_.envs, config_.env, config_.precision);
  env_->reset(config_.seed);
  model_ = std::make_unique<PolicyValueModel>(device, learner_->model_config(),
                                              learner_->model_options());
  learner_->attach(device, *model_, config_.envs);
  const RolloutSpec spec = learner_->rollout_spec();
  rollout_ = std::make_unique<Rollout>(device, spec, config_.envs);
  reuse_ = record > 0;
  if (reuse_) model_->reserve_record(spec.steps * config_.envs, spec.values);
}

Trainer::~Trainer() = default;

std::vector<unsigned char> Trainer::learner_state() const { return learner_->save_state(); }

void Trainer::restore_learner_state(const std::vector<unsigned char>& bytes) {
  learner_->restore_state(bytes);
}

UpdateRecord Trainer::update() {
  const OpCounts before = device_->counts();
  Rollout& r = *rollout_;
  RlOps& rl = device_->rl();
  if (config_.lr_anneal_steps > 0) {
    // Linearly to 0 over lr_anneal_steps env steps, from where this update starts.
    const double left =
        1.0 - static_cast<double>(env_steps_) / static_cast<double>(config_.lr_anneal_steps);
    const double scale = std::max(left, 0.0);
    model_->optimizer(0).set_lr(static_cast<double>(config_.lr) * scale);
    if (model_->optimizer_count() > 1) {
      model_->optimizer(1).set_lr(static_cast<double>(config_.value_lr) * scale);
    }
  }
  const int64_t steps = r.collect(*env_, *model_, act_steps_, reuse_, env_steps_);
  env_steps_ += steps * r.envs;
  const int64_t rows = steps * r.envs;
  const uint8_t* mask = r.spec.whole_episodes ? r.mask.data() : nullptr;
  if (mask != nullptr) {
    rl.first_episode_mask(r.terminated.data(), r.truncated.data(), steps, r.envs, r.mask.data());
  }
  // Episodes that ended (one host sync per update).
  rl.episode_tally(
      {r.terminated.data(), r.truncated.data(), r.final_return.data(), r.final_length.data(), mask},
      rows, r.tally.data());
  EpisodeTally tally;
  device_->copy_to_host(&tally, r.tally.data(), sizeof(tally));

  const LearnReport report = learner_->learn(
      LearnContext{*device_, config_, *env_, *model_, r, steps, mask, tally, reuse_, updates_});
  const UpdateStats stats = model_->stats();
  double explained_variance = 0;
  if (report.fit) {
    // 1 - Var(G - V) / Var(G) over the rollout's samples (0 where the targets do not vary).
    Moments fit[2];
    device_->copy_to_host(fit, r.fit.data(), sizeof(fit));
    const auto var = [](const Moments& m) {
      if (m.count < 2) return 0.0;
      const double mean = m.sum / m.count;
      return std::max((m.sum_sq - m.count * mean * mean) / (m.count - 1), 0.0);
    };
    const double var_targets = var(fit[0]);
    explained_variance = var_targets > 0 ? 1.0 - var(fit[1]) / var_targets : 0.0;
  }

  ++updates_;
  episodes_ += static_cast<int64_t>(tally.episodes);
  recent_.add(tally);

  UpdateRecord rec;
  rec.update = updates_;
  rec.env_steps = env_steps_;
  rec.episodes = episodes_;
  rec.rollout_steps = steps;
  rec.recent = recent_.total();
  rec.loss = stats;
  // Per valid sample, whatever divisor the loss used (episodes for REINFORCE and baseline).
  const double per_sample = stats.divisor / std::max(stats.valid_samples, 1.0);
  rec.loss.entropy = stats.entropy * per_sample;
  rec.loss.value_loss = stats.value_loss * per_sample;
  rec.value_loss = rec.loss.value_loss;
  rec.explained_variance = explained_variance;
  rec.epochs = report.epochs;
  rec.finite = std::isfinite(stats.policy_loss) && std::isfinite(stats.value_loss) &&
               std::isfinite(stats.entropy) && std::isfinite(stats.grad_norm) &&
               std::isfinite(stats.value_grad_norm);
  const OpCounts after = device_->counts();
  rec.ops = {after.stream_ops - before.stream_ops, after.host_syncs - before.host_syncs};
  return rec;
}

}  // namespace batchpole
