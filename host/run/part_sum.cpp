// Sums in part order (batchpole/run/part_sum.hpp).
#include "batchpole/run/part_sum.hpp"

#include <cstring>
#include <string>

#include "batchpole/core/common.hpp"
#include "batchpole/run/comm.hpp"

namespace batchpole {

std::vector<float> allgather_sum(Comm& comm, std::span<const float> mine, int64_t n) {
  std::string bytes(mine.size_bytes(), '\0');
  std::memcpy(bytes.data(), mine.data(), mine.size_bytes());
  const std::vector<std::string> all = comm.allgather(bytes);
  std::vector<float> parts;
  for (const std::string& b : all) {
    BP_CHECK_ARG(b.size() == bytes.size(),
                 "allgather_sum: ranks gave " << b.size() << " and " << bytes.size() << " bytes");
    const std::size_t at = parts.size();
    parts.resize(at + b.size() / sizeof(float));
    std::memcpy(parts.data() + at, b.data(), b.size());
  }
  return sum_parts(parts, n);
}

}  // namespace batchpole
