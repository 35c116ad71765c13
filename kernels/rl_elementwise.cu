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
  if (i < a.envs) discounted_returns_env(a, i);
}

__global__ void gae_kernel(GaeArgs a) {
  const int64_t i = thread_index();
  if (i < a.envs) gae_env(a, i);
}

__global__ void gather_minibatch_kernel(MinibatchArgs a) {
  const int64_t j = thread_index();
  if (j < a.rows) gather_minibatch_row(a, j);
}

__global__ void first_episode_mask_kernel(const uint8_t* terminated, const uint8_t* truncated,
                                          int64_t steps, int64_t envs, uint8_t* mask) {
  const int64_t i = thread_index();
  if (i < envs) first_episode_mask_env(terminated, truncated, steps, envs, i, mask);
}

__global__ void mark_ended_kernel(uint8_t* ended, const uint8_t* terminated,
                                  const uint8_t* truncated, int64_t n,
                                  unsigned long long* ended_count) {
  const int64_t i = thread_index();
  uint32_t newly = 0;
  if (i < n) {
    const uint8_t now = ended[i] | terminated[i] | truncated[i];
    newly = now != 0 && ended[i] == 0 ? 1U : 0U;
    ended[i] = now;
  }
  // Integer counts: one atomic per warp, exact whatever the order.
  const uint32_t sum = __reduce_add_sync(0xFFFFFFFFU, newly);
  if ((threadIdx.x & 31U) == 0 && sum > 0)
    atomicAdd(ended_count, static_cast<unsigned long long>(sum));
}

__global__ void subtract_kernel(const float* a, const float* b, int64_t n, float* out) {
  const int64_t i = thread_index();
  if (i < n) out[i] = a[i] - b[i];
}

__global__ void normalize_kernel(float* x, const uint8_t* mask, int64_t n, const Moments* m,
                                 float eps) {
  const int64_t i = thread_index();
  if (i < n && (mask == nullptr || mask[i] != 0)) x[i] = normalized(x[i], *m, eps);
}

}  // namespace

void launch_returns(cudaStream_t stream, const ReturnsArgs& args) {
  launch(returns_kernel, grid_for(args.envs), kBlock, stream, args);
}

void launch_gae(cudaStream_t stream, const GaeArgs& args) {
  launch(gae_kernel, grid_for(args.envs), kBlock, stream, args);
}

void launch_gather_minibatch(cudaStream_t stream, const MinibatchArgs& args) {
  launch(gather_minibatch_kernel, grid_for(args.rows), kBlock, stream, args);
}

void launch_first_episode_mask(cudaStream_t stream, const uint8_t* terminated,
                               const uint8_t* truncated, int64_t steps, int64_t envs,
                               uint8_t* mask) {
  launch(first_episode_mask_kernel, grid_for(envs), kBlock, stream, terminated, truncated, steps,
         envs, mask);
}

void launch_mark_ended(cudaStream_t stream, uint8_t* ended, const uint8_t* terminated,
                       const uint8_t* truncated, int64_t n, int64_t* ended_count) {
  static_assert(sizeof(int64_t) == sizeof(unsigned long long), "64-bit counters");
  launch(mark_ended_kernel, grid_for(n), kBlock, stream, ended, terminated, truncated, n,
         reinterpret_cast<unsigned long long*>(ended_count));
}

void launch_subtract(cudaStream_t stream, const float* a, const float* b, int64_t n, float* out) {
  launch(subtract_kernel, grid_for(n), kBlock, stream, a, b, n, out);
}

void launch_normalize(cudaStream_t stream, float* x, const uint8_t* mask, int64_t n,
                      const Moments* m, float eps) {
  launch(normalize_kernel, grid_for(n), kBlock, stream, x, mask, n, m, eps);
}

}  // namespace batchpole::cuda
