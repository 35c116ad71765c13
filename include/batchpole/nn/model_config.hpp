// The shapes of the notebook's networks (PyTorch modules in the notebook):
//   kSeparate     PolicyNetwork 4-64-64-2 and ValueNetwork 4-64-64-1, ReLU, each with its own
//                 Adam (REINFORCE, REINFORCE with baseline).
//   kActorCritic  a shared 4-64 ReLU layer, actor head 64-64 ReLU-2 and critic head
//                 64-64 ReLU-1, one Adam over all parameters (A2C).
//   kQNetwork     one network 4-64-64-2 whose outputs are Q-values, no value network, one Adam
//                 (DQN; the "policy" network and its outputs, the "logits", are Q's).
//
// The policy head is categorical (num_actions logits) or, for continuous actions, a diagonal
// Gaussian (the notebook's section 10): the policy network then has 2 num_actions outputs, the
// means and the log standard deviations of num_actions action dimensions. The log-stds are
// either outputs of the network (state_dependent_std) or, as in the notebook's
// ContinuousPolicyNetwork, one learned value per dimension: the bias of an output unit whose
// weights are held at zero (the model zeroes their gradients), so that the log-std takes no
// input and needs no parameter block of its own.
#pragma once

#include <cstdint>
#include <vector>

#include "batchpole/nn/mlp.hpp"

namespace batchpole {

enum class Architecture : uint8_t { kSeparate, kActorCritic, kQNetwork };
enum class PolicyHead : uint8_t { kCategorical, kGaussian };

struct ModelConfig {
  Architecture architecture = Architecture::kActorCritic;
  int32_t obs_dim = 4;
  int32_t num_actions = 2;
  std::vector<int32_t> shared_hidden = {64};  // actor-critic only: the shared (activated) layers
  std::vector<int32_t> policy_hidden = {64};  // hidden layers of the policy head or network
  std::vector<int32_t> value_hidden = {64};   // hidden layers of the value head or network
  Activation activation = Activation::kRelu;
  PolicyHead head = PolicyHead::kCategorical;  // kGaussian: num_actions is the action dimension
  bool state_dependent_std = false;            // Gaussian: log-stds from the network's inputs
  float log_std_init = 0.0f;                   // Gaussian: the log-stds' initial bias

  // The notebook's REINFORCE-with-baseline networks: obs-h-h-actions and obs-h-h-1.
  static ModelConfig separate(int32_t obs_dim = 4, int32_t num_actions = 2, int32_t hidden = 64);
  // The notebook's ActorCritic: obs-h shared, h-h-actions actor and h-h-1 critic.
  static ModelConfig actor_critic(int32_t obs_dim = 4, int32_t num_actions = 2,
                                  int32_t hidden = 64);
  // DQN's Q-network: obs-h-h-actions.
  static ModelConfig q_network(int32_t obs_dim = 4, int32_t num_actions = 2, int32_t hidden = 64);
  // This configuration with the Gaussian head over `action_dim` dimensions.
  [[nodiscard]] ModelConfig with_gaussian_head(int32_t action_dim, bool state_std,
                                               float log_std0) const;

  void validate() const;  // throws Error(kInvalidArgument)
  [[nodiscard]] bool has_trunk() const { return architecture == Architecture::kActorCritic; }
  [[nodiscard]] bool has_value() const { return architecture != Architecture::kQNetwork; }
  [[nodiscard]] bool gaussian() const { return head == PolicyHead::kGaussian; }
  // Outputs of the policy network: the logits, or the Gaussian's means and log-stds.
  [[nodiscard]] int32_t policy_outputs() const {
    return gaussian() ? 2 * num_actions : num_actions;
  }
  [[nodiscard]] MlpConfig trunk_config() const;  // valid when has_trunk()
  [[nodiscard]] MlpConfig policy_config() const;
  [[nodiscard]] MlpConfig value_config() const;  // empty without a value network
  // The networks in the order of the flat parameter vector and of the recording: the trunk
  // (an empty config without one), the policy, the value network (empty without one).
  [[nodiscard]] std::vector<MlpConfig> networks() const;
  [[nodiscard]] int64_t parameter_count() const;
  // The parameters of each of the model's optimisers, in order: one Adam over all of them with
  // a shared trunk or without a value network (the Q-network), else one per network.
  [[nodiscard]] std::vector<int64_t> optimizer_sizes() const;
};

}  // namespace batchpole
