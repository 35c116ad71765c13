// Launchers of the network kernels (kernels/nn_*.cu), one concern per file. Element logic:
// include/batchpole/nn/nn_elements.hpp. Each launcher takes the stream, launches and checks.
#pragma once

#include <cuda_runtime.h>

#include "batchpole/nn/nn_ops.hpp"

namespace batchpole::cuda {

// nn_fill.cu
void launch_fill(cudaStream_t stream, float* x, int64_t n, float value, int64_t agents,
                 int64_t stride);
void launch_init_uniform(cudaStream_t stream, float* x, int64_t n, float bound, uint64_t seed,
                         uint32_t block);

// nn_activation.cu
void launch_bias_activation(cudaStream_t stream, float* y, const float* bias, int64_t rows,
                            int64_t cols, Activation act, int64_t rows_per_agent,
                            int64_t bias_stride);
void launch_activation_backward(cudaStream_t stream, float* dy, const float* y, int64_t n,
                                Activation act);

// nn_policy_head.cu
void launch_sample_actions(cudaStream_t stream, const float* logits, int64_t rows,
                           int32_t num_actions, SampleKey key, int32_t* actions, float* log_prob,
                           float* entropy, AgentRows out);
void launch_log_prob_entropy(cudaStream_t stream, const float* logits, int64_t rows,
                             int32_t num_actions, const int32_t* actions, float* log_prob,
                             float* entropy);
void launch_softmax(cudaStream_t stream, const float* logits, int64_t rows, int32_t num_actions,
                    float* probs);

// nn_losses.cu
void launch_policy_loss_grad(cudaStream_t stream, const PolicyLossArgs& args);
void launch_value_loss_grad(cudaStream_t stream, const ValueLossArgs& args);

// nn_gaussian_head.cu
void launch_sample_gaussian(cudaStream_t stream, const float* head, int64_t rows,
                            int32_t action_dim, SampleKey key, float* actions, float* log_prob,
                            float* entropy, AgentRows out);
void launch_gaussian_log_prob_entropy(cudaStream_t stream, const float* head, int64_t rows,
                                      int32_t action_dim, const float* actions, float* log_prob,
                                      float* entropy);
void launch_gaussian_loss_grad(cudaStream_t stream, const GaussianLossArgs& args);

// nn_q_head.cu
void launch_epsilon_greedy(cudaStream_t stream, const float* q, int64_t rows, int32_t num_actions,
                           SampleKey key, float epsilon, int32_t* actions, AgentRows out,
                           const float* epsilons);
void launch_q_loss_grad(cudaStream_t stream, const QLossArgs& args);

// nn_count.cu: `scratch` is one device word per agent that the launcher zeroes and uses.
void launch_count_nonzero(cudaStream_t stream, const uint8_t* mask, int64_t n, float* out,
                          int64_t agents, int64_t stride, unsigned long long* scratch);

// nn_norms.cu
void launch_norms(cudaStream_t stream, const float* x, int64_t n, int64_t agents, int64_t stride,
                  float* out, int64_t out_stride);

// nn_adam.cu
void launch_adam_step(cudaStream_t stream, float* params, const float* grads, float* m, float* v,
                      int64_t n, AdamScalars s, const float* grad_norm, float max_grad_norm,
                      AdamAgents agents);

}  // namespace batchpole::cuda
