// The one place where the network layer looks at the device: it picks the Blas and NnOps
// implementations for a backend. Everything above is device-agnostic.
#include "nn_impl.hpp"

namespace batchpole {

std::unique_ptr<Blas> make_blas(Backend& backend, const BlasOptions& options) {
  if (backend.kind() == DeviceKind::kCuda) return make_cuda_blas(backend, options);
  return make_cpu_blas();
}

std::unique_ptr<NnOps> make_nn_ops(Backend& backend) {
  if (backend.kind() == DeviceKind::kCuda) return make_cuda_nn_ops(backend);
  return make_cpu_nn_ops();
}

}  // namespace batchpole
