// The CUDA backend's entry points. kernels/cuda_backend.cu defines them when CUDA is compiled
// in; host/no_cuda.cpp defines stand-ins for the CPU-only build.
#pragma once

#include <memory>

#include "batchpole/backend.hpp"

namespace batchpole {

// Throws Error(kUnavailable) with the reason when no usable GPU exists.
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);

}  // namespace batchpole
