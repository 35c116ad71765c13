// The Gaussian policy head (continuous actions): sampling, log-probabilities and entropies, and
// the loss gradients. One thread per row.
#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole::cuda {

namespace {

__device__ int64_t row_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__global__ void sample_gaussian_kernel(const float* __restrict__ head, int64_t rows, int32_t d,
                                       SampleKey key, float* actions, float* log_prob,
                                       float* entropy, AgentRows out) {
  const int64_t i = row_index();
  if (i >= rows) return;
  const SampleSite site = sample_site(key, out, i);
  const int64_t o = out.at(i);
  gaussian_sample_row(head + i * 2 * d, d, site.seed, site.env, site.step, actions + o * d,
                      log_prob != nullptr ? log_prob + o : nullptr,
                      entropy != nullptr ? entropy + o : nullptr);
}

__global__ void gaussian_log_prob_entropy_kernel(const float* __restrict__ head, int64_t rows,
                                                 int32_t d, const float* actions, float* log_prob,
                                                 float* entropy) {
  const int64_t i = row_index();
  if (i >= rows) return;
  const float* z = head + i * 2 * d;
  if (log_prob != nullptr) log_prob[i] = gaussian_log_prob(z, d, actions + i * d);
  if (entropy != nullptr) entropy[i] = gaussian_entropy(z, d);
}

__global__ void gaussian_loss_grad_kernel(GaussianLossArgs a) {
  const int64_t i = row_index();
  if (i >= a.rows) return;
  const PolicyLossCoefs coefs{1.0f / a.count[a.in.agent(i)], a.entropy_coef};
  const int64_t k = a.in.at(i);
  const bool valid = a.mask == nullptr || a.mask[k] != 0;
  const int32_t d = a.action_dim;
  float* stats = a.stats != nullptr ? a.stats + i * a.stat_columns : nullptr;
  if (a.old_log_prob != nullptr) {
    clipped_gaussian_policy_loss_row(a.head + i * 2 * d, d, a.actions + k * d, a.weights[k],
                                     a.old_log_prob[k], a.clip, valid, coefs, a.d_head + i * 2 * d,
                                     stats);
  } else {
    gaussian_policy_loss_row(a.head + i * 2 * d, d, a.actions + k * d, a.weights[k], valid, coefs,
                             a.d_head + i * 2 * d, stats);
  }
}

}  // namespace

void launch_sample_gaussian(cudaStream_t stream, const float* head, int64_t rows,
                            int32_t action_dim, SampleKey key, float* actions, float* log_prob,
                            float* entropy, AgentRows out) {
  launch(sample_gaussian_kernel, grid_for(rows), kBlock, stream, head, rows, action_dim, key,
         actions, log_prob, entropy, out);
}

void launch_gaussian_log_prob_entropy(cudaStream_t stream, const float* head, int64_t rows,
                                      int32_t action_dim, const float* actions, float* log_prob,
                                      float* entropy) {
  launch(gaussian_log_prob_entropy_kernel, grid_for(rows), kBlock, stream, head, rows, action_dim,
         actions, log_prob, entropy);
}

void launch_gaussian_loss_grad(cudaStream_t stream, const GaussianLossArgs& args) {
  launch(gaussian_loss_grad_kernel, grid_for(args.rows), kBlock, stream, args);
}

}  // namespace batchpole::cuda
