// Network throughput: the notebook's actor-critic (4-64 shared, 64-64-2 actor, 64-64-1 critic)
// forward (act() with values) and forward plus backward (accumulate_gradients()) over batches,
// on the CPU (OpenBLAS) and the GPU (cuBLAS). Counters: samples_per_s, gflops (the BLAS calls'
// flops over the pass's time) and sgemm_gflops, the rate of the same BLAS calls run alone in
// the same process at the same shapes; blas_fraction = gflops / sgemm_gflops is the share of the
// pass that the elementwise work leaves to BLAS.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "batchpole/device/buffer.hpp"
#include "bench_util.hpp"
#include "nn_bench.hpp"

namespace {

using batchpole::Device;
using batchpole::bench::device_for;

struct Inputs {
  batchpole::Buffer<float> obs, weights, targets, values;
  batchpole::Buffer<int32_t> actions;
  Inputs(Device& b, int64_t n) {
    const auto un = static_cast<std::size_t>(n);
    std::vector<float> h(un * 4);
    for (std::size_t i = 0; i < h.size(); ++i) {
      h[i] = 2.0f * batchpole::uniform_float(
                        batchpole::philox_draw(3, batchpole::Stream::kInit, 77, i)[0]) -
             1.0f;
    }
    obs = batchpole::Buffer<float>(b, un * 4);
    obs.from_host(h);
    h.resize(un);
    weights = batchpole::Buffer<float>(b, un);
    weights.from_host(h);
    targets = batchpole::Buffer<float>(b, un);
    targets.from_host(h);
    values = batchpole::Buffer<float>(b, un);
    actions = batchpole::Buffer<int32_t>(b, un);
    std::vector<int32_t> a(un);
    for (std::size_t i = 0; i < un; ++i) a[i] = static_cast<int32_t>(i & 1U);
    actions.from_host(a);
  }
};

void run_case(benchmark::State& state, bool train) {
  Device* b = device_for(state.range(0));
  if (b == nullptr) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const int64_t n = state.range(1);
  const batchpole::ModelConfig config = batchpole::ModelConfig::actor_critic();
  std::unique_ptr<batchpole::PolicyValueModel> model;
  std::unique_ptr<Inputs> in;
  try {
    model = std::make_unique<batchpole::PolicyValueModel>(*b, config);
    in = std::make_unique<Inputs>(*b, n);
  } catch (const batchpole::Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  const batchpole::ConstMatrix obs{in->obs.data(), n, 4};
  batchpole::RolloutView rollout;
  rollout.obs = obs;
  rollout.actions = in->actions.data();
  rollout.weights = in->weights.data();
  rollout.value_targets = in->targets.data();
  uint64_t step = 0;
  const auto pass = [&] {
    if (train) {
      model->accumulate_gradients(rollout, {0.01f, 0.5f});
    } else {
      model->act(obs, step++, in->actions.data(), nullptr, in->values.data());
    }
  };
  pass();  // warm-up
  b->synchronize();
  double total_s = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    pass();
    b->synchronize();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    total_s += s;
  }
  // The reference: the same BLAS calls alone, median of 5, in this process.
  batchpole::BlasReference reference(*b, config, n);
  reference.seconds(train);  // warm-up
  std::vector<double> ref;
  for (int r = 0; r < 5; ++r) ref.push_back(reference.seconds(train));
  std::sort(ref.begin(), ref.end());
  const batchpole::NnFlops f = batchpole::nn_flops_per_sample(config);
  const double flops_per_sample = train ? f.train : f.forward;
  const double samples = static_cast<double>(state.iterations()) * static_cast<double>(n);
  state.counters["samples_per_s"] = benchmark::Counter(samples, benchmark::Counter::kIsRate);
  state.counters["gflops"] =
      benchmark::Counter(samples * flops_per_sample * 1e-9, benchmark::Counter::kIsRate);
  const double sgemm_gflops = static_cast<double>(n) * flops_per_sample * 1e-9 / ref[2];
  state.counters["sgemm_gflops"] = sgemm_gflops;
  state.counters["blas_fraction"] = samples * flops_per_sample * 1e-9 / total_s / sgemm_gflops;
  state.SetLabel(b->description() + ", chunk " + std::to_string(model->chunk_rows()));
}

void BM_NnForward(benchmark::State& state) { run_case(state, false); }
void BM_NnForwardBackward(benchmark::State& state) { run_case(state, true); }

void nn_sizes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {256, 4096, 65536, 262144}) b->Args({0, n});
  for (int64_t n : {256, 4096, 65536, 262144, 1048576}) b->Args({1, n});
  b->ArgNames({"gpu", "batch"})->UseManualTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_NnForward)->Apply(nn_sizes);
BENCHMARK(BM_NnForwardBackward)->Apply(nn_sizes);

}  // namespace

// main() is bench_env.cpp's BENCHMARK_MAIN(): one program runs both files' benchmarks.
