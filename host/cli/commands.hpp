// The subcommands of the `batchpole` program. Each adds itself to the parser; errors are thrown
// as batchpole::Error and turned into exit codes by main() alone.
#pragma once

#include <CLI/CLI.hpp>

namespace batchpole::cli {

void add_info_command(CLI::App& app);
void add_bench_commands(CLI::App& bench);
void add_train_commands(CLI::App& app);  // train and eval
void add_compare_command(CLI::App& app);

// Checks at start-up that this CPU runs the instruction set the build was compiled for.
void require_cpu_features();

}  // namespace batchpole::cli
