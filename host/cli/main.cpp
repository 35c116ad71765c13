// batchpole: batched CartPole on the GPU and the CPU, and policy-gradient training on it.
//
// Exit codes: 0 success; 1 runtime failure (or a failed comparison); 2 usage error (bad flag or
// value, impossible request such as CUDA without a GPU or more environments than fit in
// memory); 3 `compare` without a GPU; 130 `train` interrupted (after saving a checkpoint).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "batchpole/core/common.hpp"
#include "commands.hpp"

namespace {

// OpenMP threads that wait for work spin by default (libgomp reads OMP_WAIT_POLICY when it is
// loaded, before main). On shared cores a spinning thread takes the core its partner needs:
// PPO at 32 envs ran at 31k env steps/s against 295-354k with passive waits on a loaded 2-core
// machine (BENCHMARKS.md). So unless the user chose a policy, start again with passive waits.
void ensure_passive_openmp_waits(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "passive", 0) != 0) return;
  execv("/proc/self/exe", argv);  // returns only if it failed: carry on as we are
}

}  // namespace

int main(int argc, char** argv) {
  ensure_passive_openmp_waits(argv);
  CLI::App app{
      "batchpole: batched CartPole-v1 on the GPU and the CPU, with policy-gradient "
      "trainers (REINFORCE, REINFORCE with baseline, A2C).",
      "batchpole"};
  app.set_version_flag("--version", std::string("batchpole ") + BATCHPOLE_VERSION);
  app.require_subcommand(1);
  app.footer("Run `batchpole COMMAND --help` for the options of a command.");

  batchpole::cli::add_info_command(app);
  batchpole::cli::add_train_command(app);
  batchpole::cli::add_eval_command(app);
  batchpole::cli::add_compare_command(app);
  auto* bench = app.add_subcommand("bench", "Measure throughput (environment steps per second)");
  bench->require_subcommand(1);
  batchpole::cli::add_bench_commands(*bench);

  try {
    batchpole::cli::require_cpu_features();
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a command's own exit status (train: 1 on NaN, 130 on Ctrl-C)
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every other parse error is a usage error: 2.
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const batchpole::Error& e) {
    std::fprintf(stderr, "batchpole: error: %s\n", e.what());
    return e.kind() == batchpole::Error::Kind::kRuntime ? 1 : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "batchpole: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
