// The categorical policy head: sampling, log-probabilities and entropies, probabilities. One
// thread per row of logits.
#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole::cuda {

namespace {

// N: the row's room (nn_elements.hpp): 2 for CartPole's two actions (registers), else any.
template <int32_t N>
__global__ void sample_actions_kernel(const float* __restrict__ logits, int64_t rows,
                                      int32_t num_actions, SampleKey key, int32_t* actions,
                                      float* log_prob, float* entropy, AgentRows out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const float u = sample_uniform(key, out, i);
  const int64_t o = out.at(i);
  actions[o] = policy_sample_row<N>(logits + i * num_actions, num_actions, u,
                                 log_prob != nullptr ? log_prob + o : nullptr,
                                 entropy != nullptr ? entropy + o : nullptr);
}

template <int32_t N>
__global__ void log_prob_entropy_kernel(const float* __restrict__ logits, int64_t rows,
                                        int32_t num_actions, const int32_t* actions,
                                        float* log_prob, float* entropy) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const float* z = logits + i * num_actions;
  if (log_prob != nullptr) log_prob[i] = categorical_log_prob<N>(z, num_actions, actions[i]);
  if (entropy != nullptr) entropy[i] = categorical_entropy<N>(z, num_actions);
}

template <int32_t N>
__global__ void softmax_kernel(const float* __restrict__ logits, int64_t rows, int32_t num_actions,
                               float* __restrict__ probs) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const SoftmaxRowT<N> s = softmax_row<N>(logits + i * num_actions, num_actions);
  for (int32_t j = 0; j < actions_of<N>(num_actions); ++j) {
    probs[i * num_actions + j] = s.prob(j);
  }
}

}  // namespace

void launch_sample_actions(cudaStream_t stream, const float* logits, int64_t rows,
                           int32_t num_actions, SampleKey key, int32_t* actions, float* log_prob,
                           float* entropy, AgentRows out) {
  if (num_actions == 2) {
    launch(sample_actions_kernel<2>, grid_for(rows), kBlock, stream, logits, rows, num_actions,
           key, actions, log_prob, entropy, out);
  } else {
    launch(sample_actions_kernel<kMaxActions>, grid_for(rows), kBlock, stream, logits, rows,
           num_actions, key, actions, log_prob, entropy, out);
  }
}

void launch_log_prob_entropy(cudaStream_t stream, const float* logits, int64_t rows,
                             int32_t num_actions, const int32_t* actions, float* log_prob,
                             float* entropy) {
  if (rows == 0) return;
  if (num_actions == 2) {
    launch(log_prob_entropy_kernel<2>, grid_for(rows), kBlock, stream, logits, rows, num_actions,
           actions, log_prob, entropy);
  } else {
    launch(log_prob_entropy_kernel<kMaxActions>, grid_for(rows), kBlock, stream, logits, rows,
           num_actions, actions, log_prob, entropy);
  }
}

void launch_softmax(cudaStream_t stream, const float* logits, int64_t rows, int32_t num_actions,
                    float* probs) {
  if (rows == 0) return;
  if (num_actions == 2) {
    launch(softmax_kernel<2>, grid_for(rows), kBlock, stream, logits, rows, num_actions, probs);
  } else {
    launch(softmax_kernel<kMaxActions>, grid_for(rows), kBlock, stream, logits, rows, num_actions,
           probs);
  }
}

}  // namespace batchpole::cuda
