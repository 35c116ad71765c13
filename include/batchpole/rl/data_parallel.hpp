// Data-parallel training of one agent (issue 16): its N envs cut into P parts, contiguous
// ranges of the global env indices (part p: envs [p N/P, (p + 1) N/P)). Each part steps its
// envs (their draws keyed by the global env index, so every env keeps its stream), and
// computes its share of the gradient and of every batch statistic (advantage-normalisation
// moments, the value fit, episode tallies, the loss sums) on its own; the whole batch's are
// their sum, taken left to right in part order, ((part 0 + part 1) + part 2) + ..., and every
// part takes the identical optimiser step from it.
//
// The parts live in one process (`train --parts P`: a population of P agents sharing one seed
// and one parameter set) or one per rank (`train --distributed` under mpirun, the run library
// gathering them through batchpole/run/comm.hpp). A part's numbers are the same either way
// (on the CPU a population's agent computes exactly what it computes alone), and so is the
// fixed-order sum: R ranks give one process with --parts R bit for bit. (An all-reduce, whose
// order depends on the number of ranks and on the network, would not.)
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "batchpole/rl/rl_elements.hpp"

namespace batchpole {

// This process's share of a data-parallel batch.
struct DataParallel {
  int64_t first_part = 0;   // its parts are [first_part, first_part + local_parts)
  int64_t local_parts = 1;  // 0 below: all of TrainConfig::parts
  // Every process's bytes, in process order (processes hold consecutive parts); empty: this
  // process holds every part.
  std::function<std::vector<std::string>(const std::string&)> gather;
  bool writes_checkpoints = true;  // of the processes, the one that writes them (rank 0)
};

// What a part reports at the end of an update, gathered at once (one collective, not four).
struct PartReport {
  EpisodeTally tally;          // the episodes that ended in its rollout
  Moments targets, residuals;  // its value fit (zeros without a critic)
  int64_t steps = 0;           // its rollout's length
};

// The seed PPO shuffles part p's rows with: each part its own order, keyed by (seed, part) (and
// the update and epoch, as one batch's shuffle is).
inline uint64_t part_shuffle_seed(uint64_t seed, int64_t part) {
  return seed ^ (static_cast<uint64_t>(part) + 1) * 0x9E3779B97F4A7C15ULL;
}

// parts: P blocks of n floats, part after part. Returns the n sums, each a left fold over the
// parts in order (one part: the part itself, bit for bit).
std::vector<float> sum_parts(std::span<const float> parts, int64_t n);
// The same for the batch statistics, each a left fold with the type's own add().
Moments sum_parts(std::span<const Moments> parts);
EpisodeTally sum_parts(std::span<const EpisodeTally> parts);

// Every part's values, in part order: this process's (`mine`, its parts' blocks one after the
// other), and with dp.gather every other process's too.
template <class T>
std::vector<T> all_parts(const DataParallel& dp, std::span<const T> mine);

}  // namespace batchpole
