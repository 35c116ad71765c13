// DQN's head on the Q-values: epsilon-greedy acting and the Huber loss gradient. One thread per
// row.
#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole::cuda {

namespace {

__global__ void epsilon_greedy_kernel(const float* __restrict__ q, int64_t rows,
                                      int32_t num_actions, SampleKey key, float epsilon,
                                      int32_t* actions, AgentRows out,
                                      const float* __restrict__ epsilons) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const SampleSite site = sample_site(key, out, i);
  const float eps = epsilons != nullptr ? epsilons[out.agent(i)] : epsilon;
  actions[out.at(i)] =
      epsilon_greedy_row(q + i * num_actions, num_actions, eps, site.seed, site.env, site.step);
}

__global__ void q_loss_grad_kernel(QLossArgs a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.rows) return;
  const int64_t k = a.in.at(i);
  const bool valid = a.mask == nullptr || a.mask[k] != 0;
  q_loss_row(a.q + i * a.num_actions, a.num_actions, a.actions[k], a.targets[k], a.huber_delta,
             valid, 1.0f / a.count[a.in.agent(i)], a.d_q + i * a.num_actions,
             a.stats != nullptr ? a.stats + i * a.stat_columns : nullptr);
}

}  // namespace

void launch_epsilon_greedy(cudaStream_t stream, const float* q, int64_t rows, int32_t num_actions,
                           SampleKey key, float epsilon, int32_t* actions, AgentRows out,
                           const float* epsilons) {
  launch(epsilon_greedy_kernel, grid_for(rows), kBlock, stream, q, rows, num_actions, key, epsilon,
         actions, out, epsilons);
}

void launch_q_loss_grad(cudaStream_t stream, const QLossArgs& args) {
  launch(q_loss_grad_kernel, grid_for(args.rows), kBlock, stream, args);
}

}  // namespace batchpole::cuda
