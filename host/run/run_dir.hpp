// The files of a run directory: metrics.csv, summary.json and checkpoint.bin. Nothing saved is
// lost: a directory holding a run is never taken by another, rewrites go through a temporary
// file that is checked before it replaces the original.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace batchpole {

// Creates `dir` if needed and checks that it can hold a run. A directory with a checkpoint or
// a summary is refused unless resuming into it. One with only a metrics.csv (a run killed before
// its first checkpoint) is taken over; the returned text says so ("" otherwise).
std::string prepare_run_dir(const std::filesystem::path& dir, bool resuming);

// metrics.csv of a run continued from a checkpoint taken after `updates` updates: the header
// and the first `updates` rows of `from` (the resumed run's metrics; rows written after the
// checkpoint are dropped), written to `to` through a checked temporary file, then opened for
// appending. `from` may be `to`. rows_kept (where given): how many rows `from` had of those.
std::ofstream continue_metrics(const std::filesystem::path& from, const std::filesystem::path& to,
                               int64_t updates, const std::string& header,
                               int64_t* rows_kept = nullptr);

// Writes text to path through a temporary file that is flushed, checked and renamed.
void write_file_atomically(const std::filesystem::path& path, const std::string& text);

}  // namespace batchpole
