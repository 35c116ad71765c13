// The CPU emulation's runtime: errors, device memory, streams, the emulated launch (blocks one
// after another, the threads of a block as fibers that meet at barriers and warp intrinsics)
// and cuBLAS over CBLAS. See README.md beside this file.
#include <cblas.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

// Under AddressSanitizer: fiber switches are announced (else it loses track of which stack is
// which) and the bytes of a device allocation past its requested size are poisoned, so that a
// kernel reading or writing past the end of a buffer is caught.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define BP_EMU_ASAN 1
#endif

namespace cuda_emu {

namespace {

template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

// ---- Errors -------------------------------------------------------------------------------------

thread_local cudaError_t t_last_error = cudaSuccess;
// The last failure's code and its explanation, kept past cudaGetLastError so that the caller's
// cudaGetErrorString(code) can still say what happened.
thread_local cudaError_t t_failure_code = cudaSuccess;
thread_local std::string t_failure_text;

const char* base_error_string(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInitializationError:
      return "initialization error";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidPitchValue:
      return "invalid pitch argument";
    case cudaErrorInvalidDevicePointer:
      return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection:
      return "invalid copy direction for memcpy";
    case cudaErrorInsufficientDriver:
      return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorIllegalAddress:
      return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
  }
  return "unrecognized error code";
}

// Every failing call records its error (as the runtime does) and says why on stderr.
cudaError_t fail(cudaError_t code, const std::string& why) {
  t_last_error = code;
  t_failure_code = code;
  t_failure_text = cat(base_error_string(code), " (CUDA emulation: ", why, ")");
  std::fprintf(stderr, "CUDA emulation: %s\n", why.c_str());
  return code;
}

// ---- Device memory ------------------------------------------------------------------------------

constexpr std::size_t kAllocAlignment = 256;  // cudaMalloc's
constexpr unsigned char kFreshByte = 0xFF;    // NaN floats, -1 integers

struct Allocations {
  std::mutex mutex;
  std::map<uintptr_t, std::size_t> live;  // base -> bytes
};

Allocations& allocations() {
  static Allocations* a = new Allocations;  // never destroyed: frees may run during exit
  return *a;
}

bool inside_allocation(const void* p, std::size_t bytes) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  Allocations& a = allocations();
  std::lock_guard<std::mutex> lock(a.mutex);
  auto it = a.live.upper_bound(addr);
  if (it == a.live.begin()) return false;
  --it;
  // A pointer just past the end is a valid kernel argument; any byte beyond is not.
  return addr - it->first <= it->second && bytes <= it->second - (addr - it->first);
}

// Whether any byte of [p, p + max(bytes, 1)) is device memory.
bool touches_device(const void* p, std::size_t bytes) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  const uintptr_t end = addr + std::max<std::size_t>(bytes, 1);
  Allocations& a = allocations();
  std::lock_guard<std::mutex> lock(a.mutex);
  auto it = a.live.lower_bound(end);  // first allocation starting at or after end
  if (it == a.live.begin()) return false;
  --it;
  return it->first + it->second > addr;
}

std::size_t meminfo(const char* key) {
  std::ifstream in("/proc/meminfo");
  std::string k;
  std::size_t value = 0;
  std::string unit;
  while (in >> k >> value >> unit) {
    if (k == key) return value * 1024;
  }
  return 0;
}

// ---- Devices and streams ------------------------------------------------------------------------

int device_count() {
  static const int count = [] {
    const char* v = std::getenv("BATCHPOLE_EMULATION_DEVICES");
    return v != nullptr && std::string(v) == "0" ? 0 : 1;
  }();
  return count;
}

thread_local int t_device = 0;

struct Streams {
  std::mutex mutex;
  std::set<const CUstream_st*> live;
};

Streams& streams() {
  static Streams* s = new Streams;
  return *s;
}

bool stream_ok(cudaStream_t stream) {
  if (stream == nullptr) return true;  // the legacy default stream
  Streams& s = streams();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.live.count(stream) != 0;
}

cudaError_t check_stream(cudaStream_t stream, const char* call) {
  if (device_count() == 0) return fail(cudaErrorNoDevice, cat(call, ": no emulated device"));
  if (!stream_ok(stream)) {
    return fail(cudaErrorInvalidResourceHandle,
                cat(call, ": stream ", static_cast<const void*>(stream), " is not a live stream"));
  }
  return cudaSuccess;
}

// Streams that are capturing (cudaStreamBeginCapture) and what they recorded.
struct CaptureState {
  std::vector<std::function<cudaError_t()>> work;
  cudaError_t error = cudaSuccess;  // what invalidated the capture
};
struct Captures {
  std::mutex mutex;
  std::map<const CUstream_st*, CaptureState> active;
};
Captures& captures() {
  static Captures* c = new Captures;
  return *c;
}
// Captures begun on this OS thread and not ended: calls that would wait on the legacy stream or
// allocate fail meanwhile (cudaStreamCaptureModeThreadLocal).
thread_local int t_captures = 0;

// Fails a call that a capture cannot hold, and invalidates the capture of `stream` if any.
cudaError_t fail_capture(cudaStream_t stream, cudaError_t code, const std::string& why) {
  if (stream != nullptr) {
    Captures& c = captures();
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.active.find(stream);
    if (it != c.active.end() && it->second.error == cudaSuccess) it->second.error = code;
  }
  return fail(code, why);
}

std::atomic<uint64_t> g_launches{0};
std::atomic<uint64_t> g_blocks{0};
std::atomic<uint64_t> g_threads{0};
std::atomic<uint64_t> g_switches{0};

}  // namespace

Stats stats() {
  Stats s;
  s.launches = g_launches.load();
  s.blocks = g_blocks.load();
  s.threads = g_threads.load();
  s.fiber_switches = g_switches.load();
  return s;
}

bool is_device_range(const void* p, std::size_t bytes) { return inside_allocation(p, bytes); }

// ---- The emulated launch ----------------------------------------------------------------------

namespace detail {

namespace {

constexpr std::size_t kStackBytes = std::size_t{256} * 1024;
constexpr unsigned kWarp = 32;
constexpr unsigned kMaxThreadsPerBlock = 1024;

enum class FiberState : uint8_t { kIdle, kRunning, kParked };

// One stack that runs emulated threads: several in a row while none of them waits, one for as
// long as it waits at a barrier. Fibers are pooled per launching OS thread and reused.
struct Fiber {
  ucontext_t context{};
  void* mapping = nullptr;
  std::size_t mapping_bytes = 0;
  FiberState state = FiberState::kIdle;
  unsigned thread = 0;  // linear index in the block of the thread it runs
  uint3 index{};
  uint32_t result = 0;  // a warp intrinsic's result for its thread
  void* asan_fake_stack = nullptr;
};

struct Warp {
  unsigned arrived = 0;  // lanes waiting in the intrinsic now
  unsigned mask = 0;
  WarpOp op = WarpOp::kSync;
  int width = 32;
  uint32_t value[kWarp] = {};
  uint32_t arg[kWarp] = {};
  Fiber* waiting[kWarp] = {};
};

void fiber_entry();

class Scheduler {
 public:
  Scheduler() = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  ~Scheduler() {
    for (Fiber* f : fibers_) {
      munmap(f->mapping, f->mapping_bytes);
      delete f;
    }
  }

  friend void fiber_entry();

  cudaError_t run(dim3 grid, dim3 block, void (*body)(void*), void* frame, const char* kernel);
  void fiber_loop();
  void syncthreads();
  uint32_t warp_exchange(unsigned mask, WarpOp op, uint32_t value, uint32_t arg, int width);

 private:
  Fiber* running(const char* what) {
    if (current_ == nullptr || current_->state != FiberState::kRunning) {
      std::fprintf(stderr, "CUDA emulation: %s called outside a kernel\n", what);
      std::abort();
    }
    return current_;
  }
  Fiber* acquire();
  void reset(Fiber* f);
  void resume(Fiber* f);
  void park(Fiber* f);
  void to_home(Fiber* f);
  void begin_thread(Fiber* f, unsigned t);
  bool next_block();
  void thread_exited();
  bool barrier_complete();
  void release_barrier(Fiber* keep);
  void error(const std::string& why);
  [[noreturn]] void halt(Fiber* f);
  std::string waiting_summary() const;

  ucontext_t home_{};
  // The launching thread's stack, as AddressSanitizer reports it.
  const void* home_bottom_ = nullptr;
  std::size_t home_size_ = 0;
  void* home_fake_stack_ = nullptr;
  Fiber* current_ = nullptr;
  std::vector<Fiber*> fibers_;  // all of them, for cleanup
  std::vector<Fiber*> pool_;    // idle ones
  std::deque<Fiber*> ready_;    // released from a barrier, to resume

  // The launch in progress.
  bool active_ = false;
  void (*body_)(void*) = nullptr;
  void* frame_ = nullptr;
  const char* kernel_ = "";
  dim3 grid_;
  dim3 block_dim_;
  uint64_t blocks_total_ = 0;
  uint64_t block_linear_ = 0;  // the block running
  unsigned threads_ = 0;       // per block
  unsigned started_ = 0;       // threads of this block started
  unsigned exited_ = 0;        // and finished
  std::vector<Fiber*> at_barrier_;
  std::vector<Warp> warps_;
  std::string error_;
  uint64_t switches_ = 0;
  uint64_t launches_ = 0;
  // Threads start last to first in every other block: a read of shared memory that a missing
  // barrier leaves unordered then runs before the write in one block or the other.
  bool reverse_ = false;
};

thread_local Scheduler t_scheduler;

void fiber_entry() {
#ifdef BP_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &t_scheduler.home_bottom_, &t_scheduler.home_size_);
#endif
  t_scheduler.fiber_loop();
}

Fiber* Scheduler::acquire() {
  if (!pool_.empty()) {
    Fiber* f = pool_.back();
    pool_.pop_back();
    return f;
  }
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  auto* f = new Fiber;
  f->mapping_bytes = kStackBytes + page;
  f->mapping = mmap(nullptr, f->mapping_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (f->mapping == MAP_FAILED) {
    std::fprintf(stderr, "CUDA emulation: cannot map a fiber stack\n");
    std::abort();
  }
  // A guard page below the stack: an overflow faults instead of corrupting the next stack.
  mprotect(f->mapping, page, PROT_NONE);
  fibers_.push_back(f);
  reset(f);
  return f;
}

void Scheduler::reset(Fiber* f) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
#ifdef BP_EMU_ASAN
  // Frames abandoned after an error leave their redzones behind.
  ASAN_UNPOISON_MEMORY_REGION(static_cast<char*>(f->mapping) + page, kStackBytes);
#endif
  getcontext(&f->context);
  f->context.uc_stack.ss_sp = static_cast<char*>(f->mapping) + page;
  f->context.uc_stack.ss_size = kStackBytes;
  f->context.uc_link = nullptr;
  makecontext(&f->context, fiber_entry, 0);
  f->state = FiberState::kIdle;
}

void Scheduler::resume(Fiber* f) {
  current_ = f;
  f->state = FiberState::kRunning;
  ++switches_;
#ifdef BP_EMU_ASAN
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  __sanitizer_start_switch_fiber(&home_fake_stack_, static_cast<char*>(f->mapping) + page,
                                 kStackBytes);
#endif
  swapcontext(&home_, &f->context);
#ifdef BP_EMU_ASAN
  __sanitizer_finish_switch_fiber(home_fake_stack_, nullptr, nullptr);
#endif
  current_ = nullptr;
}

void Scheduler::to_home(Fiber* f) {
#ifdef BP_EMU_ASAN
  __sanitizer_start_switch_fiber(&f->asan_fake_stack, home_bottom_, home_size_);
#endif
  swapcontext(&f->context, &home_);
#ifdef BP_EMU_ASAN
  __sanitizer_finish_switch_fiber(f->asan_fake_stack, &home_bottom_, &home_size_);
#endif
}

// Back to the scheduler until released; the built-in index is this thread's again after.
void Scheduler::park(Fiber* f) {
  f->state = FiberState::kParked;
  to_home(f);
  threadIdx = f->index;
}

void Scheduler::begin_thread(Fiber* f, unsigned t) {
  f->thread = t;
  f->index = {t % block_dim_.x, (t / block_dim_.x) % block_dim_.y,
              t / (block_dim_.x * block_dim_.y)};
  threadIdx = f->index;
}

bool Scheduler::next_block() {
  if (block_linear_ + 1 >= blocks_total_) return false;
  ++block_linear_;
  reverse_ = !reverse_;
  started_ = 0;
  exited_ = 0;
  const uint64_t xy = static_cast<uint64_t>(grid_.x) * grid_.y;
  blockIdx = {static_cast<unsigned>(block_linear_ % grid_.x),
              static_cast<unsigned>((block_linear_ / grid_.x) % grid_.y),
              static_cast<unsigned>(block_linear_ / xy)};
  return true;
}

// Runs threads of the current block one after another, and of the following blocks while no
// thread of this block waits anywhere: a kernel without barriers runs its whole grid in one
// fiber, with no context switch per thread.
void Scheduler::fiber_loop() {
  for (;;) {
    Fiber* me = current_;
    for (;;) {
      if (!error_.empty()) break;
      if (started_ == threads_) {
        if (exited_ != threads_ || !ready_.empty() || !next_block()) break;
      }
      const unsigned t = started_++;
      begin_thread(me, reverse_ ? threads_ - 1 - t : t);
      body_(frame_);
      thread_exited();
    }
    me->state = FiberState::kIdle;
    to_home(me);
  }
}

void Scheduler::thread_exited() {
  ++exited_;
  if (!at_barrier_.empty() && barrier_complete()) release_barrier(nullptr);
}

bool Scheduler::barrier_complete() {
  if (started_ != threads_ || at_barrier_.size() + exited_ != threads_) return false;
  if (exited_ > 0) {
    error(cat(exited_, " of the block's ", threads_,
              " threads exited while the others wait at __syncthreads() (a barrier in divergent "
              "code, undefined in CUDA)"));
  }
  return true;
}

void Scheduler::release_barrier(Fiber* keep) {
  for (Fiber* f : at_barrier_) {
    if (f != keep) ready_.push_back(f);
  }
  at_barrier_.clear();
}

void Scheduler::error(const std::string& why) {
  if (error_.empty()) {
    error_ =
        cat(why, " in block (", blockIdx.x, ",", blockIdx.y, ",", blockIdx.z, ") of ", kernel_);
  }
}

// After an error the thread cannot go on: it waits for ever and its fiber is reset.
void Scheduler::halt(Fiber* f) {
  park(f);
  std::abort();  // never resumed
}

void Scheduler::syncthreads() {
  Fiber* me = running("__syncthreads()");
  at_barrier_.push_back(me);
  if (barrier_complete()) {
    if (!error_.empty()) halt(me);
    release_barrier(me);  // the last to arrive goes on at once
    return;
  }
  park(me);
}

std::string Scheduler::waiting_summary() const {
  std::string s = cat(at_barrier_.size(), " at __syncthreads()");
  for (std::size_t w = 0; w < warps_.size(); ++w) {
    if (warps_[w].arrived != 0) {
      s += cat(", warp ", w, " lanes 0x", std::hex, warps_[w].arrived, " of mask 0x",
               warps_[w].mask, std::dec);
    }
  }
  return s + cat(", ", exited_, " exited");
}

uint32_t Scheduler::warp_exchange(unsigned mask, WarpOp op, uint32_t value, uint32_t arg,
                                  int width) {
  Fiber* me = running("a warp intrinsic");
  const unsigned lane = me->thread % kWarp;
  Warp& w = warps_[me->thread / kWarp];
  const unsigned first = me->thread - lane;
  const unsigned lanes = std::min(kWarp, threads_ - first);
  const unsigned exists = lanes == kWarp ? 0xFFFFFFFFU : (1U << lanes) - 1U;
  if (((mask >> lane) & 1U) == 0) {
    error(cat("lane ", lane, " calls a warp intrinsic with mask 0x", std::hex, mask,
              " that does not name it"));
  } else if ((mask & ~exists) != 0) {
    error(cat("warp intrinsic mask 0x", std::hex, mask, " names lanes beyond the block's ",
              std::dec, threads_, " threads"));
  } else if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
    error(cat("warp intrinsic width ", width, " is not a power of two up to 32"));
  } else if (w.arrived != 0 && (w.mask != mask || w.op != op || w.width != width)) {
    error(cat("lanes of a warp meet in different warp intrinsics or masks (0x", std::hex, w.mask,
              " and 0x", mask, ")"));
  }
  if (!error_.empty()) halt(me);
  if (w.arrived == 0) {
    w.mask = mask;
    w.op = op;
    w.width = width;
  }
  w.value[lane] = value;
  w.arg[lane] = arg;
  w.waiting[lane] = me;
  w.arrived |= 1U << lane;
  if (w.arrived != w.mask) {
    park(me);
    return me->result;
  }
  // The last lane to arrive works out every lane's result and goes on at once.
  uint32_t all = 0;
  switch (op) {
    case WarpOp::kReduceAddU:
    case WarpOp::kReduceAddI:
      for (unsigned l = 0; l < kWarp; ++l) all += ((mask >> l) & 1U) != 0 ? w.value[l] : 0U;
      break;
    case WarpOp::kReduceMinU:
    case WarpOp::kReduceMaxU:
    case WarpOp::kReduceMinI:
    case WarpOp::kReduceMaxI: {
      const bool is_min = op == WarpOp::kReduceMinU || op == WarpOp::kReduceMinI;
      const bool is_signed = op == WarpOp::kReduceMinI || op == WarpOp::kReduceMaxI;
      // Signed order is unsigned order with the sign bit flipped.
      const uint32_t flip = is_signed ? 0x80000000U : 0U;
      bool first_lane = true;
      for (unsigned l = 0; l < kWarp; ++l) {
        if (((mask >> l) & 1U) == 0) continue;
        const uint32_t v = w.value[l] ^ flip;
        const uint32_t best = all ^ flip;
        if (first_lane || (is_min ? v < best : v > best)) all = w.value[l];
        first_lane = false;
      }
      break;
    }
    case WarpOp::kBallot:
      for (unsigned l = 0; l < kWarp; ++l) all |= w.value[l] != 0 ? ((mask >> l) & 1U) << l : 0U;
      break;
    case WarpOp::kSync:
    case WarpOp::kShfl:
    case WarpOp::kShflDown:
      break;
  }
  const auto uw = static_cast<unsigned>(width);
  uint32_t mine = all;
  for (unsigned l = 0; l < kWarp; ++l) {
    if (((mask >> l) & 1U) == 0) continue;
    uint32_t r = all;
    const unsigned base = l / uw * uw;
    if (op == WarpOp::kShfl || op == WarpOp::kShflDown) {
      const unsigned src = op == WarpOp::kShfl ? base + w.arg[l] % uw : l + w.arg[l];
      // A source outside the segment (shfl_down) or not taking part gives the lane its own.
      const bool ok = src < base + uw && src < kWarp && ((mask >> src) & 1U) != 0;
      r = ok ? w.value[src] : w.value[l];
    }
    if (w.waiting[l] == me) {
      mine = r;
    } else {
      w.waiting[l]->result = r;
      ready_.push_back(w.waiting[l]);
    }
  }
  w.arrived = 0;
  return mine;
}

cudaError_t Scheduler::run(dim3 grid, dim3 block, void (*body)(void*), void* frame,
                           const char* kernel) {
  if (active_) {
    std::fprintf(stderr, "CUDA emulation: a kernel launched from a kernel (%s)\n", kernel);
    std::abort();
  }
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7FFFFFFFU || grid.y > 65535 ||
      grid.z > 65535 || threads == 0 || threads > kMaxThreadsPerBlock || block.x > 1024 ||
      block.y > 1024 || block.z > 64) {
    return fail(cudaErrorInvalidConfiguration,
                cat("launch of ", kernel, " with grid (", grid.x, ",", grid.y, ",", grid.z,
                    ") and block (", block.x, ",", block.y, ",", block.z, ")"));
  }
  active_ = true;
  body_ = body;
  frame_ = frame;
  kernel_ = kernel;
  grid_ = grid;
  block_dim_ = block;
  gridDim = grid;
  blockDim = block;
  blocks_total_ = static_cast<uint64_t>(grid.x) * grid.y * grid.z;
  threads_ = static_cast<unsigned>(threads);
  warps_.assign((threads_ + kWarp - 1) / kWarp, Warp{});
  error_.clear();
  at_barrier_.clear();
  ready_.clear();
  switches_ = 0;
  reverse_ = (launches_++ & 1U) != 0;
  // Block 0; next_block() moves on.
  block_linear_ = 0;
  blockIdx = {0, 0, 0};
  started_ = 0;
  exited_ = 0;
  for (;;) {
    if (!error_.empty()) break;
    Fiber* f = nullptr;
    if (!ready_.empty()) {
      f = ready_.front();
      ready_.pop_front();
    } else if (started_ < threads_) {
      f = acquire();
    } else if (exited_ == threads_) {
      if (!next_block()) break;
      continue;
    } else {
      error(cat("deadlock: every thread waits (", waiting_summary(), ")"));
      break;
    }
    resume(f);
    if (f->state == FiberState::kIdle) pool_.push_back(f);
  }
  if (!error_.empty()) {
    // Threads stopped mid-kernel are abandoned: their fibers start afresh.
    pool_.clear();
    for (Fiber* f : fibers_) {
      if (f->state != FiberState::kIdle) reset(f);
      pool_.push_back(f);
    }
    ready_.clear();
    at_barrier_.clear();
    for (Warp& w : warps_) w.arrived = 0;
  }
  active_ = false;
  threadIdx = {0, 0, 0};
  g_switches += switches_;
  if (!error_.empty()) return fail(cudaErrorLaunchFailure, error_);
  g_launches += 1;
  g_blocks += blocks_total_;
  g_threads += blocks_total_ * threads_;
  return cudaSuccess;
}

}  // namespace

void syncthreads() { t_scheduler.syncthreads(); }

uint32_t warp_exchange(unsigned mask, WarpOp op, uint32_t value, uint32_t arg, int width) {
  return t_scheduler.warp_exchange(mask, op, value, arg, width);
}

bool capturing(cudaStream_t stream) {
  if (stream == nullptr) return false;
  Captures& c = captures();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.active.count(stream) != 0;
}

cudaError_t capture(cudaStream_t stream, std::function<cudaError_t()> work) {
  Captures& c = captures();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.active.find(stream);
  if (it == c.active.end()) return work();
  it->second.work.push_back(std::move(work));
  return cudaSuccess;
}

cudaError_t run_grid(dim3 grid, dim3 block, cudaStream_t stream, void (*body)(void*), void* frame,
                     const char* kernel) {
  if (const cudaError_t e = check_stream(stream, "kernel launch"); e != cudaSuccess) return e;
  if (stream == nullptr && t_captures > 0) {
    return fail(cudaErrorStreamCaptureImplicit,
                cat(kernel, ": a launch on the legacy stream while this thread captures"));
  }
  return t_scheduler.run(grid, block, body, frame, kernel);
}

cudaError_t bad_kernel_pointer(const char* kernel, std::size_t index, const void* p) {
  // On the GPU the kernel would fault at its first access through it.
  return fail(cudaErrorIllegalAddress,
              cat("argument ", index, " of ", kernel, " is ", p, ", which is not device memory"));
}

}  // namespace detail

}  // namespace cuda_emu

// ---- The runtime API ---------------------------------------------------------------------------

using cuda_emu::cat;
using cuda_emu::fail;

cudaError_t cudaGetLastError() {
  const cudaError_t e = cuda_emu::t_last_error;
  cuda_emu::t_last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return cuda_emu::t_last_error; }

const char* cudaGetErrorString(cudaError_t error) {
  if (error != cudaSuccess && error == cuda_emu::t_failure_code) {
    return cuda_emu::t_failure_text.c_str();
  }
  return cuda_emu::base_error_string(error);
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError:
      return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidPitchValue:
      return "cudaErrorInvalidPitchValue";
    case cudaErrorInvalidDevicePointer:
      return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection:
      return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInsufficientDriver:
      return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress:
      return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported:
      return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated:
      return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit:
      return "cudaErrorStreamCaptureImplicit";
  }
  return "cudaErrorUnknown";
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return fail(cudaErrorInvalidValue, "cudaGetDeviceCount: null count");
  const int n = cuda_emu::device_count();
  *count = n;
  // The real runtime reports the absence of a device as an error.
  if (n == 0) return fail(cudaErrorNoDevice, "BATCHPOLE_EMULATION_DEVICES=0");
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return fail(cudaErrorInvalidValue, "cudaGetDeviceProperties: null prop");
  if (device < 0 || device >= cuda_emu::device_count()) {
    return fail(cudaErrorInvalidDevice, cat("cudaGetDeviceProperties: device ", device));
  }
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof(prop->name), "emulated CUDA device (CPU)");
  prop->totalGlobalMem = cuda_emu::meminfo("MemTotal:");
  prop->sharedMemPerBlock = 48 * 1024;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7FFFFFFF;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= cuda_emu::device_count()) {
    return fail(cudaErrorInvalidDevice, cat("cudaSetDevice(", device, ")"));
  }
  cuda_emu::t_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return fail(cudaErrorInvalidValue, "cudaGetDevice: null device");
  *device = cuda_emu::t_device;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes) {
  if (free_bytes == nullptr || total_bytes == nullptr) {
    return fail(cudaErrorInvalidValue, "cudaMemGetInfo: null pointer");
  }
  *free_bytes = cuda_emu::meminfo("MemAvailable:");
  *total_bytes = cuda_emu::meminfo("MemTotal:");
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, std::size_t bytes) {
  if (ptr == nullptr) return fail(cudaErrorInvalidValue, "cudaMalloc: null pointer");
  if (cuda_emu::t_captures > 0) {
    return fail(cudaErrorStreamCaptureUnsupported, "cudaMalloc while this thread captures");
  }
  *ptr = nullptr;
  if (cuda_emu::device_count() == 0) return fail(cudaErrorNoDevice, "cudaMalloc: no device");
  if (bytes == 0) return cudaSuccess;
  // Refused up front rather than left to the OOM killer when the fill touches it.
  const std::size_t avail = cuda_emu::meminfo("MemAvailable:");
  const std::size_t rounded = (bytes + cuda_emu::kAllocAlignment - 1) / cuda_emu::kAllocAlignment *
                              cuda_emu::kAllocAlignment;
  if (rounded < bytes || (avail != 0 && rounded > avail)) {
    return fail(cudaErrorMemoryAllocation, cat("cudaMalloc of ", bytes, " bytes"));
  }
  void* p = std::aligned_alloc(cuda_emu::kAllocAlignment, rounded);
  if (p == nullptr) return fail(cudaErrorMemoryAllocation, cat("cudaMalloc of ", bytes, " bytes"));
  std::memset(p, cuda_emu::kFreshByte, rounded);
#ifdef BP_EMU_ASAN
  ASAN_POISON_MEMORY_REGION(static_cast<char*>(p) + bytes, rounded - bytes);
#endif
  {
    cuda_emu::Allocations& a = cuda_emu::allocations();
    std::lock_guard<std::mutex> lock(a.mutex);
    a.live.emplace(reinterpret_cast<uintptr_t>(p), bytes);
  }
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  if (cuda_emu::t_captures > 0) {
    return fail(cudaErrorStreamCaptureUnsupported, "cudaFree while this thread captures");
  }
  {
    cuda_emu::Allocations& a = cuda_emu::allocations();
    std::lock_guard<std::mutex> lock(a.mutex);
    auto it = a.live.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == a.live.end()) {
      return fail(cudaErrorInvalidValue,
                  cat("cudaFree(", ptr, "): not the start of a live allocation"));
    }
#ifdef BP_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(ptr, (it->second + cuda_emu::kAllocAlignment - 1) /
                                         cuda_emu::kAllocAlignment * cuda_emu::kAllocAlignment);
#endif
    a.live.erase(it);
  }
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

struct CUstream_st {
  unsigned int flags;
};

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  if (stream == nullptr) return fail(cudaErrorInvalidValue, "cudaStreamCreate: null stream");
  if (cuda_emu::device_count() == 0) return fail(cudaErrorNoDevice, "cudaStreamCreate: no device");
  if ((flags & ~static_cast<unsigned>(cudaStreamNonBlocking)) != 0) {
    return fail(cudaErrorInvalidValue, cat("cudaStreamCreateWithFlags: flags ", flags));
  }
  auto* s = new CUstream_st{flags};
  cuda_emu::Streams& all = cuda_emu::streams();
  std::lock_guard<std::mutex> lock(all.mutex);
  all.live.insert(s);
  *stream = s;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  cuda_emu::Streams& all = cuda_emu::streams();
  std::lock_guard<std::mutex> lock(all.mutex);
  if (stream == nullptr || all.live.erase(stream) == 0) {
    return fail(
        cudaErrorInvalidResourceHandle,
        cat("cudaStreamDestroy(", static_cast<const void*>(stream), "): not a live stream"));
  }
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (cuda_emu::detail::capturing(stream)) {
    return cuda_emu::fail_capture(stream, cudaErrorStreamCaptureUnsupported,
                                  "cudaStreamSynchronize of a capturing stream");
  }
  return cuda_emu::check_stream(stream, "cudaStreamSynchronize");
}

// ---- Graphs ------------------------------------------------------------------------------------

struct CUgraph_st {
  std::vector<std::function<cudaError_t()>> work;
};
struct CUgraphExec_st {
  std::vector<std::function<cudaError_t()>> work;
};

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (const cudaError_t e = cuda_emu::check_stream(stream, "cudaStreamBeginCapture");
      e != cudaSuccess) {
    return e;
  }
  if (stream == nullptr) {
    return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture: the legacy stream");
  }
  if (mode != cudaStreamCaptureModeThreadLocal && mode != cudaStreamCaptureModeGlobal &&
      mode != cudaStreamCaptureModeRelaxed) {
    return fail(cudaErrorInvalidValue,
                cat("cudaStreamBeginCapture: mode ", static_cast<int>(mode)));
  }
  cuda_emu::Captures& c = cuda_emu::captures();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (!c.active.emplace(stream, cuda_emu::CaptureState{}).second) {
    return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture: already capturing");
  }
  ++cuda_emu::t_captures;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (graph == nullptr) return fail(cudaErrorInvalidValue, "cudaStreamEndCapture: null graph");
  *graph = nullptr;
  cuda_emu::CaptureState state;
  {
    cuda_emu::Captures& c = cuda_emu::captures();
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.active.find(stream);
    if (it == c.active.end()) {
      return fail(cudaErrorInvalidValue, "cudaStreamEndCapture: the stream is not capturing");
    }
    state = std::move(it->second);
    c.active.erase(it);
  }
  --cuda_emu::t_captures;
  if (state.error != cudaSuccess) {
    return fail(cudaErrorStreamCaptureInvalidated,
                cat("cudaStreamEndCapture: the capture was invalidated by ",
                    cudaGetErrorName(state.error)));
  }
  *graph = new CUgraph_st{std::move(state.work)};
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph,
                                 unsigned long long flags) {
  if (exec == nullptr || graph == nullptr || flags != 0) {
    return fail(cudaErrorInvalidValue, "cudaGraphInstantiate: null argument or flags");
  }
  *exec = new CUgraphExec_st{graph->work};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (const cudaError_t e = cuda_emu::check_stream(stream, "cudaGraphLaunch"); e != cudaSuccess) {
    return e;
  }
  if (exec == nullptr) return fail(cudaErrorInvalidValue, "cudaGraphLaunch: null graph");
  if (cuda_emu::detail::capturing(stream)) {
    return cuda_emu::fail_capture(stream, cudaErrorStreamCaptureUnsupported,
                                  "cudaGraphLaunch into a capture (not emulated)");
  }
  for (const auto& work : exec->work) {
    if (const cudaError_t e = work(); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

namespace {

const char* kind_name(cudaMemcpyKind kind) {
  switch (kind) {
    case cudaMemcpyHostToHost:
      return "cudaMemcpyHostToHost";
    case cudaMemcpyHostToDevice:
      return "cudaMemcpyHostToDevice";
    case cudaMemcpyDeviceToHost:
      return "cudaMemcpyDeviceToHost";
    case cudaMemcpyDeviceToDevice:
      return "cudaMemcpyDeviceToDevice";
    case cudaMemcpyDefault:
      return "cudaMemcpyDefault";
  }
  return "an invalid kind";
}

// A side of a copy that is said to be device memory must lie inside one allocation, and a side
// said to be host memory must not touch any.
cudaError_t check_side(const void* p, std::size_t bytes, bool device, const char* side,
                       cudaMemcpyKind kind, const char* call) {
  if (device && !cuda_emu::inside_allocation(p, bytes)) {
    return fail(cudaErrorInvalidValue,
                cat(call, " (", kind_name(kind), ") of ", bytes, " bytes: the ", side, " ", p,
                    " is not device memory for all of them"));
  }
  if (!device && cuda_emu::touches_device(p, bytes)) {
    return fail(cudaErrorInvalidValue,
                cat(call, " (", kind_name(kind), ") of ", bytes, " bytes: the ", side, " ", p,
                    " is device memory, the kind says host"));
  }
  return cudaSuccess;
}

cudaError_t emulated_copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                          cudaStream_t stream, const char* call) {
  if (const cudaError_t e = cuda_emu::check_stream(stream, call); e != cudaSuccess) return e;
  if (stream == nullptr && cuda_emu::t_captures > 0) {
    return fail(cudaErrorStreamCaptureImplicit,
                cat(call, ": a copy on the legacy stream while this thread captures"));
  }
  if (bytes == 0) return cudaSuccess;
  if (cuda_emu::detail::capturing(stream)) {
    // Only copies between device allocations: one that touches host memory would read or write
    // it at each launch of the graph (batchpole stages host bytes on the device instead).
    if (kind != cudaMemcpyDeviceToDevice || !cuda_emu::inside_allocation(dst, bytes) ||
        !cuda_emu::inside_allocation(src, bytes)) {
      return cuda_emu::fail_capture(
          stream, cudaErrorStreamCaptureUnsupported,
          cat(call, " (", kind_name(kind), ") of ", bytes, " bytes: host memory in a capture"));
    }
    return cuda_emu::detail::capture(stream, [dst, src, bytes, kind, call] {
      return emulated_copy(dst, src, bytes, kind, nullptr, call);
    });
  }
  bool dst_device = false;
  bool src_device = false;
  switch (kind) {
    case cudaMemcpyHostToHost:
      break;
    case cudaMemcpyHostToDevice:
      dst_device = true;
      break;
    case cudaMemcpyDeviceToHost:
      src_device = true;
      break;
    case cudaMemcpyDeviceToDevice:
      dst_device = src_device = true;
      break;
    case cudaMemcpyDefault:
      dst_device = cuda_emu::touches_device(dst, bytes);
      src_device = cuda_emu::touches_device(src, bytes);
      break;
    default:
      return fail(cudaErrorInvalidMemcpyDirection, cat(call, ": kind ", static_cast<int>(kind)));
  }
  if (const cudaError_t e = check_side(dst, bytes, dst_device, "destination", kind, call);
      e != cudaSuccess) {
    return e;
  }
  if (const cudaError_t e = check_side(src, bytes, src_device, "source", kind, call);
      e != cudaSuccess) {
    return e;
  }
  const auto d = reinterpret_cast<uintptr_t>(dst);
  const auto s = reinterpret_cast<uintptr_t>(src);
  if (d < s + bytes && s < d + bytes) {
    return fail(cudaErrorInvalidValue, cat(call, ": source and destination overlap"));
  }
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}

}  // namespace

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  return emulated_copy(dst, src, bytes, kind, stream, "cudaMemcpyAsync");
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  return emulated_copy(dst, src, bytes, kind, nullptr, "cudaMemcpy");
}

cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t bytes, cudaStream_t stream) {
  if (const cudaError_t e = cuda_emu::check_stream(stream, "cudaMemsetAsync"); e != cudaSuccess) {
    return e;
  }
  if (stream == nullptr && cuda_emu::t_captures > 0) {
    return fail(cudaErrorStreamCaptureImplicit,
                "cudaMemset on the legacy stream while this thread captures");
  }
  if (bytes == 0) return cudaSuccess;
  if (!cuda_emu::inside_allocation(ptr, bytes)) {
    return fail(cudaErrorInvalidValue, cat("cudaMemsetAsync of ", bytes, " bytes at ", ptr,
                                           ": not device memory for all of them"));
  }
  if (cuda_emu::detail::capturing(stream)) {
    return cuda_emu::detail::capture(stream, [ptr, value, bytes] {
      std::memset(ptr, value, bytes);
      return cudaSuccess;
    });
  }
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void* dst, std::size_t dpitch, const void* src, std::size_t spitch,
                              std::size_t width, std::size_t height, cudaMemcpyKind kind,
                              cudaStream_t stream) {
  if (width > dpitch || width > spitch) {
    return fail(cudaErrorInvalidPitchValue, cat("cudaMemcpy2DAsync: width ", width,
                                                " exceeds a pitch (", dpitch, ", ", spitch, ")"));
  }
  // Row by row, each row checked as a copy of its own.
  for (std::size_t r = 0; r < height; ++r) {
    const cudaError_t e = emulated_copy(static_cast<char*>(dst) + r * dpitch,
                                        static_cast<const char*>(src) + r * spitch, width, kind,
                                        stream, "cudaMemcpy2DAsync");
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t cudaMemset(void* ptr, int value, std::size_t bytes) {
  return cudaMemsetAsync(ptr, value, bytes, nullptr);
}

// ---- cuBLAS over CBLAS ------------------------------------------------------------------------

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
};

namespace {

thread_local cublasStatus_t t_blas_failure = CUBLAS_STATUS_SUCCESS;
thread_local std::string t_blas_failure_text;

const char* base_status_string(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "the functionality requested is not supported";
  }
  return "unknown error";
}

cublasStatus_t blas_fail(cublasStatus_t status, const std::string& why) {
  t_blas_failure = status;
  t_blas_failure_text = cat(base_status_string(status), " (CUDA emulation: ", why, ")");
  std::fprintf(stderr, "CUDA emulation: %s\n", why.c_str());
  return status;
}

struct Handles {
  std::mutex mutex;
  std::set<const cublasContext*> live;
};

Handles& handles() {
  static Handles* h = new Handles;
  return *h;
}

cublasStatus_t check_handle(cublasHandle_t h, const char* call) {
  {
    Handles& all = handles();
    std::lock_guard<std::mutex> lock(all.mutex);
    if (h == nullptr || all.live.count(h) == 0) {
      return blas_fail(CUBLAS_STATUS_NOT_INITIALIZED, cat(call, ": not a live handle"));
    }
  }
  if (!cuda_emu::stream_ok(h->stream)) {
    return blas_fail(CUBLAS_STATUS_EXECUTION_FAILED,
                     cat(call, ": the handle's stream was destroyed"));
  }
  return CUBLAS_STATUS_SUCCESS;
}

// A scalar argument (alpha, beta) or result: host or device memory as the pointer mode says.
cublasStatus_t check_scalar(cublasHandle_t h, const void* p, const char* name, const char* call) {
  if (p == nullptr)
    return blas_fail(CUBLAS_STATUS_INVALID_VALUE, cat(call, ": ", name, " is null"));
  const bool device = h->pointer_mode == CUBLAS_POINTER_MODE_DEVICE;
  if (device && !cuda_emu::inside_allocation(p, sizeof(float))) {
    return blas_fail(CUBLAS_STATUS_EXECUTION_FAILED,
                     cat(call, ": ", name, " is host memory but the pointer mode is device"));
  }
  if (!device && cuda_emu::touches_device(p, sizeof(float))) {
    return blas_fail(CUBLAS_STATUS_EXECUTION_FAILED,
                     cat(call, ": ", name, " is device memory but the pointer mode is host"));
  }
  return CUBLAS_STATUS_SUCCESS;
}

// A column-major rows x cols matrix with leading dimension ld must lie in one allocation.
cublasStatus_t check_matrix(const float* p, int rows, int cols, int ld, const char* name,
                            const char* call) {
  if (rows == 0 || cols == 0) return CUBLAS_STATUS_SUCCESS;
  const std::size_t elements = static_cast<std::size_t>(cols - 1) * static_cast<std::size_t>(ld) +
                               static_cast<std::size_t>(rows);
  if (!cuda_emu::inside_allocation(p, elements * sizeof(float))) {
    return blas_fail(
        CUBLAS_STATUS_EXECUTION_FAILED,
        cat(call, ": ", name, " (", rows, " x ", cols, " column-major, ld ", ld, ", ", elements,
            " floats from ", static_cast<const void*>(p), ") is not inside one device allocation"));
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t check_vector(const float* p, int n, int inc, const char* name, const char* call) {
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  const std::size_t elements =
      static_cast<std::size_t>(n - 1) * static_cast<std::size_t>(inc < 0 ? -inc : inc) + 1;
  if (!cuda_emu::inside_allocation(p, elements * sizeof(float))) {
    return blas_fail(CUBLAS_STATUS_EXECUTION_FAILED,
                     cat(call, ": ", name, " (", n, " elements, increment ", inc, ", from ",
                         static_cast<const void*>(p), ") is not inside one device allocation"));
  }
  return CUBLAS_STATUS_SUCCESS;
}

bool valid_op(cublasOperation_t op) {
  return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

CBLAS_TRANSPOSE to_cblas(cublasOperation_t op) {
  return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
}

// cvt.rna.tf32.f32: 10 mantissa bits, to nearest, ties away from zero.
float to_tf32(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  if ((bits & 0x7F800000U) != 0x7F800000U) bits = (bits + 0x1000U) & ~0x1FFFU;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

std::vector<float> tf32_copy(const float* p, int rows, int cols, int ld) {
  const std::size_t elements = static_cast<std::size_t>(cols - 1) * static_cast<std::size_t>(ld) +
                               static_cast<std::size_t>(rows);
  std::vector<float> out(p, p + elements);
  for (float& v : out) v = to_tf32(v);
  return out;
}

// C = beta C for a column-major m x n block; beta = 0 writes zeros whatever C held (NaN too),
// as cuBLAS does.
void scale_matrix(float* c, int m, int n, int ldc, float beta) {
  if (beta == 1.0f) return;
  for (int j = 0; j < n; ++j) {
    float* col = c + static_cast<std::ptrdiff_t>(j) * ldc;
    for (int i = 0; i < m; ++i) col[i] = beta == 0.0f ? 0.0f : beta * col[i];
  }
}

struct GemmShape {
  int rows_a, cols_a, rows_b, cols_b;
};

cublasStatus_t check_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda,
                          int ldb, int ldc, GemmShape* shape, const char* call) {
  if (!valid_op(ta) || !valid_op(tb)) {
    return blas_fail(CUBLAS_STATUS_INVALID_VALUE, cat(call, ": invalid transpose operation"));
  }
  if (m < 0 || n < 0 || k < 0) {
    return blas_fail(CUBLAS_STATUS_INVALID_VALUE,
                     cat(call, ": negative size m = ", m, ", n = ", n, ", k = ", k));
  }
  *shape = {ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, tb == CUBLAS_OP_N ? k : n,
            tb == CUBLAS_OP_N ? n : k};
  if (lda < std::max(1, shape->rows_a) || ldb < std::max(1, shape->rows_b) ||
      ldc < std::max(1, m)) {
    return blas_fail(CUBLAS_STATUS_INVALID_VALUE,
                     cat(call, ": leading dimensions lda = ", lda, ", ldb = ", ldb, ", ldc = ", ldc,
                         " for column-major A ", shape->rows_a, " x ", shape->cols_a, ", B ",
                         shape->rows_b, " x ", shape->cols_b, ", C ", m, " x ", n));
  }
  return CUBLAS_STATUS_SUCCESS;
}

// A scalar argument: read at the call in host pointer mode, as cuBLAS does (a graph keeps the
// value), and at the run in device pointer mode.
struct Scalar {
  const float* p;
  float value;
  bool device;
  [[nodiscard]] float get() const { return device ? *p : value; }
};
Scalar scalar_of(cublasHandle_t h, const float* p) {
  const bool device = h->pointer_mode == CUBLAS_POINTER_MODE_DEVICE;
  return {p, device ? 0.0f : *p, device};
}

// Runs a checked call now, or records it when the handle's stream is capturing.
cublasStatus_t blas_run(cublasHandle_t h, std::function<void()> run) {
  if (!cuda_emu::detail::capturing(h->stream)) {
    run();
    return CUBLAS_STATUS_SUCCESS;
  }
  (void)cuda_emu::detail::capture(h->stream, [run = std::move(run)] {
    run();
    return cudaSuccess;
  });
  return CUBLAS_STATUS_SUCCESS;
}

// One gemm whose arguments were checked.
void gemm_one(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
              float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c,
              int ldc, const GemmShape& s) {
  scale_matrix(c, m, n, ldc, beta);
  if (k == 0 || alpha == 0.0f) return;
  if (h->math == CUBLAS_TF32_TENSOR_OP_MATH) {
    const std::vector<float> ra = tf32_copy(a, s.rows_a, s.cols_a, lda);
    const std::vector<float> rb = tf32_copy(b, s.rows_b, s.cols_b, ldb);
    cblas_sgemm(CblasColMajor, to_cblas(ta), to_cblas(tb), m, n, k, alpha, ra.data(), lda,
                rb.data(), ldb, 1.0f, c, ldc);
  } else {
    cblas_sgemm(CblasColMajor, to_cblas(ta), to_cblas(tb), m, n, k, alpha, a, lda, b, ldb, 1.0f, c,
                ldc);
  }
}

}  // namespace

const char* cublasGetStatusString(cublasStatus_t status) {
  if (status != CUBLAS_STATUS_SUCCESS && status == t_blas_failure) {
    return t_blas_failure_text.c_str();
  }
  return base_status_string(status);
}

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (handle == nullptr) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasCreate: null handle");
  if (cuda_emu::device_count() == 0) {
    return blas_fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasCreate: no device");
  }
  auto* h = new cublasContext;
  Handles& all = handles();
  std::lock_guard<std::mutex> lock(all.mutex);
  all.live.insert(h);
  *handle = h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  Handles& all = handles();
  std::lock_guard<std::mutex> lock(all.mutex);
  if (handle == nullptr || all.live.erase(handle) == 0) {
    return blas_fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasDestroy: not a live handle");
  }
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (const cublasStatus_t s = check_handle(handle, "cublasSetStream");
      s != CUBLAS_STATUS_SUCCESS) {
    return s;
  }
  if (!cuda_emu::stream_ok(stream)) {
    return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasSetStream: not a live stream");
  }
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, std::size_t bytes) {
  const char* call = "cublasSetWorkspace";
  if (const cublasStatus_t s = check_handle(handle, call); s != CUBLAS_STATUS_SUCCESS) return s;
  if (bytes > 0 && !cuda_emu::inside_allocation(workspace, bytes)) {
    return blas_fail(CUBLAS_STATUS_INVALID_VALUE,
                     cat(call, ": ", bytes, " bytes at ", workspace, " are not device memory"));
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t* stream) {
  if (const cublasStatus_t s = check_handle(handle, "cublasGetStream");
      s != CUBLAS_STATUS_SUCCESS) {
    return s;
  }
  if (stream == nullptr) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasGetStream: null");
  *stream = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (const cublasStatus_t s = check_handle(handle, "cublasSetMathMode");
      s != CUBLAS_STATUS_SUCCESS) {
    return s;
  }
  if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_TENSOR_OP_MATH &&
      mode != CUBLAS_PEDANTIC_MATH && mode != CUBLAS_TF32_TENSOR_OP_MATH) {
    return blas_fail(CUBLAS_STATUS_INVALID_VALUE,
                     cat("cublasSetMathMode(", static_cast<int>(mode), ")"));
  }
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
  if (const cublasStatus_t s = check_handle(handle, "cublasGetMathMode");
      s != CUBLAS_STATUS_SUCCESS) {
    return s;
  }
  if (mode == nullptr) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasGetMathMode: null");
  *mode = handle->math;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetPointerMode(cublasHandle_t handle, cublasPointerMode_t mode) {
  if (const cublasStatus_t s = check_handle(handle, "cublasSetPointerMode");
      s != CUBLAS_STATUS_SUCCESS) {
    return s;
  }
  if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE) {
    return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasSetPointerMode: invalid mode");
  }
  handle->pointer_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetPointerMode(cublasHandle_t handle, cublasPointerMode_t* mode) {
  if (const cublasStatus_t s = check_handle(handle, "cublasGetPointerMode");
      s != CUBLAS_STATUS_SUCCESS) {
    return s;
  }
  if (mode == nullptr) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasGetPointerMode: null");
  *mode = handle->pointer_mode;
  return CUBLAS_STATUS_SUCCESS;
}

#define BP_EMU_RETURN_IF(expr)                                                    \
  do {                                                                            \
    if (const cublasStatus_t s_ = (expr); s_ != CUBLAS_STATUS_SUCCESS) return s_; \
  } while (0)

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, const float* alpha,
                           const float* a, int lda, const float* b, int ldb, const float* beta,
                           float* c, int ldc) {
  const char* call = "cublasSgemm";
  BP_EMU_RETURN_IF(check_handle(handle, call));
  GemmShape s{};
  BP_EMU_RETURN_IF(check_gemm(transa, transb, m, n, k, lda, ldb, ldc, &s, call));
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  BP_EMU_RETURN_IF(check_scalar(handle, alpha, "alpha", call));
  BP_EMU_RETURN_IF(check_scalar(handle, beta, "beta", call));
  if (k > 0 && *alpha != 0.0f) {
    BP_EMU_RETURN_IF(check_matrix(a, s.rows_a, s.cols_a, lda, "A", call));
    BP_EMU_RETURN_IF(check_matrix(b, s.rows_b, s.cols_b, ldb, "B", call));
  }
  BP_EMU_RETURN_IF(check_matrix(c, m, n, ldc, "C", call));
  const Scalar al = scalar_of(handle, alpha);
  const Scalar be = scalar_of(handle, beta);
  return blas_run(handle, [=] {
    gemm_one(handle, transa, transb, m, n, k, al.get(), a, lda, b, ldb, be.get(), c, ldc, s);
  });
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const float* alpha, const float* a, int lda,
                                         long long int stride_a, const float* b, int ldb,
                                         long long int stride_b, const float* beta, float* c,
                                         int ldc, long long int stride_c, int batch_count) {
  const char* call = "cublasSgemmStridedBatched";
  BP_EMU_RETURN_IF(check_handle(handle, call));
  GemmShape s{};
  BP_EMU_RETURN_IF(check_gemm(transa, transb, m, n, k, lda, ldb, ldc, &s, call));
  if (batch_count < 0) {
    return blas_fail(CUBLAS_STATUS_INVALID_VALUE, cat(call, ": batch count ", batch_count));
  }
  if (m == 0 || n == 0 || batch_count == 0) return CUBLAS_STATUS_SUCCESS;
  BP_EMU_RETURN_IF(check_scalar(handle, alpha, "alpha", call));
  BP_EMU_RETURN_IF(check_scalar(handle, beta, "beta", call));
  for (int i = 0; i < batch_count; ++i) {
    const float* ai = a + i * stride_a;
    const float* bi = b + i * stride_b;
    float* ci = c + i * stride_c;
    if (k > 0 && *alpha != 0.0f) {
      BP_EMU_RETURN_IF(check_matrix(ai, s.rows_a, s.cols_a, lda, "A of a batch entry", call));
      BP_EMU_RETURN_IF(check_matrix(bi, s.rows_b, s.cols_b, ldb, "B of a batch entry", call));
    }
    BP_EMU_RETURN_IF(check_matrix(ci, m, n, ldc, "C of a batch entry", call));
  }
  const Scalar al = scalar_of(handle, alpha);
  const Scalar be = scalar_of(handle, beta);
  return blas_run(handle, [=] {
    for (int i = 0; i < batch_count; ++i) {
      gemm_one(handle, transa, transb, m, n, k, al.get(), a + i * stride_a, lda, b + i * stride_b,
               ldb, be.get(), c + i * stride_c, ldc, s);
    }
  });
}

cublasStatus_t cublasSgemv(cublasHandle_t handle, cublasOperation_t trans, int m, int n,
                           const float* alpha, const float* a, int lda, const float* x, int incx,
                           const float* beta, float* y, int incy) {
  const char* call = "cublasSgemv";
  BP_EMU_RETURN_IF(check_handle(handle, call));
  if (!valid_op(trans) || m < 0 || n < 0 || lda < std::max(1, m) || incx == 0 || incy == 0) {
    return blas_fail(
        CUBLAS_STATUS_INVALID_VALUE,
        cat(call, ": m = ", m, ", n = ", n, ", lda = ", lda, ", incx = ", incx, ", incy = ", incy));
  }
  // BLAS's quick return: nothing is touched, y not even scaled.
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  BP_EMU_RETURN_IF(check_scalar(handle, alpha, "alpha", call));
  BP_EMU_RETURN_IF(check_scalar(handle, beta, "beta", call));
  const int len_x = trans == CUBLAS_OP_N ? n : m;
  const int len_y = trans == CUBLAS_OP_N ? m : n;
  if (*alpha != 0.0f) {
    BP_EMU_RETURN_IF(check_matrix(a, m, n, lda, "A", call));
    BP_EMU_RETURN_IF(check_vector(x, len_x, incx, "x", call));
  }
  BP_EMU_RETURN_IF(check_vector(y, len_y, incy, "y", call));
  const Scalar al = scalar_of(handle, alpha);
  const Scalar be = scalar_of(handle, beta);
  return blas_run(handle, [=] {
    if (be.get() == 0.0f) {
      // cuBLAS does not read y when beta is 0; a NaN there must not survive.
      const int step = incy < 0 ? -incy : incy;
      for (int i = 0; i < len_y; ++i) y[static_cast<std::ptrdiff_t>(i) * step] = 0.0f;
    }
    cblas_sgemv(CblasColMajor, to_cblas(trans), m, n, al.get(), a, lda, x, incx, be.get(), y, incy);
  });
}

cublasStatus_t cublasSaxpy(cublasHandle_t handle, int n, const float* alpha, const float* x,
                           int incx, float* y, int incy) {
  const char* call = "cublasSaxpy";
  BP_EMU_RETURN_IF(check_handle(handle, call));
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  BP_EMU_RETURN_IF(check_scalar(handle, alpha, "alpha", call));
  BP_EMU_RETURN_IF(check_vector(x, n, incx, "x", call));
  BP_EMU_RETURN_IF(check_vector(y, n, incy, "y", call));
  const Scalar al = scalar_of(handle, alpha);
  return blas_run(handle, [=] { cblas_saxpy(n, al.get(), x, incx, y, incy); });
}

cublasStatus_t cublasSscal(cublasHandle_t handle, int n, const float* alpha, float* x, int incx) {
  const char* call = "cublasSscal";
  BP_EMU_RETURN_IF(check_handle(handle, call));
  if (n <= 0 || incx <= 0) return CUBLAS_STATUS_SUCCESS;
  BP_EMU_RETURN_IF(check_scalar(handle, alpha, "alpha", call));
  BP_EMU_RETURN_IF(check_vector(x, n, incx, "x", call));
  const Scalar al = scalar_of(handle, alpha);
  return blas_run(handle, [=] { cblas_sscal(n, al.get(), x, incx); });
}

cublasStatus_t cublasSdot(cublasHandle_t handle, int n, const float* x, int incx, const float* y,
                          int incy, float* result) {
  const char* call = "cublasSdot";
  BP_EMU_RETURN_IF(check_handle(handle, call));
  BP_EMU_RETURN_IF(check_scalar(handle, result, "result", call));
  if (n > 0) {
    BP_EMU_RETURN_IF(check_vector(x, n, incx, "x", call));
    BP_EMU_RETURN_IF(check_vector(y, n, incy, "y", call));
  }
  return blas_run(handle, [=] { *result = n <= 0 ? 0.0f : cblas_sdot(n, x, incx, y, incy); });
}

cublasStatus_t cublasSnrm2(cublasHandle_t handle, int n, const float* x, int incx, float* result) {
  const char* call = "cublasSnrm2";
  BP_EMU_RETURN_IF(check_handle(handle, call));
  BP_EMU_RETURN_IF(check_scalar(handle, result, "result", call));
  const bool empty = n <= 0 || incx <= 0;
  if (!empty) BP_EMU_RETURN_IF(check_vector(x, n, incx, "x", call));
  return blas_run(handle, [=] { *result = empty ? 0.0f : cblas_snrm2(n, x, incx); });
}

#undef BP_EMU_RETURN_IF
