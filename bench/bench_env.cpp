// Environment throughput: steps per second with random actions and auto-reset, one launch per
// step (BM_EnvStep) and many steps per launch (BM_EnvFused), over devices, precisions and sizes.
// Rates are in the counter env_steps_per_s. GPU cases time with a synchronisation at the end of
// each iteration (manual time), so queued work is never counted as done.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>

#include "batchpole/device/buffer.hpp"
#include "batchpole/env/vec_env.hpp"
#include "bench_util.hpp"

namespace {

using batchpole::Device;
using batchpole::Precision;

using batchpole::bench::device_for;

template <class Body>
void run_env_case(benchmark::State& state, int32_t steps_per_iter, Body body) {
  Device* b = device_for(state.range(0));
  if (b == nullptr) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const auto precision = state.range(1) == 0 ? Precision::kF32 : Precision::kF64;
  const int64_t n = state.range(2);
  std::unique_ptr<batchpole::VecEnv> env;
  try {
    env = std::make_unique<batchpole::VecEnv>(*b, n, batchpole::CartPoleParams{}, precision);
  } catch (const batchpole::Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  env->reset(1);
  batchpole::Buffer<int32_t> actions(*b, static_cast<std::size_t>(n));
  body(*env, actions, steps_per_iter);  // warm-up
  b->synchronize();
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    body(*env, actions, steps_per_iter);
    b->synchronize();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double steps =
      static_cast<double>(state.iterations()) * static_cast<double>(n) * steps_per_iter;
  state.SetItemsProcessed(static_cast<int64_t>(steps));
  state.counters["env_steps_per_s"] = benchmark::Counter(steps, benchmark::Counter::kIsRate);
  state.SetLabel(b->description());
}

void BM_EnvStep(benchmark::State& state) {
  run_env_case(state, 10, [](batchpole::VecEnv& env, batchpole::Buffer<int32_t>& a, int32_t k) {
    for (int32_t t = 0; t < k; ++t) {
      env.random_actions(a.data());
      env.step(a.data());
    }
  });
}

void BM_EnvFused(benchmark::State& state) {
  run_env_case(state, 100, [](batchpole::VecEnv& env, batchpole::Buffer<int32_t>&, int32_t k) {
    benchmark::DoNotOptimize(env.run_random(k));
  });
}

void env_sizes(benchmark::internal::Benchmark* b) {
  for (int64_t device : {0, 1}) {
    for (int64_t precision : {0, 1}) {
      for (int64_t n : {1, 64, 1024, 16384, 65536, 262144, 1048576}) {
        b->Args({device, precision, n});
      }
      if (device == 1) {
        b->Args({device, precision, int64_t{1} << 22});
        b->Args({device, precision, int64_t{1} << 24});
      }
    }
  }
  b->ArgNames({"gpu", "f64", "envs"})->UseManualTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_EnvStep)->Apply(env_sizes);
BENCHMARK(BM_EnvFused)->Apply(env_sizes);

}  // namespace

BENCHMARK_MAIN();
