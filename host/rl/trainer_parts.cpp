// One data-parallel update (TrainConfig::parts > 1, rl/data_parallel.hpp): this process's parts
// collect as a population of parts, the learner sums their statistics and gradients in part
// order over all parts (its LearnContext names the parts), and the update's record is the one
// agent's, from the sums: every process of a distributed run computes the same record.
#include <algorithm>
#include <cmath>

#include "batchpole/rl/trainer.hpp"
#include "learner.hpp"
#include "rollout.hpp"

namespace batchpole {

std::vector<UpdateRecord> Trainer::update_parts() {
  const OpCounts before = device_->counts();
  AgentProgress& a = agents_.front();
  if (!a.active) return {};
  model_->begin_update();
  Rollout& r = *rollout_;
  RlOps& rl = device_->rl();
  const int64_t here = parts_here();
  const auto uhere = static_cast<std::size_t>(here);
  if (config_.lr_anneal_steps > 0) {
    // Every part the one agent's rate, from the env steps of the whole batch.
    const double left =
        1.0 - static_cast<double>(a.env_steps) / static_cast<double>(config_.lr_anneal_steps);
    const double scale = std::max(left, 0.0);
    for (int64_t k = 0; k < here; ++k) {
      model_->optimizer(0).set_lr(k, static_cast<double>(config_.lr) * scale);
      if (model_->optimizer_count() > 1) {
        model_->optimizer(1).set_lr(k, static_cast<double>(config_.value_lr) * scale);
      }
    }
  }
  // Every part samples at the agent's counter; the global env index tells the draws apart.
  std::vector<uint64_t> act_steps(uhere, a.act_steps);
  const std::vector<uint8_t> active(uhere, 1);
  const std::vector<int64_t> steps = r.collect(*env_, *model_, act_steps, active, reuse_);
  // Whole episodes: each part collects until its own envs have ended one (as a population's
  // agent does), so the parts' rollouts may differ in length.
  const int64_t t = *std::max_element(steps.begin(), steps.end());
  const int64_t stride = r.agent_stride();
  const uint8_t* mask = r.spec.whole_episodes ? r.mask.data() : nullptr;
  if (mask != nullptr) {
    rl.first_episode_mask(r.terminated.data(), r.truncated.data(), t, r.envs, r.mask.data(), here,
                          stride);
  }
  rl.episode_tally(
      {r.terminated.data(), r.truncated.data(), r.final_return.data(), r.final_length.data(), mask},
      t * r.envs, r.tally.data(), here, stride);
  std::vector<EpisodeTally> tally(uhere);
  device_->copy_to_host(tally.data(), r.tally.data(), tally.size() * sizeof(EpisodeTally));

  const LearnReport report = learner_->learn(LearnContext{
      *device_, config_, *env_, *model_, r, t, mask, std::span<const EpisodeTally>(tally), reuse_,
      updates_, steps, active, here > 1 ? seeds_.data() : nullptr, &parts_});
  std::vector<float> slots;
  std::vector<Moments> fit(report.fit ? 2 * uhere : 0);
  std::vector<Device::HostCopy> reads{model_->stats_copy(slots)};
  if (report.fit) reads.push_back({fit.data(), r.fit.data(), fit.size() * sizeof(Moments)});
  device_->copy_to_host(reads);
  // Every part holds the summed loss sums and took the same step: part 0's statistics are the
  // agent's.
  const UpdateStats st = model_->agent_stats_from(slots).front();
  // The batch's episodes, value fit and rollout length: every part's, in part order.
  std::vector<PartReport> mine(uhere);
  for (std::size_t k = 0; k < uhere; ++k) {
    mine[k].tally = tally[k];
    if (report.fit) {
      mine[k].targets = fit[k];
      mine[k].residuals = fit[uhere + k];
    }
    mine[k].steps = steps[k];
  }
  const std::vector<PartReport> parts = all_parts<PartReport>(parts_, mine);
  EpisodeTally ended;
  Moments targets;
  Moments residuals;
  int64_t rollout_steps = 0;
  int64_t part_steps = 0;
  for (const PartReport& p : parts) {
    ended = add(ended, p.tally);
    targets = add(targets, p.targets);
    residuals = add(residuals, p.residuals);
    rollout_steps = std::max(rollout_steps, p.steps);
    part_steps += p.steps;
  }
  // The agent's sampling counter advances by the longest part's steps, so that every part
  // draws from the same step on (their env indices keep the draws apart).
  a.act_steps += static_cast<uint64_t>(rollout_steps);
  ++updates_;
  const OpCounts after = device_->counts();

  a.env_steps += part_steps * r.envs;
  ++a.updates;
  a.episodes += static_cast<int64_t>(ended.episodes);
  a.recent.add(ended);
  return {
      update_record(a, 0, rollout_steps, st, report.fit ? &targets : nullptr,
                    report.fit ? &residuals : nullptr, report.epochs.front(),
                    {after.stream_ops - before.stream_ops, after.host_syncs - before.host_syncs})};
}

}  // namespace batchpole
