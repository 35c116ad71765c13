// Counting valid samples (nonzero mask bytes): the loss divisor when the trainer asks for the
// mean over valid samples. Integer counting, so the result is exact and order-independent.
#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole::cuda {

namespace {

// Flattened over agents: blocks [k * blocks_per_agent, (k + 1) * blocks_per_agent) count
// agent k's mask.
__global__ void count_nonzero_kernel(const uint8_t* __restrict__ mask, int64_t n, int64_t stride,
                                     int64_t blocks_per_agent, unsigned long long* count) {
  const int64_t agent = blockIdx.x / blocks_per_agent;
  const int64_t i = (blockIdx.x - agent * blocks_per_agent) * static_cast<int64_t>(blockDim.x) +
                    threadIdx.x;
  const uint32_t mine = (i < n && mask[agent * stride + i] != 0) ? 1U : 0U;
  // A warp sum, then one atomic per warp (integers: exact in any order).
  const uint32_t sum = __reduce_add_sync(0xFFFFFFFFU, mine);
  if ((threadIdx.x & 31U) == 0 && sum > 0) {
    atomicAdd(count + agent, static_cast<unsigned long long>(sum));
  }
}

__global__ void count_to_float_kernel(const unsigned long long* count, int64_t agents, float* out) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k < agents) out[k] = static_cast<float>(count[k]);
}

}  // namespace

void launch_count_nonzero(cudaStream_t stream, const uint8_t* mask, int64_t n, float* out,
                          int64_t agents, int64_t stride, unsigned long long* scratch) {
  BP_CUDA_CHECK(cudaMemsetAsync(scratch, 0, static_cast<std::size_t>(agents) * sizeof(*scratch),
                                stream));
  if (n > 0) {
    const int64_t per_agent = grid_for(n);
    launch(count_nonzero_kernel, static_cast<unsigned>(per_agent * agents), kBlock, stream, mask,
           n, stride, per_agent, scratch);
  }
  launch(count_to_float_kernel, grid_for(agents), kBlock, stream, scratch, agents, out);
}

}  // namespace batchpole::cuda
