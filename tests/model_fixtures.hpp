// What the model tests share: a rollout on the host (for the float64 reference) and on a
// device (for the model), small configurations, and the text of an expected error.
#pragma once

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "batchpole/nn/model.hpp"
#include "nn_reference.hpp"
#include "test_util.hpp"

namespace batchpole::test {

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// A rollout on the host (for the reference) and on a device (for the model).
struct HostRollout {
  int64_t rows = 0;
  int32_t obs_dim = 4;
  std::vector<float> obs, weights, targets;
  std::vector<int32_t> actions;
  std::vector<uint8_t> mask;
  float count = 0;

  static HostRollout make(int64_t rows, int32_t obs_dim, int32_t num_actions, uint32_t seed,
                          bool with_value, bool with_mask) {
    HostRollout r;
    r.rows = rows;
    r.obs_dim = obs_dim;
    r.obs = random_vec(static_cast<std::size_t>(rows * obs_dim), seed, -2.0f, 2.0f);
    r.weights = random_vec(static_cast<std::size_t>(rows), seed + 1, -2.0f, 2.0f);
    if (with_value) r.targets = random_vec(static_cast<std::size_t>(rows), seed + 2, -1.0f, 3.0f);
    std::mt19937 rng(seed + 3);
    for (int64_t i = 0; i < rows; ++i) {
      r.actions.push_back(static_cast<int32_t>(rng() % static_cast<uint32_t>(num_actions)));
    }
    if (with_mask) {
      for (int64_t i = 0; i < rows; ++i) r.mask.push_back(rng() % 4 == 0 ? 0 : 1);
      // Garbage in masked slots must not matter (observations stay finite).
      for (int64_t i = 0; i < rows; ++i) {
        if (r.mask[i] != 0) continue;
        r.weights[i] = std::numeric_limits<float>::quiet_NaN();
        if (with_value) r.targets[i] = std::numeric_limits<float>::infinity();
        r.actions[i] = -3;
      }
    }
    return r;
  }

  [[nodiscard]] ref::Rollout to_ref() const {
    ref::Rollout o;
    o.rows = rows;
    o.obs = to_double(obs);
    o.actions = actions;
    o.weights = to_double(weights);
    o.targets = to_double(targets);
    o.mask = mask;
    o.count = count;
    return o;
  }
};

struct DeviceRollout {
  Buffer<float> obs, weights, targets;
  Buffer<int32_t> actions;
  Buffer<uint8_t> mask;
  RolloutView view;
  DeviceRollout(Device& b, const HostRollout& h) {
    obs = Buffer<float>(b, h.obs.size());
    obs.from_host(h.obs);
    weights = Buffer<float>(b, h.weights.size());
    weights.from_host(h.weights);
    actions = Buffer<int32_t>(b, h.actions.size());
    actions.from_host(h.actions);
    view.obs = {obs.data(), h.rows, h.obs_dim};
    view.actions = actions.data();
    view.weights = weights.data();
    if (!h.targets.empty()) {
      targets = Buffer<float>(b, h.targets.size());
      targets.from_host(h.targets);
      view.value_targets = targets.data();
    }
    if (!h.mask.empty()) {
      mask = Buffer<uint8_t>(b, h.mask.size());
      mask.from_host(h.mask);
      view.mask = mask.data();
    }
    view.count = h.count;
  }
};

inline ModelConfig small(Architecture arch, Activation act = Activation::kRelu) {
  ModelConfig c = arch == Architecture::kSeparate ? ModelConfig::separate(4, 3, 6)
                                                  : ModelConfig::actor_critic(4, 3, 6);
  c.activation = act;
  return c;
}

template <class F>
std::string error_of(F f, Error::Kind kind = Error::Kind::kInvalidArgument) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no batchpole::Error thrown";
  return "";
}

}  // namespace batchpole::test
