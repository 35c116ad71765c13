// The processes of a distributed run (`batchpole train --distributed` under mpirun): their
// number, this one's rank, and the few collectives the run needs. The only door to MPI: the
// trainers and the run loop see this interface, never MPI itself (host/run/comm_mpi.cpp; a
// build without MPI has host/run/comm_none.cpp, which refuses).
//
// Every collective is called by every rank, in the same order. Results come back in rank
// order, so that whatever a run sums or writes from them is summed or written in a fixed
// order, whichever rank finished first.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace batchpole {

class Comm {
 public:
  Comm() = default;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;
  virtual ~Comm() = default;

  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int size() const = 0;
  // Every rank's bytes, index r holding rank r's, on every rank (lengths may differ).
  virtual std::vector<std::string> allgather(const std::string& mine) = 0;
  // Root's bytes on every rank.
  virtual std::string broadcast(const std::string& bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job at once (a rank that failed must not leave the others waiting
  // in a collective forever).
  [[noreturn]] virtual void abort(int exit_code) = 0;
};

// Whether this build has MPI (configured with -DBATCHPOLE_MPI=ON, or AUTO where it was found).
bool comm_built();
// The processes mpirun started, MPI initialised (finalised when the object goes). Throws
// Error(kInvalidArgument) in a build without MPI, or when the process was not started by an
// MPI launcher.
std::unique_ptr<Comm> make_world_comm();

}  // namespace batchpole
