// A build without MPI: --distributed is refused with what to do instead.
#include "batchpole/core/common.hpp"
#include "batchpole/run/comm.hpp"

namespace batchpole {

bool comm_built() { return false; }

std::unique_ptr<Comm> make_world_comm() {
  BP_CHECK_ARG(false, "--distributed: this build has no MPI (configure with -DBATCHPOLE_MPI=ON)");
  return nullptr;
}

}  // namespace batchpole
