// Comm over MPI (Open MPI from Debian, or any MPI 3): MPI_COMM_WORLD, byte buffers only.
// Errors abort the job (MPI's default handler, MPI_ERRORS_ARE_FATAL), so that a rank that dies
// ends the others instead of leaving them in a collective.
#include <mpi.h>

#include <cstdint>
#include <cstdlib>

#include "batchpole/core/common.hpp"
#include "batchpole/run/comm.hpp"

namespace batchpole {

namespace {

// Whether an MPI launcher started this process: mpirun and srun set these before exec. MPI
// could initialise a lone process as a world of one ("singleton"), but then --distributed
// without mpirun would silently train alone.
bool launched_by_mpi() {
  for (const char* v :
       {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    if (std::getenv(v) != nullptr) return true;
  }
  return false;
}

class MpiComm final : public Comm {
 public:
  MpiComm() {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiComm() override { MPI_Finalize(); }

  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }

  std::vector<std::string> allgather(const std::string& mine) override {
    // The lengths first, then the bytes at their offsets (MPI counts are int: a message over
    // 2 GiB is refused rather than cut).
    BP_REQUIRE(mine.size() < (std::size_t{1} << 31), kRuntime,
               "allgather: " << mine.size() << " bytes");
    const int n = static_cast<int>(mine.size());
    std::vector<int> sizes(static_cast<std::size_t>(size_));
    MPI_Allgather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, MPI_COMM_WORLD);
    std::vector<int> offsets(sizes.size());
    int64_t total = 0;
    for (std::size_t r = 0; r < sizes.size(); ++r) {
      offsets[r] = static_cast<int>(total);
      total += sizes[r];
    }
    BP_REQUIRE(total < (int64_t{1} << 31), kRuntime, "allgather: " << total << " bytes in all");
    std::string all(static_cast<std::size_t>(total), '\0');
    MPI_Allgatherv(mine.data(), n, MPI_BYTE, all.data(), sizes.data(), offsets.data(), MPI_BYTE,
                   MPI_COMM_WORLD);
    std::vector<std::string> out;
    for (std::size_t r = 0; r < sizes.size(); ++r) {
      out.push_back(
          all.substr(static_cast<std::size_t>(offsets[r]), static_cast<std::size_t>(sizes[r])));
    }
    return out;
  }

  std::string broadcast(const std::string& bytes, int root) override {
    int64_t n = static_cast<int64_t>(bytes.size());
    MPI_Bcast(&n, 1, MPI_INT64_T, root, MPI_COMM_WORLD);
    BP_REQUIRE(n < (int64_t{1} << 31), kRuntime, "broadcast: " << n << " bytes");
    std::string out = rank_ == root ? bytes : std::string(static_cast<std::size_t>(n), '\0');
    MPI_Bcast(out.data(), static_cast<int>(n), MPI_BYTE, root, MPI_COMM_WORLD);
    return out;
  }

  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }

  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);  // MPI_Abort does not return; this says so to the compiler
  }

 private:
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

bool comm_built() { return true; }

std::unique_ptr<Comm> make_world_comm() {
  BP_CHECK_ARG(launched_by_mpi(),
               "--distributed runs under an MPI launcher: mpirun -np R batchpole train ... "
               "--distributed (this process was started without one)");
  return std::make_unique<MpiComm>();
}

}  // namespace batchpole
