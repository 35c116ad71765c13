// Stand-ins for the CUDA network entry points in a build without CUDA.
#include "nn_impl.hpp"

namespace batchpole {

namespace {
[[noreturn]] void no_cuda(const char* what) {
  detail::throw_error(Error::Kind::kUnavailable, "cuda", __FILE__, __LINE__,
                      std::string(what) +
                          " on a GPU was asked for, but this build of batchpole has no CUDA "
                          "support (configure with -DBATCHPOLE_CUDA=ON on a machine with nvcc)");
}
}  // namespace

std::unique_ptr<Blas> make_cuda_blas(Backend& /*backend*/, const BlasOptions& /*options*/) {
  no_cuda("cuBLAS");
}

std::unique_ptr<NnOps> make_cuda_nn_ops(Backend& /*backend*/) { no_cuda("The CUDA network ops"); }

}  // namespace batchpole
