#include "rollout.hpp"

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

Rollout::Rollout(Device& d, const RolloutSpec& s, int64_t n) : device(&d), spec(s), envs(n) {
  const auto rows = static_cast<std::size_t>(spec.steps * envs);
  const auto un = static_cast<std::size_t>(envs);
  obs = Buffer<float>(d, 4 * (rows + un));
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
  if (spec.values) {
    values = Buffer<float>(d, rows);
    fit = Buffer<Moments>(d, 2);
  }
  if (spec.log_probs) log_prob = Buffer<float>(d, rows);
  if (spec.bootstrap) {
    // Rows where no episode ended keep what they held; zeros, so that V(final obs) over the
    // whole rollout reads finite numbers everywhere.
    final_obs = Buffer<float>(d, 4 * rows);
    final_obs.zero();
    truncation_value = Buffer<float>(d, rows);
    last_value = Buffer<float>(d, un);
  }
  if (spec.whole_episodes) {
    mask = Buffer<uint8_t>(d, rows);
    ended = Buffer<uint8_t>(d, un);
    ended_count = Buffer<int64_t>(d, 1);
  }
  moments = Buffer<Moments>(d, 1);
  tally = Buffer<EpisodeTally>(d, 1);
}

int64_t Rollout::collect(VecEnv& env, PolicyValueModel& model, uint64_t& act_step, bool record,
                         int64_t env_steps) {
  const int64_t n = envs;
  if (spec.whole_episodes) {
    env.restart_episodes();
    ended.zero();
    ended_count.zero();
  }
  // Row 0: where the env's observations are now (the last rollout's row T, or after a reset
  // or a restore the env's own buffer).
  device->copy_on_device(obs.data(), env.obs(), static_cast<std::size_t>(4 * n) * sizeof(float));
  int64_t t = 0;
  while (t < spec.steps) {
    const int64_t row = t * n;
    float* obs_t = obs.data() + 4 * row;
    const ConstMatrix o{obs_t, n, 4};
    float* lp = spec.log_probs ? log_prob.data() + row : nullptr;
    float* v = spec.values ? values.data() + row : nullptr;
    if (spec.continuous) {
      model.act_continuous(o, act_step++, continuous_actions.data() + row, lp, v,
                           record ? row : -1);
    } else if (spec.epsilon_greedy) {
      model.act_epsilon_greedy(o, act_step++, spec.epsilon.at(env_steps + t * n),
                               actions.data() + row);
    } else {
      model.act(o, act_step++, actions.data() + row, lp, v, record ? row : -1);
    }
    StepTargets out;
    out.obs = obs_t + 4 * n;
    out.reward = rewards.data() + row;
    out.terminated = terminated.data() + row;
    out.truncated = truncated.data() + row;
    out.final_obs = spec.bootstrap ? final_obs.data() + 4 * row : nullptr;
    out.final_return = final_return.data() + row;
    out.final_length = final_length.data() + row;
    if (spec.continuous) {
      env.step_continuous(continuous_actions.data() + row, out);
    } else {
      env.step(actions.data() + row, out);
    }
    ++t;
    if (spec.whole_episodes) {
      device->rl().mark_ended(ended.data(), terminated.data() + row, truncated.data() + row, n,
                              ended_count.data());
      if (t % kDoneCheckEvery == 0) {
        int64_t done = 0;
        device->copy_to_host(&done, ended_count.data(), sizeof(done));
        if (done == n) break;
      }
    }
  }
  return t;
}

}  // namespace batchpole
