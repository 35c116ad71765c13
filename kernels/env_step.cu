// Environment kernels: one thread per environment, each a thin call of the element functions
// in env_elements.hpp that the CPU loops call too.
#include "cuda_check.cuh"
#include "env_step.cuh"

namespace batchpole::cuda {

namespace {

template <class Real>
__global__ void env_reset_kernel(EnvConfig<Real> c, EnvArrays<Real> a, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) env_begin_episode(c, a, i);
}

template <class Real>
__global__ void env_restart_kernel(EnvConfig<Real> c, EnvArrays<Real> a, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n && env_active(c, i)) env_restart_episode(c, a, i);
}

template <class Real>
__global__ void env_step_kernel(EnvConfig<Real> c, EnvArrays<Real> a, int64_t n,
                                const int32_t* __restrict__ actions,
                                unsigned long long* bad_action) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n || !env_active(c, i)) return;
  const int32_t action = actions[out_row(c, a, i)];
  if ((action & ~1) != 0) {
    atomicMin(bad_action,
              (static_cast<unsigned long long>(i) << 32U) | static_cast<uint32_t>(action));
  }
  env_step(c, a, i, action);
}

template <class Real>
__global__ void env_next_episode_kernel(EnvConfig<Real> c, EnvArrays<Real> a, int64_t n,
                                        const uint8_t* __restrict__ mask) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) env_next_episode(c, a, i, mask);
}

// Continuous actions (every float is valid), read where the outputs go as the discrete ones.
template <class Real>
__global__ void env_step_continuous_kernel(EnvConfig<Real> c, EnvArrays<Real> a, int64_t n,
                                           const float* __restrict__ actions) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n || !env_active(c, i)) return;
  env_step(c, a, i, actions[out_row(c, a, i)]);
}

// The fused benchmark loop keeps its state in registers for all its steps. Unbounded, nvcc
// (CUDA 13, sm_90) gives it 67 registers in f32 and 88 in f64: 3 and 2 blocks of 256 threads
// per SM. These bounds ask for one block more each (at most 64 and 85 registers), which ptxas
// meets without spilling; a fifth block in f32 (or a fourth in f64) would spill. What the extra
// occupancy buys is measured on the GPU (BENCHMARKS.md).
template <class Real>
constexpr int kRunRandomBlocksPerSm = sizeof(Real) == sizeof(float) ? 4 : 3;

template <class Real>
__global__ void __launch_bounds__(kBlock, kRunRandomBlocksPerSm<Real>)
    env_run_random_kernel(EnvConfig<Real> c, EnvArrays<Real> a, int64_t n, uint64_t first_step,
                          int32_t steps, unsigned long long* ended) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const uint32_t mine = i < n ? env_run_random(c, a, i, first_step, steps) : 0U;
  // One atomic per block: a warp sum, then the first warp sums the warps.
  __shared__ uint32_t warp_sums[kBlock / 32];
  uint32_t sum = __reduce_add_sync(0xFFFFFFFFU, mine);
  if ((threadIdx.x & 31U) == 0) warp_sums[threadIdx.x >> 5U] = sum;
  __syncthreads();
  if (threadIdx.x < 32) {
    sum = threadIdx.x < blockDim.x / 32 ? warp_sums[threadIdx.x] : 0U;
    sum = __reduce_add_sync(0xFFFFFFFFU, sum);
    if (threadIdx.x == 0 && sum > 0) atomicAdd(ended, static_cast<unsigned long long>(sum));
  }
}

__global__ void bench_actions_kernel(uint64_t seed, uint64_t step, int64_t n, int32_t* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = bench_action(seed, static_cast<uint32_t>(i), step);
}

}  // namespace

template <class Real>
void launch_env_reset(cudaStream_t stream, const EnvConfig<Real>& c, const EnvArrays<Real>& a,
                      int64_t n) {
  launch(env_reset_kernel<Real>, grid_for(n), kBlock, stream, c, a, n);
}

template <class Real>
void launch_env_restart(cudaStream_t stream, const EnvConfig<Real>& c, const EnvArrays<Real>& a,
                        int64_t n) {
  launch(env_restart_kernel<Real>, grid_for(n), kBlock, stream, c, a, n);
}

template <class Real>
void launch_env_next_episode(cudaStream_t stream, const EnvConfig<Real>& c,
                             const EnvArrays<Real>& a, int64_t n, const uint8_t* mask) {
  launch(env_next_episode_kernel<Real>, grid_for(n), kBlock, stream, c, a, n, mask);
}

template <class Real>
void launch_env_step(cudaStream_t stream, const EnvConfig<Real>& c, const EnvArrays<Real>& a,
                     int64_t n, const int32_t* actions, unsigned long long* bad_action) {
  launch(env_step_kernel<Real>, grid_for(n), kBlock, stream, c, a, n, actions, bad_action);
}

template <class Real>
void launch_env_step_continuous(cudaStream_t stream, const EnvConfig<Real>& c,
                                const EnvArrays<Real>& a, int64_t n, const float* actions) {
  launch(env_step_continuous_kernel<Real>, grid_for(n), kBlock, stream, c, a, n, actions);
}

template <class Real>
void launch_env_run_random(cudaStream_t stream, const EnvConfig<Real>& c, const EnvArrays<Real>& a,
                           int64_t n, uint64_t first_step, int32_t steps,
                           unsigned long long* ended) {
  launch(env_run_random_kernel<Real>, grid_for(n), kBlock, stream, c, a, n, first_step, steps,
         ended);
}

void launch_bench_actions(cudaStream_t stream, uint64_t seed, uint64_t step, int64_t n,
                          int32_t* out) {
  launch(bench_actions_kernel, grid_for(n), kBlock, stream, seed, step, n, out);
}

#define BP_INSTANTIATE(Real)                                                                     \
  template void launch_env_reset<Real>(cudaStream_t, const EnvConfig<Real>&,                     \
                                       const EnvArrays<Real>&, int64_t);                         \
  template void launch_env_restart<Real>(cudaStream_t, const EnvConfig<Real>&,                   \
                                         const EnvArrays<Real>&, int64_t);                       \
  template void launch_env_next_episode<Real>(cudaStream_t, const EnvConfig<Real>&,              \
                                              const EnvArrays<Real>&, int64_t, const uint8_t*);  \
  template void launch_env_step<Real>(cudaStream_t, const EnvConfig<Real>&,                      \
                                      const EnvArrays<Real>&, int64_t, const int32_t*,           \
                                      unsigned long long*);                                      \
  template void launch_env_step_continuous<Real>(cudaStream_t, const EnvConfig<Real>&,           \
                                                 const EnvArrays<Real>&, int64_t, const float*); \
  template void launch_env_run_random<Real>(cudaStream_t, const EnvConfig<Real>&,                \
                                            const EnvArrays<Real>&, int64_t, uint64_t, int32_t,  \
                                            unsigned long long*);
BP_INSTANTIATE(float)
BP_INSTANTIATE(double)
#undef BP_INSTANTIATE

}  // namespace batchpole::cuda
