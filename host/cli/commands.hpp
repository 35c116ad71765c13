// The subcommands of the `batchpole` program, one file each. Each adds itself to the parser;
// errors are thrown as batchpole::Error and turned into exit codes by main() alone.
#pragma once

#include <CLI/CLI.hpp>

namespace batchpole::cli {

void add_info_command(CLI::App& app);      // info.cpp
void add_train_command(CLI::App& app);     // train.cpp
void add_eval_command(CLI::App& app);      // eval.cpp
void add_compare_command(CLI::App& app);   // compare.cpp
void add_bench_commands(CLI::App& bench);  // bench.cpp: env, nn, train

// Checks at start-up that this CPU runs the instruction set the build was compiled for.
void require_cpu_features();

}  // namespace batchpole::cli
