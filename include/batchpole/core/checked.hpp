// Byte counts in arithmetic that cannot wrap. A memory estimate multiplies sizes that a user
// chose (environments x steps x bytes per row); in plain size_t arithmetic a product past 2^64
// wraps around to a small number that then "fits". Here such a count saturates at
// kBytesOverflow instead: no device has that much memory, so the estimate refuses it. (Plain
// comparisons rather than compiler builtins: nvcc compiles this header too, through Buffer.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

namespace batchpole {

inline constexpr std::size_t kBytesOverflow = std::numeric_limits<std::size_t>::max();

// a * b, or kBytesOverflow where the product does not fit (or either factor already saturated).
[[nodiscard]] constexpr std::size_t checked_mul(std::size_t a, std::size_t b) noexcept {
  if (a == kBytesOverflow || b == kBytesOverflow) return kBytesOverflow;  // sticky, even x 0
  return a != 0 && b > (kBytesOverflow - 1) / a ? kBytesOverflow : a * b;
}
template <class... Rest>
[[nodiscard]] constexpr std::size_t checked_mul(std::size_t a, std::size_t b,
                                                Rest... rest) noexcept {
  return checked_mul(checked_mul(a, b), static_cast<std::size_t>(rest)...);
}

// a + b, or kBytesOverflow where the sum does not fit.
[[nodiscard]] constexpr std::size_t checked_add(std::size_t a, std::size_t b) noexcept {
  return b >= kBytesOverflow - a ? kBytesOverflow : a + b;
}
template <class... Rest>
[[nodiscard]] constexpr std::size_t checked_add(std::size_t a, std::size_t b,
                                                Rest... rest) noexcept {
  return checked_add(checked_add(a, b), static_cast<std::size_t>(rest)...);
}

// A count (of elements, rows) as a size: negative counts are a caller's bug, not a size, and
// become kBytesOverflow so that they are refused too.
[[nodiscard]] constexpr std::size_t checked_size(int64_t n) noexcept {
  return n < 0 ? kBytesOverflow : static_cast<std::size_t>(n);
}

// "123 bytes", or "more than 18446744073709551614 bytes" for a saturated count.
inline std::string bytes_text(std::size_t n) {
  return n == kBytesOverflow ? "more than " + std::to_string(kBytesOverflow - 1) + " bytes"
                             : std::to_string(n) + " bytes";
}

}  // namespace batchpole
