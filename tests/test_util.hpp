// Helpers shared by the tests: CSV loading and the device parameterisation.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "batchpole/device/device.hpp"

namespace batchpole::test {

// A CSV file with a header row; cells kept as strings, parsed on demand.
struct Csv {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;

  [[nodiscard]] std::size_t col(const std::string& name) const {
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) return i;
    }
    throw std::runtime_error("no column " + name);
  }
  [[nodiscard]] double num(std::size_t row, const std::string& name) const {
    return std::strtod(rows[row][col(name)].c_str(), nullptr);
  }
  [[nodiscard]] bool empty_cell(std::size_t row, const std::string& name) const {
    return rows[row][col(name)].empty();
  }
};

inline std::vector<std::string> split(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();  // the reference files use CRLF
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) out.push_back(cell);
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

inline Csv load_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  Csv csv;
  std::string line;
  std::getline(in, line);
  csv.header = split(line);
  while (std::getline(in, line)) {
    if (!line.empty()) csv.rows.push_back(split(line));
  }
  return csv;
}

// The reference data: tests/data, or BATCHPOLE_TEST_DATA_DIR where the tests run away from the
// source tree (scripts/gpu-check.sh).
inline std::string data_path(const std::string& file) {
  const char* dir = std::getenv("BATCHPOLE_TEST_DATA_DIR");
  return std::string(dir != nullptr ? dir : BATCHPOLE_TEST_DATA_DIR) + "/" + file;
}

// Device-parameterised tests run on "cpu" always and on "cuda" where a GPU exists. Without one
// the CUDA instances skip with a message, unless BATCHPOLE_REQUIRE_GPU=1 (scripts/gpu-check.sh)
// turns the skip into a failure.
inline std::unique_ptr<Device> device_or_skip(const std::string& device, int threads = 0) {
  DeviceOptions o;
  o.device = DeviceRequest::parse(device);
  o.threads = threads;
  if (device == "cuda" && cuda_device_count() == 0) {
    const char* require = std::getenv("BATCHPOLE_REQUIRE_GPU");
    if (require != nullptr && std::string(require) == "1") {
      ADD_FAILURE() << "BATCHPOLE_REQUIRE_GPU=1 but no CUDA device is usable";
    }
    return nullptr;
  }
  return make_device(o);
}

#define BP_DEVICE_OR_SKIP(var, device)                                                   \
  auto var = ::batchpole::test::device_or_skip(device);                                  \
  if (!var)                                                                              \
  GTEST_SKIP() << "no CUDA device here ("                                                \
               << (::batchpole::cuda_compiled() ? "CUDA compiled in" : "CPU-only build") \
               << "); GPU tests run in scripts/gpu-check.sh"

inline std::vector<std::string> devices() { return {"cpu", "cuda"}; }

// n values uniform in [lo, hi) from a fixed seed (never zeros: they hide indexing mistakes).
inline std::vector<float> random_vec(std::size_t n, uint32_t seed, float lo = -1.0f,
                                     float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace batchpole::test
