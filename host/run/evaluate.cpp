#include "batchpole/run/evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <span>

#include "batchpole/device/buffer.hpp"
#include "batchpole/rl/trainer.hpp"

namespace batchpole {

EvalResult evaluate(Device& device, const std::string& checkpoint, const EvalOptions& o) {
  BP_CHECK_ARG(o.episodes > 0 && o.episodes <= (int64_t{1} << 31) - 1,
               "--episodes must be in [1, 2^31), got " << o.episodes);
  const TrainConfig config = Trainer::read_checkpoint_config(checkpoint);
  BP_CHECK_ARG(o.agent >= 0 && o.agent < config.agents,
               "--agent " << o.agent << ": the checkpoint holds " << config.agents << " agent"
                          << (config.agents == 1 ? "" : "s") << " (0 .. " << config.agents - 1
                          << ")");
  const auto params = Trainer::read_checkpoint_parameters(checkpoint);
  ModelOptions mo;
  mo.seed = o.seed;
  PolicyValueModel model(device, model_config_for(config), mo);
  const auto p = static_cast<std::ptrdiff_t>(model.parameter_count());
  model.set_parameters(std::span<const float>(params).subspan(
      static_cast<std::size_t>(o.agent * p), static_cast<std::size_t>(p)));
  const int32_t limit = config.env.max_episode_steps > 0 ? config.env.max_episode_steps : 100000;
  VecEnv env(device, o.episodes, config.env, config.precision);
  env.reset(o.seed);

  const auto n = static_cast<std::size_t>(o.episodes);
  const bool continuous = config.actions == ActionSpace::kContinuous;
  // DQN's policy is greedy in Q (sampling a softmax of Q-values would be no policy of its own).
  const bool greedy = o.greedy || config.algorithm == Algorithm::kDqn;
  Buffer<int32_t> actions(device, continuous ? 0 : n);
  Buffer<float> continuous_actions(device, continuous ? n : 0);
  Buffer<float> logits(device, 2 * n);
  std::vector<int32_t> host_actions(n);
  std::vector<float> host_continuous(n);
  EvalResult r;
  r.algo = to_string(config.algorithm);
  r.greedy = greedy;
  r.episodes = o.episodes;
  r.returns.assign(n, 0.0);
  std::vector<uint8_t> finished(n, 0);
  std::size_t remaining = n;
  for (int32_t t = 0; t < limit && remaining > 0; ++t) {
    const ConstMatrix obs{env.obs(), o.episodes, 4};
    if (continuous) {
      // Greedy: the Gaussian's mean (its first output; the environment clips it).
      if (greedy) {
        model.logits(obs, logits.data());
        const auto head = logits.to_host();
        for (std::size_t i = 0; i < n; ++i) host_continuous[i] = head[2 * i];
        continuous_actions.from_host(host_continuous);
      } else {
        model.act_continuous(obs, static_cast<uint64_t>(t), continuous_actions.data());
      }
      env.step_continuous(continuous_actions.data());
    } else {
      if (greedy) {
        model.logits(obs, logits.data());
        const auto l = logits.to_host();
        for (std::size_t i = 0; i < n; ++i) host_actions[i] = l[2 * i + 1] > l[2 * i] ? 1 : 0;
        actions.from_host(host_actions);
      } else {
        model.act(obs, static_cast<uint64_t>(t), actions.data());
      }
      env.step(actions.data());
    }
    const HostStep s = env.fetch();
    for (std::size_t i = 0; i < n; ++i) {
      if (finished[i] == 0 && (s.terminated[i] | s.truncated[i]) != 0) {
        finished[i] = 1;
        r.returns[i] = s.final_return[i];
        --remaining;
      }
    }
  }
  double sum = 0;
  r.min_return = 1e300;
  r.max_return = -1e300;
  for (double x : r.returns) {
    sum += x;
    r.min_return = std::min(r.min_return, x);
    r.max_return = std::max(r.max_return, x);
  }
  r.mean_return = sum / static_cast<double>(n);
  double var = 0;
  for (double x : r.returns) var += (x - r.mean_return) * (x - r.mean_return);
  r.std_return = std::sqrt(var / static_cast<double>(n));
  return r;
}

}  // namespace batchpole
