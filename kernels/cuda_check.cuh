// The error-check family of the CUDA side: each records the expression, file and line and
// throws batchpole::Error, so tests can EXPECT_THROW and only main() picks an exit code.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>

#include "batchpole/core/common.hpp"

#define BP_CUDA_CHECK(expr)                                                                      \
  do {                                                                                           \
    const cudaError_t bp_err_ = (expr);                                                          \
    if (bp_err_ != cudaSuccess) {                                                                \
      ::batchpole::detail::throw_error(                                                          \
          bp_err_ == cudaErrorMemoryAllocation ? ::batchpole::Error::Kind::kOutOfMemory          \
                                               : ::batchpole::Error::Kind::kRuntime,             \
          #expr, __FILE__, __LINE__, std::string("CUDA error: ") + cudaGetErrorString(bp_err_)); \
    }                                                                                            \
  } while (0)

// After a launch: configuration errors surface here, execution errors at the next sync.
#define BP_CUDA_CHECK_LAUNCH() BP_CUDA_CHECK(cudaGetLastError())

// For destructors: report and carry on, never throw.
#define BP_CUDA_LOG(expr)                                                                    \
  do {                                                                                       \
    const cudaError_t bp_err_ = (expr);                                                      \
    if (bp_err_ != cudaSuccess) {                                                            \
      std::fprintf(stderr, "batchpole: %s failed at %s:%d: %s\n", #expr, __FILE__, __LINE__, \
                   cudaGetErrorString(bp_err_));                                             \
    }                                                                                        \
  } while (0)

#define BP_CUBLAS_CHECK(expr)                                             \
  do {                                                                    \
    const cublasStatus_t bp_st_ = (expr);                                 \
    if (bp_st_ != CUBLAS_STATUS_SUCCESS) {                                \
      ::batchpole::detail::throw_error(                                   \
          ::batchpole::Error::Kind::kRuntime, #expr, __FILE__, __LINE__,  \
          std::string("cuBLAS error: ") + cublasGetStatusString(bp_st_)); \
    }                                                                     \
  } while (0)

namespace batchpole::cuda {

constexpr int kBlock = 256;

inline unsigned grid_for(int64_t n, int block = kBlock) {
  return static_cast<unsigned>((n + block - 1) / block);
}

// Every kernel launch goes through here (grid: a block count, or a dim3 whose y counts a
// population's agents): one place that skips empty grids (a 0-block launch is
// an error on the GPU), checks the launch, and that the CPU emulation of tests/emulation
// replaces to run the grid without a GPU. The arguments convert to the kernel's parameter types
// as a <<<>>> launch would convert them.
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, unsigned block, cudaStream_t stream,
            Args... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "launch: wrong number of kernel arguments");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
#if defined(BATCHPOLE_CUDA_EMULATION)
  // The launch records its error as <<<>>> does; the check below reads it.
  (void)::cuda_emu::launch(kernel, grid, dim3(block), stream, static_cast<Params>(args)...);
#else
  kernel<<<grid, block, 0, stream>>>(static_cast<Params>(args)...);
#endif
  BP_CUDA_CHECK_LAUNCH();
}

}  // namespace batchpole::cuda
