#include "batchpole/env/cartpole.hpp"

#include <cmath>

namespace batchpole {

namespace {
bool positive_finite(double v) { return std::isfinite(v) && v > 0.0; }
}  // namespace

void CartPoleParams::validate() const {
  BP_CHECK_ARG(positive_finite(gravity), "gravity must be positive and finite, got " << gravity);
  BP_CHECK_ARG(positive_finite(masscart), "masscart must be positive and finite, got " << masscart);
  BP_CHECK_ARG(positive_finite(masspole), "masspole must be positive and finite, got " << masspole);
  BP_CHECK_ARG(positive_finite(length), "length must be positive and finite, got " << length);
  BP_CHECK_ARG(positive_finite(force_mag),
               "force_mag must be positive and finite, got " << force_mag);
  BP_CHECK_ARG(positive_finite(tau), "tau must be positive and finite, got " << tau);
  BP_CHECK_ARG(positive_finite(x_threshold), "x_threshold must be positive, got " << x_threshold);
  BP_CHECK_ARG(positive_finite(theta_threshold),
               "theta_threshold must be positive, got " << theta_threshold);
  BP_CHECK_ARG(std::isfinite(reset_bound) && reset_bound >= 0.0,
               "reset_bound must be >= 0, got " << reset_bound);
  BP_CHECK_ARG(max_episode_steps >= 0,
               "max_episode_steps must be >= 0 (0 = no limit), got " << max_episode_steps);
}

std::string to_string(Integrator v) { return v == Integrator::kEuler ? "euler" : "semi-implicit"; }

std::string to_string(RewardMode v) {
  switch (v) {
    case RewardMode::kNotebook:
      return "notebook";
    case RewardMode::kSuttonBarto:
      return "sutton-barto";
    case RewardMode::kV1:
    default:
      return "v1";
  }
}

std::string to_string(Precision v) { return v == Precision::kF32 ? "f32" : "f64"; }

std::string to_string(AutoresetMode v) {
  switch (v) {
    case AutoresetMode::kNextStep:
      return "next_step";
    case AutoresetMode::kDisabled:
      return "disabled";
    case AutoresetMode::kSameStep:
    default:
      return "same_step";
  }
}

Integrator parse_integrator(const std::string& s) {
  if (s == "euler") return Integrator::kEuler;
  if (s == "semi-implicit") return Integrator::kSemiImplicit;
  BP_CHECK_ARG(false, "unknown integrator '" << s << "' (expected euler or semi-implicit)");
  return Integrator::kEuler;
}

RewardMode parse_reward_mode(const std::string& s) {
  if (s == "v1") return RewardMode::kV1;
  if (s == "notebook") return RewardMode::kNotebook;
  if (s == "sutton-barto") return RewardMode::kSuttonBarto;
  BP_CHECK_ARG(false, "unknown reward mode '" << s << "' (expected v1, notebook or sutton-barto)");
  return RewardMode::kV1;
}

Precision parse_precision(const std::string& s) {
  if (s == "f32" || s == "float32") return Precision::kF32;
  if (s == "f64" || s == "float64") return Precision::kF64;
  BP_CHECK_ARG(false, "unknown precision '" << s << "' (expected f32 or f64)");
  return Precision::kF32;
}

AutoresetMode parse_autoreset_mode(const std::string& s) {
  if (s == "same_step") return AutoresetMode::kSameStep;
  if (s == "next_step") return AutoresetMode::kNextStep;
  if (s == "disabled") return AutoresetMode::kDisabled;
  BP_CHECK_ARG(false,
               "unknown autoreset mode '" << s << "' (expected next_step, same_step or disabled)");
  return AutoresetMode::kSameStep;
}

}  // namespace batchpole
