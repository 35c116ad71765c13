// The Adam update, with global-norm clipping folded in: the norm stays on the device and each
// thread works out the clip factor itself, so a step never waits for the host.
#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole::cuda {

namespace {

__global__ void adam_step_kernel(float* __restrict__ params, const float* __restrict__ grads,
                                 float* __restrict__ m, float* __restrict__ v, int64_t n,
                                 AdamScalars s, const float* grad_norm, float max_grad_norm) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float scale = grad_norm != nullptr ? clip_scale(*grad_norm, max_grad_norm) : 1.0f;
  adam_update(params + i, grads[i] * scale, m + i, v + i, s);
}

}  // namespace

void launch_adam_step(cudaStream_t stream, float* params, const float* grads, float* m, float* v,
                      int64_t n, AdamScalars s, const float* grad_norm, float max_grad_norm) {
  if (n == 0) return;
  launch(adam_step_kernel, grid_for(n), kBlock, stream, params, grads, m, v, n, s, grad_norm,
         max_grad_norm);
}

}  // namespace batchpole::cuda
