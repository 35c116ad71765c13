// Sums in part order, and the parts of other processes (batchpole/rl/data_parallel.hpp).
#include "batchpole/rl/data_parallel.hpp"

#include <cstring>

#include "batchpole/core/common.hpp"

namespace batchpole {

std::vector<float> sum_parts(std::span<const float> parts, int64_t n) {
  BP_CHECK_ARG(n > 0 && !parts.empty() && parts.size() % static_cast<std::size_t>(n) == 0,
               "sum_parts: " << parts.size() << " floats are not parts of " << n);
  const auto un = static_cast<std::size_t>(n);
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

template <class T>
std::vector<T> all_parts(const DataParallel& dp, std::span<const T> mine) {
  if (!dp.gather) return {mine.begin(), mine.end()};
  std::string bytes(mine.size_bytes(), '\0');
  if (!mine.empty()) std::memcpy(bytes.data(), mine.data(), mine.size_bytes());
  std::vector<T> out;
  for (const std::string& b : dp.gather(bytes)) {
    BP_REQUIRE(b.size() == bytes.size(), kRuntime,
               "data-parallel parts disagree: " << b.size() << " bytes against " << bytes.size());
    const std::size_t at = out.size();
    out.resize(at + b.size() / sizeof(T));
    std::memcpy(static_cast<void*>(out.data() + at), b.data(), b.size());
  }
  return out;
}

template std::vector<float> all_parts(const DataParallel&, std::span<const float>);
template std::vector<Moments> all_parts(const DataParallel&, std::span<const Moments>);
template std::vector<EpisodeTally> all_parts(const DataParallel&, std::span<const EpisodeTally>);
template std::vector<PartReport> all_parts(const DataParallel&, std::span<const PartReport>);
template std::vector<int64_t> all_parts(const DataParallel&, std::span<const int64_t>);
template std::vector<double> all_parts(const DataParallel&, std::span<const double>);
template std::vector<int32_t> all_parts(const DataParallel&, std::span<const int32_t>);
template std::vector<uint32_t> all_parts(const DataParallel&, std::span<const uint32_t>);

}  // namespace batchpole
