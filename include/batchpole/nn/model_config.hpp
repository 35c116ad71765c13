// The shapes of the notebook's networks (PyTorch modules in the notebook):
//   kSeparate     PolicyNetwork 4-64-64-2 and ValueNetwork 4-64-64-1, ReLU, each with its own
//                 Adam (REINFORCE, REINFORCE with baseline).
//   kActorCritic  a shared 4-64 ReLU layer, actor head 64-64 ReLU-2 and critic head
//                 64-64 ReLU-1, one Adam over all parameters (A2C).
#pragma once

#include <cstdint>
#include <vector>

#include "batchpole/nn/mlp.hpp"

namespace batchpole {

enum class Architecture : uint8_t { kSeparate, kActorCritic };

struct ModelConfig {
  Architecture architecture = Architecture::kActorCritic;
  int32_t obs_dim = 4;
  int32_t num_actions = 2;
  std::vector<int32_t> shared_hidden = {64};  // actor-critic only: the shared (activated) layers
  std::vector<int32_t> policy_hidden = {64};  // hidden layers of the policy head or network
  std::vector<int32_t> value_hidden = {64};   // hidden layers of the value head or network
  Activation activation = Activation::kRelu;

  // The notebook's REINFORCE-with-baseline networks: obs-h-h-actions and obs-h-h-1.
  static ModelConfig separate(int32_t obs_dim = 4, int32_t num_actions = 2, int32_t hidden = 64);
  // The notebook's ActorCritic: obs-h shared, h-h-actions actor and h-h-1 critic.
  static ModelConfig actor_critic(int32_t obs_dim = 4, int32_t num_actions = 2,
                                  int32_t hidden = 64);

  void validate() const;  // throws Error(kInvalidArgument)
  [[nodiscard]] bool has_trunk() const { return architecture == Architecture::kActorCritic; }
  [[nodiscard]] MlpConfig trunk_config() const;  // valid when has_trunk()
  [[nodiscard]] MlpConfig policy_config() const;
  [[nodiscard]] MlpConfig value_config() const;
  // The networks in the order of the flat parameter vector and of the recording: the trunk
  // (an empty config without one), the policy, the value network.
  [[nodiscard]] std::vector<MlpConfig> networks() const;
  [[nodiscard]] int64_t parameter_count() const;
};

}  // namespace batchpole
