// DQN's replay buffer and TD targets: thin launches of rl_elements.hpp, one thread per row.
#include "cuda_check.cuh"
#include "rl_ops.cuh"

namespace batchpole::cuda {

namespace {

__device__ int64_t row_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// One thread per row of every agent.
__global__ void replay_store_kernel(ReplayStoreArgs a) {
  const int64_t g = row_index();
  if (g < a.rows * a.agents) replay_store_row(a, g);
}

__global__ void replay_sample_kernel(ReplaySampleArgs a) {
  const int64_t g = row_index();
  if (g < a.rows * a.agents) replay_sample_row(a, g);
}

__global__ void td_targets_kernel(TdTargetArgs a) {
  const int64_t j = row_index();
  if (j < a.rows) td_target_row(a, j);
}

}  // namespace

void launch_replay_store(cudaStream_t stream, const ReplayStoreArgs& args) {
  launch(replay_store_kernel, grid_for(args.rows * args.agents), kBlock, stream, args);
}

void launch_replay_sample(cudaStream_t stream, const ReplaySampleArgs& args) {
  launch(replay_sample_kernel, grid_for(args.rows * args.agents), kBlock, stream, args);
}

void launch_td_targets(cudaStream_t stream, const TdTargetArgs& args) {
  launch(td_targets_kernel, grid_for(args.rows), kBlock, stream, args);
}

}  // namespace batchpole::cuda
