#include "batchpole/nn/model_config.hpp"

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

void ModelConfig::validate() const {
  BP_CHECK_ARG(obs_dim >= 1, "ModelConfig: obs_dim must be positive, got " << obs_dim);
  BP_CHECK_ARG(
      num_actions >= 1 && num_actions <= kMaxActions,
      "ModelConfig: num_actions is " << num_actions << ", supported are 1 to " << kMaxActions);
  if (architecture == Architecture::kActorCritic) {
    BP_CHECK_ARG(!shared_hidden.empty(),
                 "ModelConfig: the actor-critic needs at least one shared layer");
  } else {
    BP_CHECK_ARG(shared_hidden.empty(), "ModelConfig: separate networks share no layer, but "
                                            << shared_hidden.size() << " shared layers were given");
  }
  if (has_trunk()) trunk_config().validate();
  policy_config().validate();
  value_config().validate();
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
  return {concat(in, policy_hidden, num_actions), activation, Activation::kIdentity};
}

MlpConfig ModelConfig::value_config() const {
  const int32_t in = has_trunk() ? shared_hidden.back() : obs_dim;
  return {concat(in, value_hidden, 1), activation, Activation::kIdentity};
}

std::vector<MlpConfig> ModelConfig::networks() const {
  return {has_trunk() ? trunk_config() : MlpConfig{}, policy_config(), value_config()};
}

int64_t ModelConfig::parameter_count() const {
  return (has_trunk() ? trunk_config().parameter_count() : 0) + policy_config().parameter_count() +
         value_config().parameter_count();
}

}  // namespace batchpole
