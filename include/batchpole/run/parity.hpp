// Comparing two devices from the same seed (`batchpole compare` and the parity tests):
// (a) environment parity, bit for bit, over a long random-action run;
// (b) network parity of a model (initial parameters bitwise; forward, gradients, losses and
//     one Adam step within the tolerances below);
// (c) a short training run of an algorithm on each, side by side, reported, not judged.
// The two devices are the CPU and the GPU, or without a GPU two CPU configurations.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "batchpole/rl/trainer.hpp"

namespace batchpole {

// Network tolerances: the two devices use different BLAS libraries, so sums are reassociated
// and agree only to float rounding.
//   forward (logits, values): |b - a| <= kForward * (1 + |a|) per element;
//   gradients:                |b - a| <= kGradient * max_i |a_i| (relative to the largest);
//   loss statistics:          |b - a| <= kLoss * (1 + |a|);
//   parameters after one Adam step: at most kStepLooseFraction of them differ by more than
//     kStep, none by more than kStepMaxLrs * lr. Adam moves every parameter by about lr
//     whatever the gradient's size, so where a gradient is near zero its sign is rounding.
//   sampled actions: at most kActionsDiffering differ (a logit on a sampling boundary).
struct ParityTolerance {
  static constexpr double kForward = 1e-5;
  static constexpr double kGradient = 1e-4;
  static constexpr double kLoss = 1e-4;
  static constexpr double kStep = 1e-6;
  static constexpr double kStepLooseFraction = 0.01;
  static constexpr double kStepMaxLrs = 2.0;
  static constexpr int64_t kActionsDiffering = 2;
  // Training: an update "diverges" when its policy loss or mean return differs by more than
  // this times (1 + |a|).
  static constexpr double kTraining = 1e-4;
};

// ---- (a) environment ----------------------------------------------------------------------

struct Mismatch {
  int64_t step = 0;  // 1-based: the step whose outputs or resulting state differ
  int64_t env = 0;
  std::string field;
  std::string a, b;    // shortest round-trip text of each value
  double a_value = 0;  // the same as numbers (every field converts exactly to double)
  double b_value = 0;
};

struct EnvParity {
  Precision precision = Precision::kF32;
  int64_t values_compared = 0;
  int64_t mismatches = 0;
  int64_t episodes_ended = 0;  // on side a: the final observations compared
  std::optional<Mismatch> first;
  [[nodiscard]] bool equal() const { return mismatches == 0 && values_compared > 0; }
};

// `steps` steps of `envs` envs with the benchmark's random actions: actions, observations,
// rewards, flags, final observations, returns and lengths, and the full state, bit for bit.
EnvParity compare_env(Device& a, Device& b, int64_t envs, int64_t steps, uint64_t seed,
                      Precision precision);

// ---- (b) networks -------------------------------------------------------------------------

struct Diff {
  double max_abs = 0;          // max |b - a|
  double max_rel = 0;          // max |b - a| / max(|a|, |b|) (0 where both are 0)
  double max_mixed = 0;        // max |b - a| / (1 + |a|)
  double max_a = 0;            // max |a|
  int64_t above_step_tol = 0;  // elements with |b - a| > ParityTolerance::kStep
  int64_t size = 0;
};
// NaN on either side (or infinities that cancel) counts as an infinite difference.
Diff diff(std::span<const float> a, std::span<const float> b);

struct NetworkCheck {
  std::string name;
  Diff diff;
  double measure = 0;  // what the tolerance bounds
  double tolerance = 0;
  std::string rule;  // how measure is defined and bounded
  bool within = false;
};

struct NetworkParity {
  std::string model;
  int64_t parameters = 0;
  int64_t rows = 0;
  double lr = 0;
  std::vector<NetworkCheck> checks;
  [[nodiscard]] bool within() const;
};

// The model of an architecture (the A2C actor-critic, or the baseline's separate networks) with
// A2C's optimiser and loss, on `rows` random rows: act, logits, values, one loss and Adam step.
NetworkParity compare_network(Device& a, Device& b, uint64_t seed,
                              Architecture architecture = Architecture::kActorCritic,
                              int64_t rows = 4096);

// ---- (c) training -------------------------------------------------------------------------

struct TrainPoint {
  int64_t update = 0;
  int64_t env_steps = 0;
  double mean_return = 0;  // of the recent episodes, as in train's metrics.csv (0 before any)
  double policy_loss = 0;
  double value_loss = 0;
  double entropy = 0;
  double grad_norm = 0;
};

struct TrainingComparison {
  TrainConfig config;
  int64_t updates = 0;
  std::vector<TrainPoint> a, b;
  std::optional<int64_t> first_divergence;  // index into a and b
  double max_policy_loss_diff = 0;
  double max_mean_return_diff = 0;
};

// The algorithm's defaults (on the CPU's plan) with `envs` envs, `updates` updates on each.
TrainingComparison compare_training(Device& a, Device& b, Algorithm algo, int64_t envs,
                                    int64_t updates, uint64_t seed);

}  // namespace batchpole
