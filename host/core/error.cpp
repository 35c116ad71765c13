#include <sstream>

#include "batchpole/core/common.hpp"

namespace batchpole::detail {

void throw_error(Error::Kind kind, const char* expr, const char* file, int line,
                 const std::string& message) {
  std::ostringstream os;
  os << message;
  if (kind == Error::Kind::kRuntime)
    os << " [" << expr << " failed at " << file << ':' << line << ']';
  throw Error(kind, os.str());
}

}  // namespace batchpole::detail
