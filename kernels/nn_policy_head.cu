// The categorical policy head: sampling, log-probabilities and entropies, probabilities. One
// thread per row of logits.
#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole::cuda {

namespace {

__global__ void sample_actions_kernel(const float* __restrict__ logits, int64_t rows,
                                      int32_t num_actions, SampleKey key, int32_t* actions,
                                      float* log_prob, float* entropy, AgentRows out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const float u = sample_uniform(key, out, i);
  const int64_t o = out.at(i);
  actions[o] = policy_sample_row(logits + i * num_actions, num_actions, u,
                                 log_prob != nullptr ? log_prob + o : nullptr,
                                 entropy != nullptr ? entropy + o : nullptr);
}

__global__ void log_prob_entropy_kernel(const float* __restrict__ logits, int64_t rows,
                                        int32_t num_actions, const int32_t* actions,
                                        float* log_prob, float* entropy) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const float* z = logits + i * num_actions;
  if (log_prob != nullptr) log_prob[i] = categorical_log_prob(z, num_actions, actions[i]);
  if (entropy != nullptr) entropy[i] = categorical_entropy(z, num_actions);
}

__global__ void softmax_kernel(const float* __restrict__ logits, int64_t rows, int32_t num_actions,
                               float* __restrict__ probs) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const SoftmaxRow s = softmax_row(logits + i * num_actions, num_actions);
  for (int32_t j = 0; j < num_actions; ++j) probs[i * num_actions + j] = s.prob(j);
}

}  // namespace

void launch_sample_actions(cudaStream_t stream, const float* logits, int64_t rows,
                           int32_t num_actions, SampleKey key, int32_t* actions, float* log_prob,
                           float* entropy, AgentRows out) {
  launch(sample_actions_kernel, grid_for(rows), kBlock, stream, logits, rows, num_actions, key,
         actions, log_prob, entropy, out);
}

void launch_log_prob_entropy(cudaStream_t stream, const float* logits, int64_t rows,
                             int32_t num_actions, const int32_t* actions, float* log_prob,
                             float* entropy) {
  if (rows == 0) return;
  launch(log_prob_entropy_kernel, grid_for(rows), kBlock, stream, logits, rows, num_actions,
         actions, log_prob, entropy);
}

void launch_softmax(cudaStream_t stream, const float* logits, int64_t rows, int32_t num_actions,
                    float* probs) {
  if (rows == 0) return;
  launch(softmax_kernel, grid_for(rows), kBlock, stream, logits, rows, num_actions, probs);
}

}  // namespace batchpole::cuda
