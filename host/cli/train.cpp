// `batchpole train`: flags and a --config file resolved into a run (batchpole/run/
// train_run.hpp), a progress line, Ctrl-C.
#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "batchpole/run/comm.hpp"
#include "batchpole/run/train_run.hpp"
#include "cli_fields.hpp"
#include "commands.hpp"
#include "progress.hpp"

namespace batchpole::cli {

namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int /*sig*/) { g_interrupted.store(true); }

struct TrainFlags {
  FlagTexts run;
  FlagTexts train;
  std::string config_file;
  std::vector<std::string> sweep;  // --sweep, repeatable
  bool distributed = false;        // --distributed: the ranks of mpirun share the run
};

// A configuration file is a few hundred bytes; this much is a mistake (or /dev/zero), refused
// before it is read.
constexpr std::uintmax_t kMaxConfigBytes = std::uintmax_t{1} << 20;

std::string read_text(const std::string& path, const char* what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  BP_CHECK_ARG(!fs::is_directory(status), what << " " << path << " is a directory");
  BP_CHECK_ARG(!ec && fs::is_regular_file(status),
               what << " " << path << " is not a file" << (ec ? ": " + ec.message() : ""));
  const std::uintmax_t size = fs::file_size(path, ec);
  BP_CHECK_ARG(!ec && size <= kMaxConfigBytes, what << " " << path << " holds " << size
                                                    << " bytes; a configuration holds at most "
                                                    << kMaxConfigBytes);
  std::ifstream in(path);
  BP_CHECK_ARG(in.good(), what << ": cannot read " << path);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

int run_train(const TrainFlags& flags, const CLI::App& cmd, Comm* comm);

// Under --distributed a rank that fails ends the whole job (MPI_Abort) with its exit status, so
// that the others do not wait for it in a collective; its message is printed first.
int run_train_command(const TrainFlags& flags, const CLI::App& cmd) {
  if (!flags.distributed) return run_train(flags, cmd, nullptr);
  const std::unique_ptr<Comm> comm = make_world_comm();
  try {
    return run_train(flags, cmd, comm.get());
  } catch (const Error& e) {
    if (comm->size() == 1) throw;
    fmt::print(stderr, "batchpole: error (rank {} of {}): {}\n", comm->rank(), comm->size(),
               e.what());
    comm->abort(e.kind() == Error::Kind::kRuntime ? 1 : 2);
  } catch (const std::exception& e) {
    if (comm->size() == 1) throw;
    fmt::print(stderr, "batchpole: error (rank {} of {}): {}\n", comm->rank(), comm->size(),
               e.what());
    comm->abort(1);
  }
  return 1;  // not reached: abort ends the job
}

int run_train(const TrainFlags& flags, const CLI::App& cmd, Comm* comm) {
  RunKeys keys;
  if (!flags.config_file.empty()) {
    keys = run_keys_from_json(read_text(flags.config_file, "--config"),
                              "--config " + flags.config_file);
  }
  take_field_flags(cmd, run_config_fields(), flags.run, keys);
  take_field_flags(cmd, train_config_fields(), flags.train, keys);
  if (!flags.sweep.empty()) {
    std::string joined;
    for (const auto& s : flags.sweep) joined += (joined.empty() ? "" : ";") + s;
    keys["sweep"] = joined;
  }
  RunConfig run = resolve_run_config(keys);
  if (comm != nullptr && comm->rank() != 0) run.quiet = true;  // rank 0 speaks for the run
  parse_sweep(run.sweep);  // a malformed sweep is a usage error before anything starts
  DeviceOptions options;
  options.device = DeviceRequest::parse(run.device);
  options.threads = run.threads;
  const auto device = make_device(options);
  const std::vector<SweepPoint> points = resolve_sweep(keys, device->plan());

  Progress progress;
  RunCallbacks cb;
  cb.interrupted = [] { return g_interrupted.load(); };
  cb.message = [&](const std::string& m) {
    if (!run.quiet) fmt::print(stderr, "{}\n", m);
  };
  if (!run.quiet) cb.on_update = [&](const RunProgress& p) { progress.show(p); };
  std::signal(SIGINT, on_sigint);
  std::signal(SIGTERM, on_sigint);
  const RunResult result = run_training(*device, run, points, has_train_keys(keys), cb, comm);
  progress.done();
  if (!run.quiet || result.exit_code == 1) fmt::print(stderr, "{}\n", result.message);
  return result.exit_code;
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto flags = std::make_shared<TrainFlags>();
  auto* cmd =
      app.add_subcommand("train", "Train REINFORCE, REINFORCE with baseline, A2C, PPO or DQN");
  cmd->footer(
      "With no flags: A2C on the GPU if there is one (else the CPU), stopping when the mean "
      "return of the last 100 or more finished episodes reaches 475. Writes metrics.csv, "
      "summary.json and checkpoint.bin in --out. Ctrl-C saves a checkpoint and exits (130). "
      "--config FILE.json takes the same keys as the flags (flags win); defaults shown are "
      "A2C's on the CPU (REINFORCE and baseline: lr 0.001; on a GPU: 16384 envs; DQN: 8 envs, "
      "n_steps 10, lr 0.00025, max_grad_norm 10). "
      "--agents K trains K agents at once (seeds seed .. seed + K - 1), each exactly as alone, "
      "each stopping when it solves; --sweep lr=1e-3,3e-3 --sweep entropy_coef=0,0.01 trains "
      "such a population for every point.");
  const RunConfig run_defaults;
  const TrainConfig train_defaults;
  add_field_flags(*cmd, train_config_fields(), flags->train, &train_defaults);
  add_field_flags(*cmd, run_config_fields(), flags->run, &run_defaults, {"sweep"});
  cmd->add_option("--sweep", flags->sweep,
                  "KEY=V1,V2,...: train --agents seeds for every value (repeatable: every "
                  "combination); any training key but agents and seed")
      ->take_all()
      ->expected(1);
  cmd->add_option("--config", flags->config_file, "JSON file with the same keys (flags win)");
  cmd->add_flag("--distributed", flags->distributed,
                "Under mpirun -np R: the --agents K agents (K >= R) split over the R ranks, or "
                "one agent's envs (data-parallel: the same run as --parts R); rank 0 writes "
                "metrics.csv and summary.json, identical to one process's (needs MPI)");
  cmd->callback([flags, cmd] {
    const int code = run_train_command(*flags, *cmd);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace batchpole::cli
