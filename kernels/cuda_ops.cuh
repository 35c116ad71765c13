// The CUDA device's four sets of operations (one file each), made by the device
// (kernels/cuda_device.cu) with its stream.
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <memory>

#include "batchpole/device/device.hpp"

namespace batchpole::cuda {

// The bad-action word's value while every action was valid.
constexpr unsigned long long kNoBadAction = ULLONG_MAX;

std::unique_ptr<Blas> make_blas(Device& device, cudaStream_t stream,
                                bool allow_tf32);                         // cublas_blas.cu
std::unique_ptr<NnOps> make_nn_ops(Device& device, cudaStream_t stream);  // cuda_nn_ops.cu
std::unique_ptr<RlOps> make_rl_ops(Device& device, cudaStream_t stream);  // cuda_rl_ops.cu
// bad_action: the device word invalid actions are reported in (min over (env << 32) | action).
std::unique_ptr<EnvOps> make_env_ops(Device& device, cudaStream_t stream,
                                     unsigned long long* bad_action);  // cuda_env_ops.cu

}  // namespace batchpole::cuda
