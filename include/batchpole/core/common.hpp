// Shared definitions: the host/device macro and the error type every layer throws.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

// BP_HD marks element functions that both the CUDA kernels and the CPU loops call, so that
// each piece of arithmetic is written once (see DESIGN.md, "the one rule").
#if defined(__CUDACC__)
#define BP_HD __host__ __device__ __forceinline__
#else
#define BP_HD inline
#endif

namespace batchpole {

// Every error inside the library is thrown as batchpole::Error; only main() turns one into an
// exit code. `kind` lets the command line tell usage errors (exit 2) from runtime failures.
class Error : public std::runtime_error {
 public:
  enum class Kind { kInvalidArgument, kOutOfMemory, kRuntime, kUnavailable };
  Error(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  [[nodiscard]] Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

namespace detail {
[[noreturn]] void throw_error(Error::Kind kind, const char* expr, const char* file, int line,
                              const std::string& message);
}  // namespace detail

}  // namespace batchpole

// BP_REQUIRE(cond, kind, message-stream): throws batchpole::Error with the message, the failed
// condition and where it failed. Never exits.
#define BP_REQUIRE(cond, kind, msg)                                                               \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::ostringstream bp_require_os_;                                                          \
      bp_require_os_ << msg; /* NOLINT(bugprone-macro-parentheses) */                             \
      ::batchpole::detail::throw_error(::batchpole::Error::Kind::kind, #cond, __FILE__, __LINE__, \
                                       bp_require_os_.str());                                     \
    }                                                                                             \
  } while (0)

#define BP_CHECK_ARG(cond, msg) BP_REQUIRE(cond, kInvalidArgument, msg)
