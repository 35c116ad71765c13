// How the networks cut a batch. The batch's rows are cut into shards of equal size (the last
// one shorter), each run as one task of Device::run_tasks with its own accumulators; a shard
// runs in chunks of at most chunk_rows rows, one pass each through a worker's workspace. The
// shards' accumulators (parameter gradients and statistic sums) are then summed in shard
// order, so results depend on the batch and the shard count, never on the thread count or on
// which worker ran which shard. The device's plan gives the chunk size and the shard count
// (the GPU: one shard, whose chunks already fill it).
//
// A population's agents each have their own rows, cut into shards exactly as the agent's rows
// alone would be; the tasks of one call are every (agent, shard) pair, so that many small
// agents fill the workers together.
//
// Words: a batch is cut into shards; a shard is run in chunks; a worker is a thread with its
// own workspace.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/mlp.hpp"

namespace batchpole {

class ShardedRunner {
 public:
  // block: floats that each shard accumulates; agents: accumulators for that many agents.
  ShardedRunner(Device& device, int64_t chunk_rows, int32_t shards, int64_t block,
                int64_t agents = 1);

  struct Cut {
    int64_t shard_rows = 0;  // rows of every shard but the last
    int64_t shards = 0;      // shards that hold rows
  };
  // Shards of at least kMinShardRows rows (small batches are not cut into tasks of a few rows).
  static Cut cut(int64_t rows, int32_t max_shards);
  [[nodiscard]] Cut cut(int64_t rows) const { return cut(rows, shards_); }

  // body(worker, agent, shard, first_row, rows, first_chunk_of_shard) for every chunk of the
  // rows_of(agent) rows of every agent listed, all (agent, shard) pairs in parallel as tasks.
  template <class RowsOf, class Body>
  void for_each_chunk(std::span<const int64_t> agents, RowsOf rows_of, Body body) {
    tasks_.clear();
    for (const int64_t a : agents) {
      const Cut c = cut(rows_of(a));
      for (int64_t s = 0; s < c.shards; ++s) tasks_.push_back({a, s});
    }
    device_->run_tasks(static_cast<int64_t>(tasks_.size()), [&](int64_t task, int worker) {
      const auto [agent, shard] = tasks_[static_cast<std::size_t>(task)];
      const int64_t rows = rows_of(agent);
      const Cut c = cut(rows);
      const int64_t first = shard * c.shard_rows;
      const int64_t end = std::min(rows, first + c.shard_rows);
      for (int64_t begin = first; begin < end; begin += chunk_rows_) {
        body(worker, agent, shard, begin, std::min(chunk_rows_, end - begin), begin == first);
      }
    });
  }

  // Where shard `s` of `agent` accumulates, with more than one shard.
  [[nodiscard]] float* shard_block(int64_t agent, int64_t s) {
    return blocks_.data() + (agent * shards_ + s) * block_;
  }
  // With several shards: the first `split` floats of each block are summed into `first` and
  // the rest into `second` (target = (kOverwrite ? 0 : target) + the blocks of the shards that
  // held rows, in shard order). Nothing to do with one shard (it wrote the targets directly).
  void sum_shards(int64_t agent, int64_t rows, float* first, int64_t split, float* second,
                  GradientMode mode);

  [[nodiscard]] int64_t chunk_rows() const { return chunk_rows_; }
  [[nodiscard]] int32_t shards() const { return shards_; }
  [[nodiscard]] std::size_t bytes() const { return blocks_.bytes(); }
  static std::size_t bytes(int32_t shards, int64_t block, int64_t agents = 1) {
    return shards > 1 ? static_cast<std::size_t>(shards) * static_cast<std::size_t>(block) *
                            static_cast<std::size_t>(agents) * sizeof(float)
                      : 0;
  }

  static constexpr int64_t kMinShardRows = 64;  // a guess, not tuned

 private:
  Device* device_;
  int64_t chunk_rows_;
  int32_t shards_;
  int64_t block_;
  Buffer<float> blocks_;  // agents x shards x block, with more than one shard
  std::vector<std::pair<int64_t, int64_t>> tasks_;  // (agent, shard) of the current call
};

}  // namespace batchpole
