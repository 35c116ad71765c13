#include "cpu_device.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <mutex>
#include <string>

#include "batchpole/env/env_ops.hpp"
#include "batchpole/nn/blas.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "batchpole/rl/rl_ops.hpp"

namespace batchpole {

namespace {

constexpr std::size_t kAlignment = 64;

// The CPU's plan. Chunks of 2048 rows: a chunk runs on one core (the shards of a batch run in
// parallel); 256 to 4096 rows all trained at the same speed within the noise on 2 cores, and
// 2048 was the best when OpenBLAS threaded each call. 16 shards keep up to 16 threads busy and
// balance 2 or 3; each costs a copy of the gradients and one sum per update. 32 envs solve
// CartPole-v1 fastest on 2 cores (A2C; BENCHMARKS.md).
DevicePlan cpu_plan() {
  DevicePlan p;
  p.chunk_rows = 2048;
  p.shards = 16;
  p.record_budget = std::size_t{2} << 30U;
  p.train_envs = 32;
  p.bench_env_envs = int64_t{1} << 16;
  p.bench_nn_batch = int64_t{1} << 16;
  p.bench_train_envs = 4096;
  return p;
}

}  // namespace

std::size_t host_available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::size_t value = 0;
  std::string unit;
  while (meminfo >> key >> value >> unit) {
    if (key == "MemAvailable:") return value * 1024;
  }
  return static_cast<std::size_t>(-1);  // unknown: let the allocator decide
}

CpuDevice::CpuDevice(int threads, const DevicePlan* plan)
    : threads_(threads > 0 ? threads : omp_get_max_threads()) {
  install(make_cpu_blas(*this), make_cpu_nn_ops(*this), make_cpu_rl_ops(*this),
          make_cpu_env_ops(*this), plan != nullptr ? *plan : cpu_plan());
}

CpuDevice::~CpuDevice() { uninstall(); }

std::string CpuDevice::description() const {
  return "cpu (" + std::to_string(threads_) + (threads_ == 1 ? " thread)" : " threads)");
}

std::size_t CpuDevice::available_memory() const { return host_available_memory(); }

void* CpuDevice::do_allocate(std::size_t bytes) {
  const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* ptr = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  BP_REQUIRE(ptr != nullptr, kOutOfMemory, "cannot allocate " << bytes << " bytes of host memory");
  return ptr;
}

void CpuDevice::do_deallocate(void* ptr) noexcept { std::free(ptr); }

void CpuDevice::do_copy_to_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}
void CpuDevice::do_copy_from_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}
void CpuDevice::do_copy_on_device(void* dst, const void* src, std::size_t bytes) {
  std::memmove(dst, src, bytes);
}
void CpuDevice::do_copy_rows_on_device(void* dst, std::size_t dst_pitch, const void* src,
                                       std::size_t src_pitch, std::size_t width,
                                       std::size_t rows) {
  for (std::size_t r = 0; r < rows; ++r) {
    std::memmove(static_cast<char*>(dst) + r * dst_pitch,
                 static_cast<const char*>(src) + r * src_pitch, width);
  }
}
void CpuDevice::do_fill_zero(void* ptr, std::size_t bytes) { std::memset(ptr, 0, bytes); }

void CpuDevice::run_tasks(int64_t tasks, const std::function<void(int64_t, int)>& body) {
  if (tasks <= 0) return;
  // Held operations (run_recorded) are held in the order the tasks queue them: one at a time.
  if (tasks == 1 || threads_ == 1 || recording()) {
    for (int64_t t = 0; t < tasks; ++t) body(t, 0);
    return;
  }
  // An exception must not leave an OpenMP region: keep the first, skip the remaining tasks.
  std::exception_ptr error;
  std::mutex error_mutex;
  bool failed = false;
  const int threads = static_cast<int>(std::min<int64_t>(threads_, tasks));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t t = 0; t < tasks; ++t) {
    bool skip = false;
#pragma omp atomic read
    skip = failed;
    if (skip) continue;
    try {
      body(t, omp_get_thread_num());
    } catch (...) {
      const std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
#pragma omp atomic write
      failed = true;
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace batchpole
