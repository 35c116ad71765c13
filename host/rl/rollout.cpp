#include "rollout.hpp"

#include <algorithm>

#include "batchpole/rl/rl_ops.hpp"

namespace batchpole {

namespace {
// Whole-episode rollouts check "has every env finished?" this often: one host sync per
// kDoneCheckEvery steps instead of one per step.
constexpr int64_t kDoneCheckEvery = 16;
}  // namespace

std::size_t Rollout::bytes_per_row(const RolloutSpec& spec) {
  std::size_t b = 4 * sizeof(float)                   // obs
                  + sizeof(int32_t)                   // actions (or continuous actions)
                  + 3 * sizeof(float)                 // rewards, returns, weights
                  + 2                                 // terminated, truncated
                  + sizeof(float) + sizeof(int32_t);  // final return and length
  if (spec.values) b += sizeof(float);
  if (spec.log_probs) b += sizeof(float);
  if (spec.bootstrap) b += 4 * sizeof(float) + sizeof(float);  // final obs, V(final obs)
  if (spec.whole_episodes) b += 1;                             // mask
  return b;
}

Rollout::Rollout(Device& d, const RolloutSpec& s, int64_t n, int64_t k)
    : device(&d), spec(s), envs(n), agents(k) {
  BP_CHECK_ARG(k >= 1, "Rollout: needs at least one agent, got " << k);
  // One agent: T x N rows (obs T + 1); a population: K blocks of (T + 1) x N rows.
  const auto rows = static_cast<std::size_t>(k > 1 ? k * (spec.steps + 1) * envs : spec.steps * envs);
  const auto obs_rows = static_cast<std::size_t>(k > 1 ? rows : (spec.steps + 1) * envs);
  const auto un = static_cast<std::size_t>(envs * k);
  const auto uk = static_cast<std::size_t>(k);
  obs = Buffer<float>(d, 4 * obs_rows);
  if (spec.continuous) {
    continuous_actions = Buffer<float>(d, rows);
  } else {
    actions = Buffer<int32_t>(d, rows);
  }
  rewards = Buffer<float>(d, rows);
  returns = Buffer<float>(d, rows);
  weights = Buffer<float>(d, rows);
  terminated = Buffer<uint8_t>(d, rows);
  truncated = Buffer<uint8_t>(d, rows);
  final_return = Buffer<float>(d, rows);
  final_length = Buffer<int32_t>(d, rows);
  if (k > 1) {
    // Rows an agent never wrote (after it stopped, or the gap row of each block) are read by
    // the batched passes and the reductions under a mask: finite numbers, not garbage.
    obs.zero();
    rewards.zero();
    terminated.zero();
    truncated.zero();
    if (spec.continuous) {
      continuous_actions.zero();
    } else {
      actions.zero();
    }
  }
  if (spec.values) {
    values = Buffer<float>(d, rows);
    fit = Buffer<Moments>(d, 2 * uk);
    if (k > 1) values.zero();
  }
  if (spec.log_probs) log_prob = Buffer<float>(d, rows);
  if (spec.bootstrap || k > 1) {
    // Rows where no episode ended keep what they held; zeros, so that V(final obs) over the
    // whole rollout reads finite numbers everywhere. (A population's strided step names every
    // output, so it keeps them even without a bootstrap.)
    final_obs = Buffer<float>(d, 4 * rows);
    final_obs.zero();
  }
  if (spec.bootstrap) {
    truncation_value = Buffer<float>(d, rows);
    last_value = Buffer<float>(d, un);
  }
  if (spec.whole_episodes) {
    mask = Buffer<uint8_t>(d, rows);
    ended = Buffer<uint8_t>(d, un);
    ended_count = Buffer<int64_t>(d, uk);
  }
  moments = Buffer<Moments>(d, uk);
  tally = Buffer<EpisodeTally>(d, uk);
}

std::vector<int64_t> Rollout::collect(VecEnv& env, PolicyValueModel& model,
                                      std::span<uint64_t> act_steps,
                                      std::span<const uint8_t> active, bool record,
                                      std::span<const int64_t> env_steps) {
  const int64_t n = envs;
  const int64_t stride = agent_stride();
  BP_CHECK_ARG(static_cast<int64_t>(act_steps.size()) == agents &&
                   static_cast<int64_t>(active.size()) == agents,
               "collect: " << act_steps.size() << " counters and " << active.size()
                           << " flags for " << agents << " agents");
  model.set_steps(act_steps);
  if (spec.whole_episodes) {
    env.restart_episodes();
    ended.zero();
    ended_count.zero();
  }
  // Row 0: where the env's observations are now (the last rollout's row T, or after a reset
  // or a restore the env's own buffer).
  const std::size_t obs_bytes = static_cast<std::size_t>(4 * n) * sizeof(float);
  if (agents > 1) {
    const int64_t from = env.agent_stride() > 0 ? env.agent_stride() : n;
    device->copy_rows_on_device(obs.data(), static_cast<std::size_t>(4 * stride) * sizeof(float),
                                env.obs(), static_cast<std::size_t>(4 * from) * sizeof(float),
                                obs_bytes, static_cast<std::size_t>(agents));
  } else {
    device->copy_on_device(obs.data(), env.obs(), obs_bytes);
  }
  // Whole episodes: each agent collects until its envs have all ended once.
  std::vector<uint8_t> collecting(active.begin(), active.end());
  std::vector<int64_t> steps(static_cast<std::size_t>(agents), 0);
  std::vector<int64_t> done(static_cast<std::size_t>(agents), 0);
  std::vector<float> epsilons(static_cast<std::size_t>(agents), 0.0f);
  BP_CHECK_ARG(!spec.epsilon_greedy || static_cast<int64_t>(env_steps.size()) == agents,
               "collect: " << env_steps.size() << " env step counts for " << agents << " agents");
  int64_t t = 0;
  while (t < spec.steps) {
    const int64_t row = t * n;
    float* obs_t = obs.data() + 4 * row;
    const ConstMatrix o{obs_t, n, 4};
    const auto step = static_cast<uint64_t>(t);
    float* lp = spec.log_probs ? log_prob.data() + row : nullptr;
    float* v = spec.values ? values.data() + row : nullptr;
    if (spec.continuous) {
      model.act_continuous(o, step, continuous_actions.data() + row, lp, v, record ? row : -1,
                           stride);
    } else if (spec.epsilon_greedy) {
      for (int64_t k = 0; k < agents; ++k) epsilons[k] = spec.epsilon.at(env_steps[k] + t * n);
      model.act_epsilon_greedy(o, step, epsilons, actions.data() + row, stride);
    } else {
      model.act(o, step, actions.data() + row, lp, v, record ? row : -1, stride);
    }
    StepTargets out;
    out.obs = obs_t + 4 * n;
    out.reward = rewards.data() + row;
    out.terminated = terminated.data() + row;
    out.truncated = truncated.data() + row;
    out.final_obs = final_obs.size() > 0 ? final_obs.data() + 4 * row : nullptr;
    out.final_return = final_return.data() + row;
    out.final_length = final_length.data() + row;
    out.agent_stride = stride;
    if (spec.continuous) {
      env.step_continuous(continuous_actions.data() + row, out);
    } else {
      env.step(actions.data() + row, out);
    }
    ++t;
    if (spec.whole_episodes) {
      device->rl().mark_ended(ended.data(), terminated.data() + row, truncated.data() + row, n,
                              ended_count.data(), agents, stride);
      if (t % kDoneCheckEvery == 0) {
        device->copy_to_host(done.data(), ended_count.data(), done.size() * sizeof(int64_t));
        bool changed = false;
        bool any = false;
        for (int64_t k = 0; k < agents; ++k) {
          if (collecting[k] != 0 && done[k] == n) {
            collecting[k] = 0;
            steps[k] = t;
            changed = true;
          }
          any = any || collecting[k] != 0;
        }
        if (!any) break;
        if (changed) {
          env.set_active(collecting);
          model.set_active(collecting);
        }
      }
    }
  }
  for (int64_t k = 0; k < agents; ++k) {
    if (collecting[k] != 0) steps[k] = t;
    act_steps[k] += static_cast<uint64_t>(steps[k]);
    if (steps[k] < t) {
      // The env reads its observations where the last step wrote them, row t of every agent;
      // an agent that stopped earlier has its own at row steps[k], and an inactive one at row
      // 0 (it must find them there when it is active again).
      const int64_t at = k * stride;
      device->copy_on_device(obs.data() + 4 * (at + t * n), obs.data() + 4 * (at + steps[k] * n),
                             obs_bytes);
    }
  }
  if (spec.whole_episodes && collecting != std::vector<uint8_t>(active.begin(), active.end())) {
    env.set_active(active);
    model.set_active(active);
  }
  return steps;
}

}  // namespace batchpole
