// The loop every algorithm shares: build what the learner asks for, collect, count the
// episodes, let the learner take its step, report.
#include "batchpole/rl/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "batchpole/core/checked.hpp"
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

void check_learner_state(const TrainConfig& c,
                         const std::vector<std::vector<unsigned char>>& state) {
  make_learner(c)->check_state(state);
}

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
  if (c.agents > 1 && plan.batch_agents) return 0;  // batched agents run the forward again
  // Data-parallel parts: the same decision in every process, whatever its share of the parts.
  if (c.parts > 1 && plan.batch_agents) return 0;
  const auto learner = make_learner(c);
  const RolloutSpec spec = learner->rollout_spec();
  if (!spec.reuses_activations) return 0;
  const std::size_t bytes =
      checked_mul(checked_size(spec.steps), checked_size(c.envs), checked_size(c.agents),
                  PolicyValueModel::record_bytes_per_row(learner->model_config(), spec.values));
  return bytes <= plan.record_budget ? bytes : 0;
}

std::size_t Trainer::bytes_required(const TrainConfig& c, Device& device) {
  const auto learner = make_learner(c);
  const RolloutSpec spec = learner->rollout_spec();
  const DevicePlan& plan = device.plan();
  const std::size_t agents = checked_size(c.agents);
  // A population's rollout keeps T + 1 rows per agent (rollout.hpp).
  const std::size_t rows =
      checked_mul(checked_size(spec.steps + (c.agents > 1 ? 1 : 0)), checked_size(c.envs), agents);
  const MemoryReport m = PolicyValueModel::memory_required(
      learner->model_config(), c.chunk_rows > 0 ? c.chunk_rows : plan.chunk_rows, device.threads(),
      plan.shards, c.agents, plan.batch_agents);
  // Saturating arithmetic: a rollout of 2^31 environments x 2^31 steps must not wrap to a size
  // that fits.
  // (The fields bound envs to 2^31 and agents to 2^16: their product fits.)
  return checked_add(VecEnv::bytes_required(c.envs * c.agents, c.precision),
                     checked_mul(rows, Rollout::bytes_per_row(spec)),
                     checked_mul(checked_size(c.envs), agents, 8), m.total(), record_bytes(c, plan),
                     learner->bytes_required(device, c.envs, c.agents));
}

Trainer::Trainer(Device& device, const TrainConfig& config, DataParallel data_parallel)
    : device_(&device), config_(config), parts_(std::move(data_parallel)) {
  config_.validate();
  const std::size_t need = bytes_required(config_, device);
  const std::size_t record = record_bytes(config_, device.plan());
  const std::size_t have = device.available_memory();
  BP_REQUIRE(
      need <= have, kOutOfMemory,
      "training " << to_string(config_.algorithm) << " on " << config_.envs << " environments"
                  << (config_.agents > 1 ? " per agent" : "")
                  << (config_.agents > 1 ? " x " + std::to_string(config_.agents) + " agents" : "")
                  << " needs about " << bytes_text(need) << " on " << device.description()
                  << ", but only " << have << " bytes are available (fewer --envs"
                  << (config_.agents > 1 ? " or --agents" : "") << " or a shorter rollout"
                  << (record > 0 ? ", or --no-reuse-activations to save " + std::to_string(record) +
                                       " bytes"
                                 : std::string())
                  << ")");
  const int64_t k_agents = config_.agents;
  std::vector<uint64_t> seeds;
  for (int64_t k = 0; k < k_agents; ++k) {
    AgentProgress a;
    a.seed = config_.seed + static_cast<uint64_t>(k);
    seeds.push_back(a.seed);
    agents_.push_back(std::move(a));
  }
  // Data-parallel parts: this process's parts run as a population of `parts` agents of envs /
  // parts envs each, all with the one seed, keyed by the global env index.
  int64_t envs = config_.envs;
  int64_t first_env = 0;
  if (config_.parts > 1) {
    if (parts_.local_parts <= 0 || !parts_.gather) {
      parts_.first_part = 0;
      parts_.local_parts = config_.parts;
    }
    BP_CHECK_ARG(parts_.first_part >= 0 && parts_.first_part + parts_.local_parts <= config_.parts,
                 "data-parallel parts [" << parts_.first_part << ", "
                                         << parts_.first_part + parts_.local_parts << ") of "
                                         << config_.parts);
    envs = config_.envs / config_.parts;
    first_env = parts_.first_part * envs;
    seeds.assign(static_cast<std::size_t>(parts_.local_parts), config_.seed);
  }
  const auto model_agents = static_cast<int64_t>(seeds.size());
  learner_ = make_learner(config_);
  env_ = std::make_unique<VecEnv>(device, envs * model_agents, config_.env, config_.precision);
  if (config_.parts > 1) env_->set_global_keys(static_cast<uint32_t>(first_env));
  env_->reset(seeds);
  ModelOptions options = learner_->model_options();
  options.agents = model_agents;
  if (model_agents > 1) options.seeds = seeds;
  if (config_.parts > 1) {
    options.global_envs = true;
    options.first_env = static_cast<uint32_t>(first_env);
  }
  model_ = std::make_unique<PolicyValueModel>(device, learner_->model_config(), options);
  learner_->attach(device, *model_);
  const RolloutSpec spec = learner_->rollout_spec();
  rollout_ = std::make_unique<Rollout>(device, spec, envs, model_agents);
  if (model_agents > 1) {
    // PPO's shuffles: each agent's seed, or each data-parallel part's own shuffle seed.
    std::vector<uint64_t> shuffle = seeds;
    if (config_.parts > 1) {
      for (std::size_t k = 0; k < shuffle.size(); ++k) {
        shuffle[k] = part_shuffle_seed(config_.seed, parts_.first_part + static_cast<int64_t>(k));
      }
    }
    seeds_ = Buffer<uint64_t>(device, shuffle.size());
    seeds_.from_host(shuffle);
  }
  reuse_ = record > 0;
  if (reuse_) model_->reserve_record(spec.steps * envs, spec.values);
}

Trainer::~Trainer() = default;

int64_t Trainer::active_agents() const {
  return std::count_if(agents_.begin(), agents_.end(),
                       [](const AgentProgress& a) { return a.active; });
}

int64_t Trainer::env_steps() const {
  int64_t total = 0;
  for (const AgentProgress& a : agents_) total += a.env_steps;
  return total;
}

void Trainer::apply_active() {
  std::vector<uint8_t> flags;
  for (const AgentProgress& a : agents_) flags.push_back(a.active ? 1 : 0);
  // Data-parallel parts: the one agent's flag for each of its parts here.
  if (config_.parts > 1) flags.assign(static_cast<std::size_t>(parts_here()), flags.front());
  model_->set_active(flags);
  env_->set_active(flags);
}

void Trainer::set_active(int64_t agent, bool active) {
  BP_CHECK_ARG(agent >= 0 && agent < agents(),
               "set_active: agent " << agent << " of a population of " << agents());
  if (agents_[agent].active == active) return;
  agents_[agent].active = active;
  apply_active();
}

std::vector<std::vector<unsigned char>> Trainer::learner_state() const {
  return learner_->save_state();
}

void Trainer::restore_learner_state(const std::vector<std::vector<unsigned char>>& agents) {
  learner_->restore_state(agents);
}

UpdateRecord Trainer::update() {
  BP_CHECK_ARG(agents() == 1,
               "update: a population of " << agents() << " agents updates with update_agents");
  std::vector<UpdateRecord> records = update_agents();
  BP_CHECK_ARG(!records.empty(), "update: the agent was stopped");
  return records.front();
}

std::vector<UpdateRecord> Trainer::update_agents() {
  if (config_.parts > 1) return update_parts();
  const OpCounts before = device_->counts();
  const int64_t k_agents = agents();
  std::vector<uint8_t> active;
  for (const AgentProgress& a : agents_) active.push_back(a.active ? 1 : 0);
  if (active_agents() == 0) return {};
  Rollout& r = *rollout_;
  RlOps& rl = device_->rl();
  if (config_.lr_anneal_steps > 0) {
    // Linearly to 0 over lr_anneal_steps env steps, from where this update starts.
    for (int64_t k = 0; k < k_agents; ++k) {
      const double left = 1.0 - static_cast<double>(agents_[k].env_steps) /
                                    static_cast<double>(config_.lr_anneal_steps);
      const double scale = std::max(left, 0.0);
      model_->optimizer(0).set_lr(k, static_cast<double>(config_.lr) * scale);
      if (model_->optimizer_count() > 1) {
        model_->optimizer(1).set_lr(k, static_cast<double>(config_.value_lr) * scale);
      }
    }
  }
  std::vector<uint64_t> act_steps;
  std::vector<int64_t> env_steps;
  for (const AgentProgress& a : agents_) {
    act_steps.push_back(a.act_steps);
    env_steps.push_back(a.env_steps);
  }
  const uint8_t* mask = r.spec.whole_episodes ? r.mask.data() : nullptr;
  // Episodes that ended are read before learning where the learner needs them (whole episodes:
  // the valid samples) or the device is cheap to wait for; else with the statistics at the end,
  // so that the update waits once, and then the update, from acting to the optimiser's step,
  // runs as one recorded sequence where the device records them.
  const bool tally_late = device_->plan().sync_free_updates && mask == nullptr;
  std::vector<EpisodeTally> tally(static_cast<std::size_t>(k_agents));
  const Device::HostCopy tally_copy{tally.data(), r.tally.data(),
                                    tally.size() * sizeof(EpisodeTally)};
  std::vector<int64_t> steps;
  LearnReport report;
  const auto work = [&] {
    model_->begin_update();
    steps = r.collect(*env_, *model_, act_steps, active, reuse_, env_steps);
    const int64_t t_max = *std::max_element(steps.begin(), steps.end());
    const int64_t stride = r.agent_stride();
    if (mask != nullptr) {
      rl.first_episode_mask(r.terminated.data(), r.truncated.data(), t_max, r.envs, r.mask.data(),
                            k_agents, stride);
    }
    rl.episode_tally({r.terminated.data(), r.truncated.data(), r.final_return.data(),
                      r.final_length.data(), mask},
                     t_max * r.envs, r.tally.data(), k_agents, stride);
    if (!tally_late) device_->copy_to_host(tally_copy.dst, tally_copy.src, tally_copy.bytes);
    report = learner_->learn(LearnContext{
        *device_, config_, *env_, *model_, r, t_max, mask,
        tally_late ? std::span<const EpisodeTally>() : std::span<const EpisodeTally>(tally), reuse_,
        updates_, steps, active, k_agents > 1 ? seeds_.data() : nullptr});
  };
  if (tally_late && learner_->recordable()) {
    device_->run_recorded(*recording_, work);
  } else {
    work();
  }
  for (int64_t k = 0; k < k_agents; ++k) agents_[k].act_steps = act_steps[k];
  // One wait for what the update reports: the statistics, the value fit, the tally if late.
  std::vector<float> slots;
  std::vector<Moments> fit(report.fit ? static_cast<std::size_t>(2 * k_agents) : 0);
  std::vector<Device::HostCopy> reads{model_->stats_copy(slots)};
  if (report.fit) reads.push_back({fit.data(), r.fit.data(), fit.size() * sizeof(Moments)});
  if (tally_late) reads.push_back(tally_copy);
  device_->copy_to_host(reads);
  const std::vector<UpdateStats> stats = model_->agent_stats_from(slots);
  ++updates_;
  const OpCounts after = device_->counts();
  const OpCounts ops{after.stream_ops - before.stream_ops, after.host_syncs - before.host_syncs};

  std::vector<UpdateRecord> records;
  for (int64_t k = 0; k < k_agents; ++k) {
    if (active[k] == 0) continue;
    AgentProgress& a = agents_[k];
    a.env_steps += steps[k] * r.envs;
    ++a.updates;
    a.episodes += static_cast<int64_t>(tally[k].episodes);
    a.recent.add(tally[k]);

    records.push_back(update_record(a, k, steps[k], stats[k], report.fit ? &fit[k] : nullptr,
                                    report.fit ? &fit[k_agents + k] : nullptr, report.epochs[k],
                                    ops));
  }
  return records;
}

UpdateRecord update_record(const AgentProgress& a, int64_t agent, int64_t rollout_steps,
                           const UpdateStats& st, const Moments* targets, const Moments* residuals,
                           int32_t epochs, OpCounts ops) {
  UpdateRecord rec;
  rec.agent = agent;
  rec.update = a.updates;
  rec.env_steps = a.env_steps;
  rec.episodes = a.episodes;
  rec.rollout_steps = rollout_steps;
  rec.recent = a.recent.total();
  rec.loss = st;
  // Per valid sample, whatever divisor the loss used (episodes for REINFORCE and baseline).
  const double per_sample = st.divisor / std::max(st.valid_samples, 1.0);
  rec.loss.entropy = st.entropy * per_sample;
  rec.loss.value_loss = st.value_loss * per_sample;
  rec.value_loss = rec.loss.value_loss;
  if (targets != nullptr) {
    // Over the rollout's samples; 0 where the targets do not vary.
    const auto var = [](const Moments& m) {
      if (m.count < 2) return 0.0;
      const double mean = m.sum / m.count;
      return std::max((m.sum_sq - m.count * mean * mean) / (m.count - 1), 0.0);
    };
    const double var_targets = var(*targets);
    rec.explained_variance = var_targets > 0 ? 1.0 - var(*residuals) / var_targets : 0.0;
  }
  rec.epochs = epochs;
  rec.finite = std::isfinite(st.policy_loss) && std::isfinite(st.value_loss) &&
               std::isfinite(st.entropy) && std::isfinite(st.grad_norm) &&
               std::isfinite(st.value_grad_norm);
  rec.ops = ops;
  return rec;
}

}  // namespace batchpole
