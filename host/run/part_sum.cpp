// Sums in part order (batchpole/run/part_sum.hpp).
#include "batchpole/run/part_sum.hpp"

#include <cstring>
#include <string>

#include "batchpole/core/common.hpp"
#include "batchpole/run/comm.hpp"

namespace batchpole {

std::vector<float> sum_parts(std::span<const float> parts, int64_t n) {
  BP_CHECK_ARG(n > 0 && !parts.empty() && parts.size() % static_cast<std::size_t>(n) == 0,
               "sum_parts: " << parts.size() << " floats are not parts of " << n);
  const std::size_t un = static_cast<std::size_t>(n);
  std::vector<float> out(parts.begin(), parts.begin() + static_cast<std::ptrdiff_t>(un));
  for (std::size_t p = 1; p < parts.size() / un; ++p) {
    const float* part = parts.data() + p * un;
    for (std::size_t i = 0; i < un; ++i) out[i] += part[i];
  }
  return out;
}

Moments sum_parts(std::span<const Moments> parts) {
  Moments m;
  for (const Moments& p : parts) m = add(m, p);
  return m;
}

EpisodeTally sum_parts(std::span<const EpisodeTally> parts) {
  EpisodeTally t;
  for (const EpisodeTally& p : parts) t = add(t, p);
  return t;
}

std::vector<float> allgather_sum(Comm& comm, std::span<const float> mine, int64_t n) {
  std::string bytes(mine.size_bytes(), '\0');
  std::memcpy(bytes.data(), mine.data(), mine.size_bytes());
  const std::vector<std::string> all = comm.allgather(bytes);
  std::vector<float> parts;
  for (const std::string& b : all) {
    BP_CHECK_ARG(b.size() == bytes.size(), "allgather_sum: ranks gave " << b.size() << " and "
                                                                         << bytes.size()
                                                                         << " bytes");
    const std::size_t at = parts.size();
    parts.resize(at + b.size() / sizeof(float));
    std::memcpy(parts.data() + at, b.data(), b.size());
  }
  return sum_parts(parts, n);
}

}  // namespace batchpole
