// The rows of a population's agents in one call. A population (several agents trained in one
// batch, each exactly as it would train alone) lays its per-row arrays out agent after agent;
// a call covers `agents` agents with `rows` rows each, its global row g = agent * rows + r, and
// an array with `stride` rows between consecutive agents' first rows holds row g at
// agent * stride + r. One agent (the default) maps row g to row g.
#pragma once

#include <cstdint>

#include "batchpole/core/common.hpp"

namespace batchpole {

struct AgentRows {
  int64_t agents = 1;
  int64_t rows = 0;    // rows of each agent in the call (used with more than one agent)
  int64_t stride = 0;  // rows between consecutive agents' first rows in the array

  [[nodiscard]] BP_HD int64_t agent(int64_t g) const { return agents > 1 ? g / rows : 0; }
  [[nodiscard]] BP_HD int64_t at(int64_t g) const {
    return agents > 1 ? (g / rows) * stride + g % rows : g;
  }
  // The contiguous layout of `agents` blocks of `rows` rows.
  static AgentRows packed(int64_t agents, int64_t rows) { return {agents, rows, rows}; }
};

}  // namespace batchpole
