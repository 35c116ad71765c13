// Per-sample gradients of the policy-gradient and value losses, with the per-sample statistics
// that a gemv later sums. One thread per sample.
#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole::cuda {

namespace {

// N: the row's room (nn_elements.hpp): 2 for CartPole's two actions (registers), else any.
template <int32_t N>
__global__ void policy_loss_grad_kernel(PolicyLossArgs a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.rows) return;
  const PolicyLossCoefs coefs{1.0f / a.count[a.in.agent(i)], a.entropy_coef};
  const int64_t k = a.in.at(i);
  const bool valid = a.mask == nullptr || a.mask[k] != 0;
  float* stats = a.stats != nullptr ? a.stats + i * a.stat_columns : nullptr;
  if (a.old_log_prob != nullptr) {
    clipped_policy_loss_row<N>(a.logits + i * a.num_actions, a.num_actions, a.actions[k],
                            a.weights[k], a.old_log_prob[k], a.clip, valid, coefs,
                            a.d_logits + i * a.num_actions, stats);
  } else {
    policy_loss_row<N>(a.logits + i * a.num_actions, a.num_actions, a.actions[k], a.weights[k],
                    valid, coefs, a.d_logits + i * a.num_actions, stats);
  }
}

__global__ void value_loss_grad_kernel(ValueLossArgs a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.rows) return;
  const int64_t agent = a.in.agent(i);
  const int64_t k = a.in.at(i);
  const bool valid = a.mask == nullptr || a.mask[k] != 0;
  float* stats = a.stats != nullptr ? a.stats + i * a.stat_columns : nullptr;
  const float inv_count = 1.0f / a.count[agent];
  const float coef = a.value_coefs != nullptr ? a.value_coefs[agent] : a.value_coef;
  a.d_values[i] = a.old_values != nullptr
                      ? clipped_value_loss_row(a.values[i], a.targets[k], a.old_values[k], a.clip,
                                               valid, inv_count, coef, stats)
                      : value_loss_row(a.values[i], a.targets[k], valid, inv_count, coef, stats);
}

}  // namespace

void launch_policy_loss_grad(cudaStream_t stream, const PolicyLossArgs& args) {
  if (args.rows == 0) return;
  if (args.num_actions == 2) {
    launch(policy_loss_grad_kernel<2>, grid_for(args.rows), kBlock, stream, args);
  } else {
    launch(policy_loss_grad_kernel<kMaxActions>, grid_for(args.rows), kBlock, stream, args);
  }
}

void launch_value_loss_grad(cudaStream_t stream, const ValueLossArgs& args) {
  if (args.rows == 0) return;
  launch(value_loss_grad_kernel, grid_for(args.rows), kBlock, stream, args);
}

}  // namespace batchpole::cuda
