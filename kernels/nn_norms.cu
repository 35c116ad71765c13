// The L2 norms of a population's agents' gradients, one block per agent: strided partial sums of
// squares in double, then a fixed tree, so that the same data always gives the same bits.
#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole::cuda {

namespace {

__global__ void norms_kernel(const float* __restrict__ x, int64_t n, int64_t stride,
                             float* __restrict__ out, int64_t out_stride) {
  __shared__ double partial[kBlock];
  const float* xk = x + static_cast<int64_t>(blockIdx.x) * stride;
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kBlock) {
    const double v = xk[i];
    sum += v * v;
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (unsigned half = kBlock / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[static_cast<int64_t>(blockIdx.x) * out_stride] = static_cast<float>(sqrt(partial[0]));
}

}  // namespace

void launch_norms(cudaStream_t stream, const float* x, int64_t n, int64_t agents, int64_t stride,
                  float* out, int64_t out_stride) {
  launch(norms_kernel, static_cast<unsigned>(agents), kBlock, stream, x, n, stride, out,
         out_stride);
}

}  // namespace batchpole::cuda
