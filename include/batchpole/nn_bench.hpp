// Throughput of the actor-critic networks over a batch, beside the rate of the same BLAS calls
// run alone: `batchpole bench nn` and bench/bench_nn.cpp both report these.
#pragma once

#include <cstdint>
#include <string>

#include "batchpole/backend.hpp"
#include "batchpole/blas.hpp"
#include "batchpole/nn_ops.hpp"
#include "batchpole/policy_value.hpp"

namespace batchpole {

// Floating-point operations per sample of the BLAS calls a pass makes (gemm and gemv: 2 per
// multiply-add), which is what the GFLOP/s figures count.
struct NnFlops {
  double forward = 0;  // act(): every layer of every network
  double train = 0;    // accumulate_gradients(): forward, then weight, bias and input gradients
};
NnFlops nn_flops_per_sample(const ModelConfig& config);

// Seconds that the BLAS calls of one pass over `batch` samples take when run alone (same shapes,
// same shards and chunks spread over the same threads, no elementwise work), synchronised at
// the end. train = false: act()'s calls; true: accumulate_gradients()'s.
double blas_reference_seconds(Backend& backend, Blas& blas, NnOps& ops, const ModelConfig& config,
                              int64_t batch, int64_t chunk_rows, int32_t shards, bool train);

struct NnBenchResult {
  std::string device;  // Backend::description()
  std::string blas;    // Blas::description()
  int64_t batch = 0;
  int repeats = 0;
  int64_t chunk_rows = 0;
  std::size_t model_bytes = 0;  // MemoryReport::total() of the model benchmarked
  // Medians over the repeats. *_sgemm_gflops: the same BLAS calls alone (the reference rate).
  double forward_samples_per_s = 0;
  double forward_gflops = 0;
  double forward_sgemm_gflops = 0;
  double train_samples_per_s = 0;  // forward + losses + backward (accumulate_gradients)
  double train_gflops = 0;
  double train_sgemm_gflops = 0;
};

// The notebook's actor-critic (4-64 shared, 64-64-2, 64-64-1) on `batch` random observations:
// act() with values (forward), and accumulate_gradients() (forward plus backward), each run
// once to warm up and then `repeats` times. Throws Error(kInvalidArgument) for batch < 1 or
// repeats < 1, Error(kOutOfMemory) where the batch does not fit.
NnBenchResult bench_nn(Backend& backend, int64_t batch, int repeats);

}  // namespace batchpole
