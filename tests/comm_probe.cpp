// Run under mpirun (tests/CMakeLists.txt, BENCHMARKS.md): checks the Comm collectives (rank
// order of allgather, broadcast) and that allgather_sum over R ranks equals sum_parts of every
// rank's parts in one process, bit for bit; with --bench FLOATS REPS, rank 0 prints the median
// time of one allgather_sum of FLOATS floats per rank (a data-parallel update's one gradient
// gather), over REPS repetitions after a warm-up.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "batchpole/core/common.hpp"
#include "batchpole/core/random.hpp"
#include "batchpole/run/comm.hpp"
#include "batchpole/run/part_sum.hpp"

namespace {

// Rank r's part: n floats of mixed magnitude, so that the order of additions matters.
std::vector<float> part_of(int r, int64_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto bits = batchpole::philox_draw(7, batchpole::Stream::kInit, static_cast<uint32_t>(i),
                                             static_cast<uint64_t>(r));
    const float u = static_cast<float>(bits[0] >> 8U) / 16777216.0F;
    v[static_cast<std::size_t>(i)] = (u - 0.5F) * (i % 3 == 0 ? 1e6F : 1e-3F);
  }
  return v;
}

// Rank r's name in the allgather check: r + 1 letters (lengths differ between ranks).
std::string tag(int r) {
  return std::string(static_cast<std::size_t>(1 + r), static_cast<char>('a' + r % 26));
}

int check(batchpole::Comm& comm) {
  int bad = 0;
  const std::vector<std::string> names = comm.allgather(tag(comm.rank()));
  for (int r = 0; r < comm.size(); ++r) {
    if (names.at(static_cast<std::size_t>(r)) != tag(r)) ++bad;
  }
  if (comm.broadcast(comm.rank() == 0 ? "root" : "", 0) != "root") ++bad;
  const int64_t n = 4675;  // A2C's parameters at 64 hidden units
  const std::vector<float> got = batchpole::allgather_sum(comm, part_of(comm.rank(), n), n);
  std::vector<float> all;
  for (int r = 0; r < comm.size(); ++r) {
    const std::vector<float> p = part_of(r, n);
    all.insert(all.end(), p.begin(), p.end());
  }
  const std::vector<float> want = batchpole::sum_parts(all, n);
  if (std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) != 0) ++bad;
  comm.barrier();
  if (comm.rank() == 0) {
    std::printf("comm_probe: %d ranks, %s\n", comm.size(), bad == 0 ? "ok" : "FAILED");
  }
  return bad;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto comm = batchpole::make_world_comm();
    int bad = check(*comm);
    if (argc == 4 && std::string(argv[1]) == "--bench") {
      const int64_t n = std::atoll(argv[2]);
      const int reps = std::atoi(argv[3]);
      const std::vector<float> mine = part_of(comm->rank(), n);
      std::vector<double> us;
      for (int i = 0; i < reps + 10; ++i) {
        comm->barrier();
        const auto t0 = std::chrono::steady_clock::now();
        const std::vector<float> sum = batchpole::allgather_sum(*comm, mine, n);
        const auto t1 = std::chrono::steady_clock::now();
        if (i >= 10) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      }
      std::sort(us.begin(), us.end());
      if (comm->rank() == 0) {
        std::printf("allgather_sum: %d ranks x %lld floats: median %.1f us, p10 %.1f, p90 %.1f "
                    "(%d reps)\n",
                    comm->size(), static_cast<long long>(n), us[us.size() / 2],
                    us[us.size() / 10], us[us.size() * 9 / 10], reps);
      }
    }
    return bad == 0 ? 0 : 1;
  } catch (const batchpole::Error& e) {
    std::fprintf(stderr, "comm_probe: %s\n", e.what());
    return 2;
  }
}
