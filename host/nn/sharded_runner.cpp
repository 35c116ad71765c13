#include "batchpole/nn/sharded_runner.hpp"

#include "batchpole/nn/blas.hpp"

namespace batchpole {

namespace {
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

ShardedRunner::ShardedRunner(Device& device, int64_t chunk_rows, int32_t shards, int64_t block,
                             int64_t agents)
    : device_(&device), chunk_rows_(chunk_rows), shards_(shards), block_(block) {
  BP_CHECK_ARG(chunk_rows >= 1, "chunk_rows must be positive, got " << chunk_rows);
  BP_CHECK_ARG(shards >= 1 && shards <= 4096, "shards must be in [1, 4096], got " << shards);
  BP_CHECK_ARG(agents >= 1, "a sharded runner needs at least one agent, got " << agents);
  if (shards_ > 1) {
    blocks_ = Buffer<float>(device, static_cast<std::size_t>(agents * shards_ * block_));
    blocks_.zero();
  }
}

ShardedRunner::Cut ShardedRunner::cut(int64_t rows, int32_t max_shards) {
  Cut c;
  c.shard_rows = max_shards == 1 ? rows : std::max(kMinShardRows, ceil_div(rows, max_shards));
  c.shards = c.shard_rows > 0 ? ceil_div(rows, c.shard_rows) : 0;
  return c;
}

void ShardedRunner::sum_shards(int64_t agent, int64_t rows, float* first, int64_t split,
                               float* second, GradientMode mode) {
  if (shards_ == 1) return;
  const int64_t used = cut(rows).shards;
  const int64_t rest = block_ - split;
  for (int64_t s = 0; s < used; ++s) {
    const float* block = shard_block(agent, s);
    if (s == 0 && mode == GradientMode::kOverwrite) {
      device_->copy_on_device(first, block, static_cast<std::size_t>(split) * sizeof(float));
      device_->copy_on_device(second, block + split, static_cast<std::size_t>(rest) * sizeof(float));
    } else {
      device_->blas().axpy(split, 1.0f, block, 1, first, 1);
      device_->blas().axpy(rest, 1.0f, block + split, 1, second, 1);
    }
  }
}

}  // namespace batchpole
