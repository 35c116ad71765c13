#include "batchpole/rl_ops.hpp"

#include "rl_entry.hpp"

namespace batchpole {

std::unique_ptr<RlOps> make_rl_ops(Backend& backend) {
  return backend.kind() == DeviceKind::kCuda ? make_cuda_rl_ops(backend)
                                             : make_cpu_rl_ops(backend);
}

}  // namespace batchpole
