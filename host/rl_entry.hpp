// Constructors of the two RlOps implementations; make_rl_ops picks one by the backend's device.
#pragma once

#include <memory>

#include "batchpole/rl_ops.hpp"

namespace batchpole {

std::unique_ptr<RlOps> make_cpu_rl_ops(Backend& backend);
// kernels/cuda_rl_ops.cu; in a CPU-only build host/no_cuda.cpp throws Error(kUnavailable).
std::unique_ptr<RlOps> make_cuda_rl_ops(Backend& backend);

}  // namespace batchpole
