// Evaluating a trained policy: `batchpole eval` and Python's batchpole.evaluate().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "batchpole/device/device.hpp"

namespace batchpole {

struct EvalOptions {
  int64_t episodes = 100;  // played in parallel, one env each
  // The most probable action (continuous: the Gaussian's mean) instead of a sample. DQN's
  // policy is always greedy in Q.
  bool greedy = false;
  uint64_t seed = 12345;  // start states and sampling
  int64_t agent = 0;      // a population's checkpoint: which agent
};

struct EvalResult {
  std::string algo;
  bool greedy = false;  // the policy played greedily (asked for, or DQN's)
  int64_t episodes = 0;
  double mean_return = 0, std_return = 0, min_return = 0, max_return = 0;
  std::vector<double> returns;  // per episode
};

// Plays `episodes` whole episodes (each to its end or the time limit; without a limit, at most
// 100000 steps) with the checkpoint's policy. Throws Error(kInvalidArgument) for a bad file.
EvalResult evaluate(Device& device, const std::string& checkpoint, const EvalOptions& options);

}  // namespace batchpole
