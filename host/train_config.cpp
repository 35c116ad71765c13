// TrainConfig to and from JSON: the keys of `batchpole train --config FILE.json`, of
// summary.json and of checkpoints.
#include <cmath>
#include <nlohmann/json.hpp>

#include "batchpole/trainer.hpp"

namespace batchpole {

namespace {
// As Gymnasium: degrees * 2 * pi / 360, so that 12 gives its threshold to the last bit.
double degrees_to_radians(double deg) { return deg * 2.0 * 3.141592653589793 / 360.0; }
}  // namespace

std::string config_to_json(const TrainConfig& c) {
  nlohmann::json j = {{"algo", to_string(c.algorithm)},
                      {"envs", c.envs},
                      {"n_steps", c.n_steps},
                      {"lr", c.lr},
                      {"value_lr", c.value_lr},
                      {"gamma", c.gamma},
                      {"entropy_coef", c.entropy_coef},
                      {"value_coef", c.value_coef},
                      {"max_grad_norm", c.max_grad_norm},
                      {"normalize", c.normalize},
                      {"hidden", c.hidden},
                      {"seed", c.seed},
                      {"precision", to_string(c.precision)},
                      {"reward", to_string(c.env.reward_mode)},
                      {"integrator", to_string(c.env.integrator)},
                      {"theta_threshold", c.env.theta_threshold},  // radians, exact
                      {"x_threshold", c.env.x_threshold},
                      {"max_episode_steps", c.env.max_episode_steps},
                      {"chunk_rows", c.chunk_rows},
                      {"reuse_activations", c.reuse_activations}};
  return j.dump(2);
}

TrainConfig config_from_json(const std::string& text, const TrainConfig& base) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    BP_CHECK_ARG(false, "configuration is not valid JSON: " << e.what());
  }
  BP_CHECK_ARG(j.is_object(), "configuration must be a JSON object");
  TrainConfig c = base;
  for (const auto& [key, value] : j.items()) {
    try {
      if (key == "algo") {
        c.algorithm = parse_algorithm(value.get<std::string>());
      } else if (key == "envs") {
        c.envs = value.get<int64_t>();
      } else if (key == "n_steps") {
        c.n_steps = value.get<int32_t>();
      } else if (key == "lr") {
        c.lr = value.get<float>();
      } else if (key == "value_lr") {
        c.value_lr = value.get<float>();
      } else if (key == "gamma") {
        c.gamma = value.get<float>();
      } else if (key == "entropy_coef") {
        c.entropy_coef = value.get<float>();
      } else if (key == "value_coef") {
        c.value_coef = value.get<float>();
      } else if (key == "max_grad_norm") {
        c.max_grad_norm = value.get<float>();
      } else if (key == "normalize") {
        c.normalize = value.get<bool>();
      } else if (key == "reuse_activations") {
        c.reuse_activations = value.get<bool>();
      } else if (key == "hidden") {
        c.hidden = value.get<int32_t>();
      } else if (key == "seed") {
        c.seed = value.get<uint64_t>();
      } else if (key == "precision") {
        c.precision = parse_precision(value.get<std::string>());
      } else if (key == "reward") {
        c.env.reward_mode = parse_reward_mode(value.get<std::string>());
      } else if (key == "integrator") {
        c.env.integrator = parse_integrator(value.get<std::string>());
      } else if (key == "theta_threshold") {
        c.env.theta_threshold = value.get<double>();
      } else if (key == "theta_threshold_deg") {
        c.env.theta_threshold = degrees_to_radians(value.get<double>());
      } else if (key == "x_threshold") {
        c.env.x_threshold = value.get<double>();
      } else if (key == "max_episode_steps") {
        c.env.max_episode_steps = value.get<int32_t>();
      } else if (key == "chunk_rows") {
        c.chunk_rows = value.get<int64_t>();
      } else {
        BP_CHECK_ARG(false, "unknown configuration key '" << key << "'");
      }
    } catch (const nlohmann::json::exception& e) {
      BP_CHECK_ARG(false, "configuration key '" << key << "' has the wrong type: " << e.what());
    }
  }
  return c;
}

}  // namespace batchpole
