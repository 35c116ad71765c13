// `batchpole bench env | nn | train`: throughput on one device.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "batchpole/core/stats.hpp"
#include "batchpole/device/buffer.hpp"
#include "batchpole/env/vec_env.hpp"
#include "batchpole/rl/trainer.hpp"
#include "cli_fields.hpp"
#include "commands.hpp"
#include "nn_bench.hpp"

namespace batchpole::cli {

namespace {

// Sizes, counts and seeds come through field tables (env_fields() and the like below), which
// check every number as train's flags are checked. A default of 0 where the range starts at 1
// stands for the device's or the mode's own.
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxRepeats = 1'000'000;

struct EnvBenchOptions {
  std::string device = "auto";
  int64_t envs = 0;   // 0: 65536 on the CPU, 4M on the GPU
  int32_t steps = 0;  // 0: 1000 fused, 200 in step mode
  std::string precision = "f32";
  std::string mode = "fused";
  int repeats = 5;
  int threads = 0;
  uint64_t seed = 0;
  bool json = false;
};

std::vector<Field<EnvBenchOptions>> env_fields() {
  using O = EnvBenchOptions;
  return {
      int_field<O>("envs", "Number of environments (default 65536 CPU, 4194304 GPU)", 1, kInt32Max,
                   &O::envs),
      int_field<O>("steps", "Steps per timed repeat (default 1000 fused, 200 step)", 1, kInt32Max,
                   &O::steps),
      int_field<O>("repeats", "Timed repeats; the median is reported", 1, kMaxRepeats, &O::repeats),
      threads_field<O>("CPU threads (0 = all)", &O::threads),
      seed_field<O>("Seed of resets and random actions", &O::seed)};
}

void run_env_bench(const EnvBenchOptions& o) {
  BP_CHECK_ARG(o.mode == "fused" || o.mode == "step",
               "--mode must be fused or step, got '" << o.mode << "'");
  DeviceOptions bo;
  bo.device = DeviceRequest::parse(o.device);
  bo.threads = o.threads;
  const auto device = make_device(bo);
  const int64_t envs = o.envs > 0 ? o.envs : device->plan().bench_env_envs;
  const int32_t steps = o.steps > 0 ? o.steps : (o.mode == "fused" ? 1000 : 200);
  const Precision precision = parse_precision(o.precision);

  VecEnv env(*device, envs, CartPoleParams{}, precision);
  env.reset(o.seed);
  Buffer<int32_t> actions(*device, static_cast<std::size_t>(envs));
  uint64_t episodes = 0;
  const auto run_once = [&] {
    if (o.mode == "fused") {
      episodes += env.run_random(steps);
    } else {
      for (int32_t t = 0; t < steps; ++t) {
        env.random_actions(actions.data());
        env.step(actions.data());
      }
    }
    device->synchronize();
  };
  run_once();  // warm-up: page faults, module load, caches
  std::vector<double> rates;
  for (int r = 0; r < o.repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run_once();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(static_cast<double>(envs) * steps / s);
  }
  const double rate = median(rates);
  if (o.json) {
    nlohmann::json j = {{"benchmark", "env"},
                        {"device", device->description()},
                        {"precision", to_string(precision)},
                        {"mode", o.mode},
                        {"envs", envs},
                        {"steps_per_repeat", steps},
                        {"repeats", o.repeats},
                        {"env_steps_per_s", rate},
                        {"env_steps_per_s_all", rates},
                        {"version", BATCHPOLE_VERSION}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("device {}  precision {}  mode {}  envs {}  steps {}  repeats {}\n",
             device->description(), to_string(precision), o.mode, envs, steps, o.repeats);
  fmt::print("env steps per second (median): {:.4g}\n", rate);
}

struct TrainBenchOptions {
  std::string device = "auto";
  std::string algo = "a2c";
  std::string actions = "discrete";
  int64_t envs = 0;     // 0: the training default of the device (of each agent)
  int64_t agents = 1;   // a population trained as one batch
  int32_t n_steps = 0;  // 0: the algorithm's default
  int updates = 20;
  int threads = 0;
  int64_t chunk_rows = 0;  // 0: the model's default for the device
  bool json = false;
  bool no_graphs = false;  // every update launch by launch, whatever the device's plan says
};

std::vector<Field<TrainBenchOptions>> train_fields() {
  using O = TrainBenchOptions;
  return {int_field<O>("envs", "Environments of each agent (default 4096 CPU, 1048576 GPU)", 1,
                       kInt32Max, &O::envs),
          int_field<O>("agents", "Agents trained at once, as one batch (a population)", 1, 65535,
                       &O::agents),
          int_field<O>("n_steps", "Rollout length (0: the algorithm's default)", 0, 1'000'000,
                       &O::n_steps),
          int_field<O>("updates", "Timed updates; the median rate is reported", 1, kMaxRepeats,
                       &O::updates),
          threads_field<O>("CPU threads (0 = all)", &O::threads),
          int_field<O>("chunk_rows", "Rows per network pass (0 = the device's default)", 0,
                       (int64_t{1} << 31) / 256, &O::chunk_rows)};
}

// End-to-end training throughput: environment steps per second over whole updates (rollout,
// returns, forward and backward, Adam), after two warm-up updates (the second is recorded where
// the device records updates).
void run_train_bench(const TrainBenchOptions& o) {
  DeviceOptions bo;
  bo.device = DeviceRequest::parse(o.device);
  bo.threads = o.threads;
  if (o.no_graphs) {
    auto plan = std::make_shared<DevicePlan>(make_device(bo)->plan());
    plan->graphs = false;
    bo.plan = plan;
  }
  const auto device = make_device(bo);
  TrainConfig c = TrainConfig::defaults(parse_algorithm(o.algo), device->plan());
  c.actions = parse_action_space(o.actions);
  // DQN keeps its own batch (a few envs, many gradient steps) unless asked, and learns from the
  // first update so that every timed update includes its gradient steps.
  if (o.envs > 0) {
    c.envs = o.envs;
  } else if (c.algorithm != Algorithm::kDqn) {
    c.envs = device->plan().bench_train_envs;
  }
  if (c.algorithm == Algorithm::kDqn) c.learning_starts = 0;
  if (o.n_steps > 0) c.n_steps = o.n_steps;
  if (c.algorithm == Algorithm::kPpo)
    c.apply_ppo_recipe(o.n_steps > 0 ? std::vector<std::string>{"n_steps"}
                                     : std::vector<std::string>{});
  c.chunk_rows = o.chunk_rows;
  c.agents = o.agents;
  Trainer trainer(*device, c);
  trainer.update_agents();
  trainer.update_agents();
  const int64_t start_steps = trainer.env_steps();
  std::vector<double> rates;
  OpCounts ops;
  for (int u = 0; u < o.updates; ++u) {
    const int64_t before = trainer.env_steps();
    const auto t0 = std::chrono::steady_clock::now();
    ops = trainer.update_agents().front().ops;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(static_cast<double>(trainer.env_steps() - before) / s);
  }
  const double rate = median(rates);
  if (o.json) {
    const nlohmann::json j = {{"benchmark", "train"},
                              {"device", device->description()},
                              {"algo", o.algo},
                              {"actions", o.actions},
                              {"envs", c.envs},
                              {"agents", c.agents},
                              {"batched_agents", trainer.model().batched()},
                              {"n_steps", c.n_steps},
                              {"chunk_rows", trainer.model().chunk_rows()},
                              {"updates", o.updates},
                              {"env_steps", trainer.env_steps() - start_steps},
                              {"env_steps_per_s", rate},
                              {"stream_ops_per_update", ops.stream_ops},
                              {"host_syncs_per_update", ops.host_syncs},
                              {"recorded_updates", trainer.recording().replays()},
                              {"version", BATCHPOLE_VERSION}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("device {}  algo {}  actions {}  envs {}{}  n_steps {}  updates {}\n",
             device->description(), o.algo, o.actions, c.envs,
             c.agents > 1 ? fmt::format(" x {} agents{}", c.agents,
                                        trainer.model().batched() ? " (batched)" : "")
                          : std::string(),
             c.n_steps, o.updates);
  fmt::print("training env steps per second (median over updates{}): {:.4g}\n",
             c.agents > 1 ? ", all agents" : "", rate);
  fmt::print("per update: {} stream operations, {} host synchronisations{}\n", ops.stream_ops,
             ops.host_syncs,
             trainer.recording().replays() > 0
                 ? fmt::format(" ({} of {} updates replayed as one recorded launch)",
                               trainer.recording().replays(), o.updates + 2)
                 : std::string());
}

struct NnBenchOptions {
  std::string device = "auto";
  int64_t batch = 0;  // 0: 65536 CPU, 1M GPU
  int repeats = 5;
  int threads = 0;
  bool json = false;
};

// The actor-critic's forward and forward+backward over a batch, beside the sgemm rate of the
// same BLAS calls alone.
std::vector<Field<NnBenchOptions>> nn_fields() {
  using O = NnBenchOptions;
  return {
      int_field<O>("batch", "Samples per pass (default 65536 CPU, 1048576 GPU)", 1,
                   int64_t{1} << 31, &O::batch),
      int_field<O>("repeats", "Timed repeats; medians are reported", 1, kMaxRepeats, &O::repeats),
      threads_field<O>("CPU threads (0 = all)", &O::threads)};
}

void run_nn_bench(const NnBenchOptions& o) {
  DeviceOptions bo;
  bo.device = DeviceRequest::parse(o.device);
  bo.threads = o.threads;
  const auto device = make_device(bo);
  const int64_t batch = o.batch > 0 ? o.batch : device->plan().bench_nn_batch;
  const NnBenchResult r = bench_nn(*device, batch, o.repeats);
  if (o.json) {
    const nlohmann::json j = {{"benchmark", "nn"},
                              {"device", r.device},
                              {"blas", r.blas},
                              {"batch", r.batch},
                              {"repeats", r.repeats},
                              {"chunk_rows", r.chunk_rows},
                              {"model_bytes", r.model_bytes},
                              {"samples_per_s", r.train_samples_per_s},
                              {"forward_samples_per_s", r.forward_samples_per_s},
                              {"forward_gflops", r.forward_gflops},
                              {"forward_sgemm_gflops", r.forward_sgemm_gflops},
                              {"train_samples_per_s", r.train_samples_per_s},
                              {"train_gflops", r.train_gflops},
                              {"train_sgemm_gflops", r.train_sgemm_gflops},
                              {"version", BATCHPOLE_VERSION}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("device {}  blas {}  batch {}  repeats {}  chunk {}\n", r.device, r.blas, r.batch,
             r.repeats, r.chunk_rows);
  fmt::print("forward:            {:.4g} samples/s  {:.1f} GFLOP/s  (sgemm alone {:.1f})\n",
             r.forward_samples_per_s, r.forward_gflops, r.forward_sgemm_gflops);
  fmt::print("forward + backward: {:.4g} samples/s  {:.1f} GFLOP/s  (sgemm alone {:.1f})\n",
             r.train_samples_per_s, r.train_gflops, r.train_sgemm_gflops);
}

}  // namespace

void add_bench_commands(CLI::App& bench) {
  auto nn = std::make_shared<NnBenchOptions>();
  auto nn_flags = std::make_shared<FlagTexts>();
  auto* nc = bench.add_subcommand("nn", "Actor-critic forward and backward: samples per second");
  nc->add_option("--device", nn->device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "gpu", "auto"}))
      ->capture_default_str();
  add_field_flags(*nc, nn_fields(), *nn_flags, nn.get());
  nc->add_flag("--json", nn->json, "Print JSON (key samples_per_s: forward + backward)");
  nc->callback([nn, nn_flags, nc] {
    assign_field_flags(*nc, nn_fields(), *nn_flags, *nn);
    run_nn_bench(*nn);
  });

  auto t = std::make_shared<TrainBenchOptions>();
  auto t_flags = std::make_shared<FlagTexts>();
  auto* tc = bench.add_subcommand("train", "End-to-end training: env steps per second");
  tc->add_option("--device", t->device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "gpu", "auto"}))
      ->capture_default_str();
  tc->add_option("--algo", t->algo, "reinforce, baseline, a2c, ppo or dqn")
      ->check(CLI::IsMember(algorithm_names()))
      ->capture_default_str();
  tc->add_option("--actions", t->actions, "discrete, or continuous (the Gaussian policy head)")
      ->check(CLI::IsMember({"discrete", "continuous"}))
      ->capture_default_str();
  add_field_flags(*tc, train_fields(), *t_flags, t.get());
  tc->add_flag("--json", t->json,
               "Print JSON (keys env_steps_per_s, stream_ops_per_update, host_syncs_per_update, "
               "recorded_updates)");
  tc->add_flag("--no-graphs", t->no_graphs,
               "Launch every operation of an update on its own, not as one recorded launch (a "
               "CUDA graph on the GPU), to measure what recording gains");
  tc->callback([t, t_flags, tc] {
    assign_field_flags(*tc, train_fields(), *t_flags, *t);
    run_train_bench(*t);
  });

  auto o = std::make_shared<EnvBenchOptions>();
  auto o_flags = std::make_shared<FlagTexts>();
  auto* cmd = bench.add_subcommand(
      "env", "Environment steps per second with random actions and auto-reset");
  cmd->add_option("--device", o->device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "gpu", "auto"}))
      ->capture_default_str();
  cmd->add_option("--precision", o->precision, "Physics precision: f32 or f64")
      ->check(CLI::IsMember({"f32", "f64"}))
      ->capture_default_str();
  cmd->add_option("--mode", o->mode,
                  "fused: many steps per launch, state in registers; step: one launch per step")
      ->check(CLI::IsMember({"fused", "step"}))
      ->capture_default_str();
  add_field_flags(*cmd, env_fields(), *o_flags, o.get());
  cmd->add_flag("--json", o->json, "Print JSON (key env_steps_per_s)");
  cmd->callback([o, o_flags, cmd] {
    assign_field_flags(*cmd, env_fields(), *o_flags, *o);
    run_env_bench(*o);
  });
}

}  // namespace batchpole::cli
