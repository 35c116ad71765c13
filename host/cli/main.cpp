// batchpole: batched CartPole on the GPU and the CPU, and policy-gradient training on it.
//
// Exit codes: 0 success; 1 runtime failure (or a failed comparison); 2 usage error (bad flag or
// value, impossible request such as CUDA without a GPU or more environments than fit in
// memory); 3 `compare` without a GPU; 130 `train` interrupted (after saving a checkpoint).
#include <cstdio>
#include <exception>

#include "batchpole/core/common.hpp"
#include "commands.hpp"

int main(int argc, char** argv) {
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
