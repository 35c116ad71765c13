// The Adam update, with global-norm clipping folded in: the norm stays on the device and each
// thread works out the clip factor itself, so a step never waits for the host.
#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole::cuda {

namespace {

// Flattened over agents: element i is agent i / n's parameter i % n.
__global__ void adam_step_kernel(float* __restrict__ params, const float* __restrict__ grads,
                                 float* __restrict__ m, float* __restrict__ v, int64_t n,
                                 int64_t total, AdamScalars s, const float* grad_norm,
                                 float max_grad_norm, AdamAgents agents) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t agent = i / n;
  if (agents.active != nullptr && agents.active[agent] == 0) return;
  const int64_t e = i - agent * n;
  const int64_t j = agent * agents.stride + e;
  const int64_t js = agent * agents.state_stride + e;
  const float scale =
      grad_norm != nullptr ? clip_scale(grad_norm[agent * agents.norm_stride], max_grad_norm)
                           : 1.0f;
  adam_update(params + j, grads[j] * scale, m + js, v + js,
              agents.scalars != nullptr ? agents.scalars[agent] : s);
}

}  // namespace

void launch_adam_step(cudaStream_t stream, float* params, const float* grads, float* m, float* v,
                      int64_t n, AdamScalars s, const float* grad_norm, float max_grad_norm,
                      AdamAgents agents) {
  const int64_t total = n * agents.agents;
  launch(adam_step_kernel, grid_for(total), kBlock, stream, params, grads, m, v, n, total, s,
         grad_norm, max_grad_norm, agents);
}

}  // namespace batchpole::cuda
