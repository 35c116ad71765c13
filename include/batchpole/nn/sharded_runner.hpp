// How the networks cut a batch. The batch's rows are cut into shards of equal size (the last
// one shorter), each run as one task of Device::run_tasks with its own accumulators; a shard
// runs in chunks of at most chunk_rows rows, one pass each through a worker's workspace. The
// shards' accumulators (parameter gradients and statistic sums) are then summed in shard
// order, so results depend on the batch and the shard count, never on the thread count or on
// which worker ran which shard. The device's plan gives the chunk size and the shard count
// (the GPU: one shard, whose chunks already fill it).
//
// Words: a batch is cut into shards; a shard is run in chunks; a worker is a thread with its
// own workspace.
#pragma once

#include <algorithm>
#include <cstdint>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/mlp.hpp"

namespace batchpole {

class ShardedRunner {
 public:
  // block: floats that each shard accumulates.
  ShardedRunner(Device& device, int64_t chunk_rows, int32_t shards, int64_t block);

  struct Cut {
    int64_t shard_rows = 0;  // rows of every shard but the last
    int64_t shards = 0;      // shards that hold rows
  };
  // Shards of at least kMinShardRows rows (small batches are not cut into tasks of a few rows).
  static Cut cut(int64_t rows, int32_t max_shards);
  [[nodiscard]] Cut cut(int64_t rows) const { return cut(rows, shards_); }

  // body(worker, shard, first_row, rows, first_chunk_of_shard) for every chunk of `rows` rows,
  // the shards in parallel as tasks.
  template <class Body>
  void for_each_chunk(int64_t rows, Body body) {
    const Cut c = cut(rows);
    device_->run_tasks(c.shards, [&](int64_t shard, int worker) {
      const int64_t first = shard * c.shard_rows;
      const int64_t end = std::min(rows, first + c.shard_rows);
      for (int64_t begin = first; begin < end; begin += chunk_rows_) {
        body(worker, shard, begin, std::min(chunk_rows_, end - begin), begin == first);
      }
    });
  }

  // Where shard `s` accumulates: `target` itself when there is one shard.
  [[nodiscard]] float* shard_block(int64_t s, float* target) {
    return shards_ == 1 ? target : blocks_.data() + s * block_;
  }
  // With several shards: target = (kOverwrite ? 0 : target) + the blocks of the shards that
  // held rows, in shard order. Nothing to do with one shard (it wrote target directly).
  void sum_shards(int64_t rows, float* target, GradientMode mode);

  [[nodiscard]] int64_t chunk_rows() const { return chunk_rows_; }
  [[nodiscard]] int32_t shards() const { return shards_; }
  [[nodiscard]] std::size_t bytes() const { return blocks_.bytes(); }
  static std::size_t bytes(int32_t shards, int64_t block) {
    return shards > 1
               ? static_cast<std::size_t>(shards) * static_cast<std::size_t>(block) * sizeof(float)
               : 0;
  }

  static constexpr int64_t kMinShardRows = 64;  // a guess, not tuned

 private:
  Device* device_;
  int64_t chunk_rows_;
  int32_t shards_;
  int64_t block_;
  Buffer<float> blocks_;  // shards x block, with more than one shard
};

}  // namespace batchpole
