// Stand-ins for the CUDA entry points in a build without CUDA.
#include "cuda_entry.hpp"
#include "rl_entry.hpp"

namespace batchpole {

bool cuda_compiled() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_device_name(int /*index*/) { return ""; }

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& /*options*/) {
  BP_REQUIRE(false, kUnavailable,
             "CUDA was asked for, but this build of batchpole has no CUDA support "
             "(configure with -DBATCHPOLE_CUDA=ON on a machine with nvcc)");
  return nullptr;
}

std::unique_ptr<RlOps> make_cuda_rl_ops(Backend& /*backend*/) {
  BP_REQUIRE(false, kUnavailable, "this build of batchpole has no CUDA support");
  return nullptr;
}

}  // namespace batchpole
