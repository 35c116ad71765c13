// Sums in part order over ranks: the combination rule of data-parallel training (issue 16;
// sum_parts and the rule: batchpole/rl/data_parallel.hpp). A batch cut
// into P parts (contiguous ranges of the global env indices) has per-part gradients and batch
// statistics; the whole batch's are their sum, taken left to right in part order,
// ((part 0 + part 1) + part 2) + ..., whether the parts live in one process or one per rank.
// Floating-point addition is not associative: an all-reduce, whose order depends on the
// number of ranks and on the network, would give results that differ with R in the last bits;
// gathering the parts and adding them in this fixed order gives every rank, and a single
// process holding all P parts, the same bits.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "batchpole/rl/data_parallel.hpp"  // sum_parts

namespace batchpole {

class Comm;

// Over the ranks of comm: every rank gives its parts (the same number of n floats each; rank r
// holds parts [r * m, (r + 1) * m)); every rank gets the sum of all of them in part order: one
// allgather of P x n floats, then sum_parts. Equal, bit for bit, to sum_parts of all the parts
// in one process.
std::vector<float> allgather_sum(Comm& comm, std::span<const float> mine, int64_t n);

}  // namespace batchpole
