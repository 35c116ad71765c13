// Launchers of the trainer kernels (kernels/rl_elementwise.cu, kernels/rl_reduce.cu). Element
// logic: rl_elements.hpp.
#pragma once

#include <cuda_runtime.h>

#include "batchpole/rl/rl_elements.hpp"

namespace batchpole::cuda {

void launch_returns(cudaStream_t stream, const ReturnsArgs& args);
void launch_gae(cudaStream_t stream, const GaeArgs& args);
void launch_gather_minibatch(cudaStream_t stream, const MinibatchArgs& args);
// rl_replay.cu
void launch_replay_store(cudaStream_t stream, const ReplayStoreArgs& args);
void launch_replay_sample(cudaStream_t stream, const ReplaySampleArgs& args);
void launch_td_targets(cudaStream_t stream, const TdTargetArgs& args);
void launch_first_episode_mask(cudaStream_t stream, const uint8_t* terminated,
                               const uint8_t* truncated, int64_t steps, int64_t envs,
                               uint8_t* mask, int64_t agents, int64_t stride);
void launch_mark_ended(cudaStream_t stream, uint8_t* ended, const uint8_t* terminated,
                       const uint8_t* truncated, int64_t n, int64_t* ended_count, int64_t agents,
                       int64_t stride);
void launch_subtract(cudaStream_t stream, const float* a, const float* b, int64_t n, float* out);
void launch_normalize(cudaStream_t stream, float* x, const uint8_t* mask, int64_t n,
                      const Moments* m, float eps, int64_t agents, int64_t stride);

// Deterministic two-pass reductions: `partial` holds agents x reduce_blocks(n) elements of the
// result type, out[k] receives agent k's total (device memory).
int64_t reduce_blocks(int64_t n);
void launch_moments(cudaStream_t stream, const float* x, const uint8_t* mask, int64_t n,
                    Moments* partial, Moments* out, int64_t agents, int64_t stride);
void launch_episode_tally(cudaStream_t stream, const EpisodeRows& rows, int64_t n,
                          EpisodeTally* partial, EpisodeTally* out, int64_t agents,
                          int64_t stride);

}  // namespace batchpole::cuda
