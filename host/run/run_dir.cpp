#include "run_dir.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "batchpole/core/common.hpp"

namespace batchpole {

namespace fs = std::filesystem;

std::string prepare_run_dir(const fs::path& dir, bool resuming) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  BP_CHECK_ARG(!ec && fs::is_directory(dir), "--out " << dir.string() << " cannot be created: "
                                                      << (ec ? ec.message() : "not a directory"));
  const fs::path probe = dir / ".write-test";
  {
    std::ofstream f(probe);
    BP_CHECK_ARG(f.good(), "--out " << dir.string() << " is not writable");
  }
  fs::remove(probe, ec);
  if (resuming) return "";
  for (const char* name : {"checkpoint.bin", "summary.json"}) {
    BP_CHECK_ARG(!fs::exists(dir / name), "--out " << dir.string() << " already holds a run ("
                                                   << name << "); pass --resume " << dir.string()
                                                   << " to continue it, or choose another --out");
  }
  if (fs::exists(dir / "metrics.csv")) {
    return "--out " + dir.string() +
           " holds the metrics.csv of a run that stopped before its first checkpoint; "
           "starting afresh over it";
  }
  return "";
}

void write_file_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  BP_REQUIRE(f != nullptr, kRuntime, "cannot write " << tmp.string());
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() &&
                  std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::remove(tmp.c_str());
    BP_REQUIRE(
        false, kRuntime,
        "writing " << tmp.string() << " failed (disk full?); " << path.string() << " is unchanged");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  BP_REQUIRE(!ec, kRuntime,
             "cannot rename " << tmp.string() << " to " << path.string() << ": " << ec.message());
}

std::ofstream continue_metrics(const fs::path& from, const fs::path& to, int64_t updates,
                               const std::string& header, int64_t* rows_kept) {
  std::string text = header + '\n';
  int64_t row = -1;  // the header is row -1
  {
    std::ifstream in(from);
    std::string line;
    while (row < updates && std::getline(in, line)) {
      if (row >= 0) text += line + '\n';
      ++row;
    }
  }
  if (rows_kept != nullptr) *rows_kept = std::max<int64_t>(row, 0);
  write_file_atomically(to, text);
  std::ofstream out(to, std::ios::app);
  BP_CHECK_ARG(out.good(), "cannot write " << to.string());
  return out;
}

}  // namespace batchpole
