// Per-env and per-element trainer kernels: thin launches of rl_elements.hpp.
#include "cuda_check.cuh"
#include "rl_ops.cuh"

namespace batchpole::cuda {

namespace {

__device__ int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__global__ void returns_kernel(ReturnsArgs a) {
  const int64_t i = thread_index();
  if (i < a.envs * a.agents) discounted_returns_env(a, i);
}

__global__ void gae_kernel(GaeArgs a) {
  const int64_t i = thread_index();
  if (i < a.envs * a.agents) gae_env(a, i);
}

__global__ void gather_minibatch_kernel(MinibatchArgs a) {
  const int64_t j = thread_index();
  if (j < a.rows * a.agents) gather_minibatch_row(a, j);
}

__global__ void first_episode_mask_kernel(const uint8_t* terminated, const uint8_t* truncated,
                                          int64_t steps, int64_t envs, uint8_t* mask,
                                          int64_t agents, int64_t agent_stride) {
  const int64_t i = thread_index();
  if (i < envs * agents) {
    first_episode_mask_env(terminated, truncated, steps, envs, i, mask, agent_stride);
  }
}

// One grid row (blockIdx.y) per agent.
__global__ void mark_ended_kernel(uint8_t* ended, const uint8_t* terminated,
                                  const uint8_t* truncated, int64_t n, int64_t stride,
                                  unsigned long long* ended_count) {
  const int64_t i = thread_index();
  const int64_t k = blockIdx.y;
  uint32_t newly = 0;
  if (i < n) {
    uint8_t* e = ended + k * n + i;
    const uint8_t now = *e | terminated[k * stride + i] | truncated[k * stride + i];
    newly = now != 0 && *e == 0 ? 1U : 0U;
    *e = now;
  }
  // Integer counts: one atomic per warp, exact whatever the order.
  const uint32_t sum = __reduce_add_sync(0xFFFFFFFFU, newly);
  if ((threadIdx.x & 31U) == 0 && sum > 0)
    atomicAdd(ended_count + k, static_cast<unsigned long long>(sum));
}

__global__ void subtract_kernel(const float* a, const float* b, int64_t n, float* out) {
  const int64_t i = thread_index();
  if (i < n) out[i] = a[i] - b[i];
}

__global__ void normalize_kernel(float* x, const uint8_t* mask, int64_t n, int64_t stride,
                                 const Moments* m, float eps) {
  const int64_t i = thread_index();
  const int64_t k = blockIdx.y;
  const int64_t at = k * stride + i;
  if (i < n && (mask == nullptr || mask[at] != 0)) x[at] = normalized(x[at], m[k], eps);
}

dim3 agent_grid(int64_t n, int64_t agents) {
  return dim3(grid_for(n), static_cast<unsigned>(agents));
}

}  // namespace

void launch_returns(cudaStream_t stream, const ReturnsArgs& args) {
  launch(returns_kernel, grid_for(args.envs * args.agents), kBlock, stream, args);
}

void launch_gae(cudaStream_t stream, const GaeArgs& args) {
  launch(gae_kernel, grid_for(args.envs * args.agents), kBlock, stream, args);
}

void launch_gather_minibatch(cudaStream_t stream, const MinibatchArgs& args) {
  launch(gather_minibatch_kernel, grid_for(args.rows * args.agents), kBlock, stream, args);
}

void launch_first_episode_mask(cudaStream_t stream, const uint8_t* terminated,
                               const uint8_t* truncated, int64_t steps, int64_t envs,
                               uint8_t* mask, int64_t agents, int64_t stride) {
  launch(first_episode_mask_kernel, grid_for(envs * agents), kBlock, stream, terminated,
         truncated, steps, envs, mask, agents, agents > 1 ? stride : int64_t{0});
}

void launch_mark_ended(cudaStream_t stream, uint8_t* ended, const uint8_t* terminated,
                       const uint8_t* truncated, int64_t n, int64_t* ended_count, int64_t agents,
                       int64_t stride) {
  static_assert(sizeof(int64_t) == sizeof(unsigned long long), "64-bit counters");
  launch(mark_ended_kernel, agent_grid(n, agents), kBlock, stream, ended, terminated, truncated, n,
         stride, reinterpret_cast<unsigned long long*>(ended_count));
}

void launch_subtract(cudaStream_t stream, const float* a, const float* b, int64_t n, float* out) {
  launch(subtract_kernel, grid_for(n), kBlock, stream, a, b, n, out);
}

void launch_normalize(cudaStream_t stream, float* x, const uint8_t* mask, int64_t n,
                      const Moments* m, float eps, int64_t agents, int64_t stride) {
  launch(normalize_kernel, agent_grid(n, agents), kBlock, stream, x, mask, n, stride, m, eps);
}

}  // namespace batchpole::cuda
