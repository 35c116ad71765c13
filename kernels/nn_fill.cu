// Filling parameter and scratch memory: a constant, or the nn.Linear initialisation.
#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole::cuda {

namespace {

// agents blocks of n floats, stride apart: thread g fills element g % n of block g / n.
__global__ void fill_kernel(float* x, int64_t n, float value, int64_t agents, int64_t stride) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= n * agents) return;
  const int64_t k = g / n;
  x[k * stride + (g - k * n)] = value;
}

__global__ void init_uniform_kernel(float* x, int64_t n, float bound, uint64_t seed,
                                    uint32_t block) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = init_uniform_value(seed, block, i, bound);
}

}  // namespace

void launch_fill(cudaStream_t stream, float* x, int64_t n, float value, int64_t agents,
                 int64_t stride) {
  if (n == 0) return;
  launch(fill_kernel, grid_for(n * agents), kBlock, stream, x, n, value, agents, stride);
}

void launch_init_uniform(cudaStream_t stream, float* x, int64_t n, float bound, uint64_t seed,
                         uint32_t block) {
  if (n == 0) return;
  launch(init_uniform_kernel, grid_for(n), kBlock, stream, x, n, bound, seed, block);
}

}  // namespace batchpole::cuda
