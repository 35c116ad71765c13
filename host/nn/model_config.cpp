#include "batchpole/nn/model_config.hpp"

#include <cmath>

namespace batchpole {

namespace {

std::vector<int32_t> concat(int32_t first, const std::vector<int32_t>& mid, int32_t last) {
  std::vector<int32_t> v{first};
  v.insert(v.end(), mid.begin(), mid.end());
  v.push_back(last);
  return v;
}

}  // namespace

ModelConfig ModelConfig::separate(int32_t obs_dim, int32_t num_actions, int32_t hidden) {
  ModelConfig c;
  c.architecture = Architecture::kSeparate;
  c.obs_dim = obs_dim;
  c.num_actions = num_actions;
  c.shared_hidden = {};
  c.policy_hidden = {hidden, hidden};
  c.value_hidden = {hidden, hidden};
  return c;
}

ModelConfig ModelConfig::actor_critic(int32_t obs_dim, int32_t num_actions, int32_t hidden) {
  ModelConfig c;
  c.architecture = Architecture::kActorCritic;
  c.obs_dim = obs_dim;
  c.num_actions = num_actions;
  c.shared_hidden = {hidden};
  c.policy_hidden = {hidden};
  c.value_hidden = {hidden};
  return c;
}

ModelConfig ModelConfig::q_network(int32_t obs_dim, int32_t num_actions, int32_t hidden) {
  ModelConfig c = separate(obs_dim, num_actions, hidden);
  c.architecture = Architecture::kQNetwork;
  c.value_hidden = {};
  return c;
}

ModelConfig ModelConfig::with_gaussian_head(int32_t action_dim, bool state_std, float log_std0) const {
  ModelConfig c = *this;
  c.head = PolicyHead::kGaussian;
  c.num_actions = action_dim;
  c.state_dependent_std = state_std;
  c.log_std_init = log_std0;
  return c;
}

void ModelConfig::validate() const {
  BP_CHECK_ARG(obs_dim >= 1, "ModelConfig: obs_dim must be positive, got " << obs_dim);
  const int32_t most = gaussian() ? kMaxActionDims : kMaxActions;
  BP_CHECK_ARG(num_actions >= 1 && num_actions <= most,
               "ModelConfig: num_actions is " << num_actions << ", supported are 1 to " << most
                                              << (gaussian() ? " (Gaussian head)" : ""));
  BP_CHECK_ARG(!gaussian() || architecture != Architecture::kQNetwork,
               "ModelConfig: a Q-network has no Gaussian head");
  BP_CHECK_ARG(std::isfinite(log_std_init),
               "ModelConfig: log_std_init must be finite, got " << log_std_init);
  if (architecture == Architecture::kActorCritic) {
    BP_CHECK_ARG(!shared_hidden.empty(),
                 "ModelConfig: the actor-critic needs at least one shared layer");
  } else {
    BP_CHECK_ARG(shared_hidden.empty(), "ModelConfig: separate networks share no layer, but "
                                            << shared_hidden.size() << " shared layers were given");
  }
  if (has_trunk()) trunk_config().validate();
  policy_config().validate();
  if (has_value()) value_config().validate();
}

MlpConfig ModelConfig::trunk_config() const {
  MlpConfig m;
  m.sizes = {obs_dim};
  m.sizes.insert(m.sizes.end(), shared_hidden.begin(), shared_hidden.end());
  m.hidden_activation = activation;
  m.output_activation = activation;  // the trunk's output feeds both heads, activated
  return m;
}

MlpConfig ModelConfig::policy_config() const {
  const int32_t in = has_trunk() ? shared_hidden.back() : obs_dim;
  return {concat(in, policy_hidden, policy_outputs()), activation, Activation::kIdentity};
}

MlpConfig ModelConfig::value_config() const {
  if (!has_value()) return {};
  const int32_t in = has_trunk() ? shared_hidden.back() : obs_dim;
  return {concat(in, value_hidden, 1), activation, Activation::kIdentity};
}

std::vector<MlpConfig> ModelConfig::networks() const {
  return {has_trunk() ? trunk_config() : MlpConfig{}, policy_config(), value_config()};
}

int64_t ModelConfig::parameter_count() const {
  return (has_trunk() ? trunk_config().parameter_count() : 0) + policy_config().parameter_count() +
         (has_value() ? value_config().parameter_count() : 0);
}

std::vector<int64_t> ModelConfig::optimizer_sizes() const {
  if (has_trunk() || !has_value()) return {parameter_count()};
  return {policy_config().parameter_count(), value_config().parameter_count()};
}

}  // namespace batchpole
