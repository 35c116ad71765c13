// End-to-end training throughput: one A2C (or REINFORCE) update per iteration (rollout,
// returns, forward and backward over the rollout, Adam), environment steps per second in the
// counter env_steps_per_s. Arguments: device (0 CPU, 1 GPU), algorithm (0 A2C, 1 REINFORCE),
// environments.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>

#include "batchpole/rl/trainer.hpp"

namespace {

void BM_TrainUpdate(benchmark::State& state) {
  const bool gpu = state.range(0) == 1;
  if (gpu && batchpole::cuda_device_count() == 0) {
    state.SkipWithError("no CUDA device");
    return;
  }
  auto device = batchpole::make_device({batchpole::DeviceRequest::parse(gpu ? "cuda" : "cpu")});
  batchpole::TrainConfig c;
  c.algorithm = state.range(1) == 0 ? batchpole::Algorithm::kA2C : batchpole::Algorithm::kReinforce;
  c.envs = state.range(2);
  std::unique_ptr<batchpole::Trainer> trainer;
  try {
    trainer = std::make_unique<batchpole::Trainer>(*device, c);
  } catch (const batchpole::Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  trainer->update();  // warm-up
  const int64_t start = trainer->env_steps();
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(trainer->update());  // synchronises (reads its statistics)
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const auto steps = static_cast<double>(trainer->env_steps() - start);
  state.counters["env_steps_per_s"] = benchmark::Counter(steps, benchmark::Counter::kIsRate);
  state.SetLabel(device->description());
}

BENCHMARK(BM_TrainUpdate)
    ->ArgNames({"gpu", "reinforce", "envs"})
    ->Args({0, 0, 64})
    ->Args({0, 0, 256})
    ->Args({0, 0, 1024})
    ->Args({0, 0, 4096})
    ->Args({0, 1, 64})
    ->Args({1, 0, 4096})
    ->Args({1, 0, 65536})
    ->Args({1, 0, 1048576})
    ->Args({1, 1, 65536})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
