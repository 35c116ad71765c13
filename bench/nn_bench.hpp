// Throughput of the actor-critic networks over a batch, beside the rate of the same BLAS calls
// run alone: `batchpole bench nn` and the nn benchmarks of batchpole_bench both report these.
#pragma once

#include <cstdint>
#include <string>

#include "batchpole/nn/model.hpp"

namespace batchpole {

// Floating-point operations per sample of the BLAS calls a pass makes (gemm and gemv: 2 per
// multiply-add), which is what the GFLOP/s figures count.
struct NnFlops {
  double forward = 0;  // act(): every layer of every network
  double train = 0;    // accumulate_gradients(): forward, then weight, bias and input gradients
};
NnFlops nn_flops_per_sample(const ModelConfig& config);

// Seconds that the BLAS calls of one pass over `batch` samples take when run alone: the same
// model code (shards, chunks, workers) with element operations that do nothing, synchronised at
// the end. train = false: act()'s calls; true: accumulate_gradients()'s.
class BlasReference {
 public:
  BlasReference(Device& device, const ModelConfig& config, int64_t batch);
  ~BlasReference();
  BlasReference(const BlasReference&) = delete;
  BlasReference& operator=(const BlasReference&) = delete;
  double seconds(bool train);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct NnBenchResult {
  std::string device;  // Device::description()
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

// Device memory a benchmark of `batch` samples needs (inputs, model, reference).
std::size_t nn_bench_bytes(const Device& device, int64_t batch);

// The notebook's actor-critic (4-64 shared, 64-64-2, 64-64-1) on `batch` random observations:
// act() with values (forward), and accumulate_gradients() (forward plus backward), each run
// once to warm up and then `repeats` times. Throws Error(kInvalidArgument) for batch < 1 or
// repeats < 1, Error(kOutOfMemory), before allocating, where the batch does not fit.
NnBenchResult bench_nn(Device& device, int64_t batch, int repeats);

}  // namespace batchpole
