// Launchers of the environment kernels (kernels/env_step.cu). Element logic: env_elements.hpp.
#pragma once

#include <cuda_runtime.h>

#include "batchpole/env/env_elements.hpp"

namespace batchpole::cuda {

template <class Real>
void launch_env_reset(cudaStream_t stream, const EnvConfig<Real>& c, const EnvArrays<Real>& a,
                      int64_t n);

template <class Real>
void launch_env_restart(cudaStream_t stream, const EnvConfig<Real>& c, const EnvArrays<Real>& a,
                        int64_t n);

// mask: n device-resident flags, or nullptr for every env.
template <class Real>
void launch_env_next_episode(cudaStream_t stream, const EnvConfig<Real>& c,
                             const EnvArrays<Real>& a, int64_t n, const uint8_t* mask);

// bad_action: a device word that receives min((env << 32) | action) over invalid actions.
template <class Real>
void launch_env_step(cudaStream_t stream, const EnvConfig<Real>& c, const EnvArrays<Real>& a,
                     int64_t n, const int32_t* actions, unsigned long long* bad_action);

// Continuous actions (cartpole_continuous_force): every float is valid.
template <class Real>
void launch_env_step_continuous(cudaStream_t stream, const EnvConfig<Real>& c,
                                const EnvArrays<Real>& a, int64_t n, const float* actions);

// ended: a device counter that receives the number of episodes that ended.
template <class Real>
void launch_env_run_random(cudaStream_t stream, const EnvConfig<Real>& c, const EnvArrays<Real>& a,
                           int64_t n, uint64_t first_step, int32_t steps,
                           unsigned long long* ended);

void launch_bench_actions(cudaStream_t stream, uint64_t seed, uint64_t step, int64_t n,
                          int32_t* out);

}  // namespace batchpole::cuda
