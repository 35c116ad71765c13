// Counting valid samples (nonzero mask bytes): the loss divisor when the trainer asks for the
// mean over valid samples. Integer counting, so the result is exact and order-independent.
#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole::cuda {

namespace {

__global__ void count_nonzero_kernel(const uint8_t* __restrict__ mask, int64_t n,
                                     unsigned long long* count) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const uint32_t mine = (i < n && mask[i] != 0) ? 1U : 0U;
  // A warp sum, then one atomic per warp.
  const uint32_t sum = __reduce_add_sync(0xFFFFFFFFU, mine);
  if ((threadIdx.x & 31U) == 0 && sum > 0) atomicAdd(count, static_cast<unsigned long long>(sum));
}

__global__ void count_to_float_kernel(const unsigned long long* count, float* out) {
  *out = static_cast<float>(*count);
}

}  // namespace

void launch_count_nonzero(cudaStream_t stream, const uint8_t* mask, int64_t n, float* out,
                          unsigned long long* scratch) {
  BP_CUDA_CHECK(cudaMemsetAsync(scratch, 0, sizeof(unsigned long long), stream));
  if (n > 0) {
    launch(count_nonzero_kernel, grid_for(n), kBlock, stream, mask, n, scratch);
  }
  launch(count_to_float_kernel, 1, 1, stream, scratch, out);
}

}  // namespace batchpole::cuda
