// The device registry: one Device object per device (the CPU, a GPU) owns its memory and stream
// and hands out everything that runs on it: the BLAS, the network, trainer and environment
// operations, and its plan (the sizes the layers above use). Everything above is written once
// against these and never asks which device it runs on. No CUDA type appears here.
//
// Adding a device means one class that derives from Device and installs its four sets of
// operations (host/cpu/ and kernels/cuda_device.cu are the two there are), plus its line in
// host/device/registry.cpp.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "batchpole/core/common.hpp"

// Whether this compiler can clear a struct's padding (Device::exact_fingerprints).
#if defined(__has_builtin) && !defined(__CUDACC__)
#if __has_builtin(__builtin_clear_padding)
#define BATCHPOLE_CLEAR_PADDING 1
#endif
#endif

namespace batchpole {

class Blas;
class NnOps;
class RlOps;
class EnvOps;

enum class DeviceKind : uint8_t { kCpu, kCuda };
std::string to_string(DeviceKind kind);

// "cpu", "cuda" or "auto" (the GPU when one is usable, else the CPU).
struct DeviceRequest {
  enum class Choice : uint8_t { kAuto, kCpu, kCuda } choice = Choice::kAuto;
  static DeviceRequest parse(const std::string& s);  // throws Error(kInvalidArgument)
};

struct DevicePlan;

// More CPU threads than this is a mistake, not a machine (OpenMP fails to start them, or
// overflows its stack trying): make_device refuses it, and so do the flags and keys.
inline constexpr int kMaxCpuThreads = 1024;

struct DeviceOptions {
  DeviceRequest device;
  int threads = 0;          // CPU worker threads in [0, kMaxCpuThreads]; 0 = all hardware threads
  int cuda_device = 0;      // GPU ordinal
  bool allow_tf32 = false;  // cuBLAS TF32 tensor-op math; plain FP32 unless asked
  // The sizes to use instead of the device's own plan (tuning, and the tests that make the
  // CPU cut batches as the GPU does).
  std::shared_ptr<const DevicePlan> plan = nullptr;
};

// What a device is good at, fixed when the device is made. The layers above take these sizes
// from the plan instead of branching on the device (the measurements behind each number are in
// BENCHMARKS.md).
struct DevicePlan {
  // The networks: rows per pass (a pass's workspace is bounded by this, not by the batch), and
  // the shards a batch is cut into, each run as one task with its own gradients and summed in
  // shard order, so that results depend on the shard count but never on the thread count.
  int64_t chunk_rows = 0;
  int32_t shards = 1;
  // Recorded activations of acting (reused by the update instead of a second forward pass) are
  // kept when they need at most this many bytes. A budget rather than the memory free now, so
  // that the same configuration always trains the same way.
  std::size_t record_budget = 0;
  // A population's agents: false runs each agent's passes as its own tasks (each agent then
  // computes exactly what it would alone); true runs every layer of all the agents as one
  // strided-batched gemm (the GPU, where one agent's pass is far too small to fill it).
  bool batch_agents = false;
  // An update never waits for the device before its end: the value of the final observations
  // runs over the whole rollout instead of after a read of whether any episode was truncated,
  // and the episode tally is read with the statistics at the end (the GPU, where a wait costs
  // more than the pass). Whole-episode rollouts, which watch for their end, still wait.
  bool sync_free_updates = false;
  // An update's operations are recorded once and replayed as one launch (run_recorded: a CUDA
  // graph on the GPU, where each launch costs microseconds of the host's time).
  bool graphs = false;
  // Defaults: the training batch that solves fastest, and the sizes of the benchmarks.
  int64_t train_envs = 0;
  int64_t bench_env_envs = 0;
  int64_t bench_nn_batch = 0;
  int64_t bench_train_envs = 0;
};

// Operations a device queued (kernel launches, BLAS calls, copies and fills: each call of the
// operation interfaces counts one) and the times the host waited for it. Counted on both
// devices alike, so that the CPU tests bound what the GPU does per update.
struct OpCounts {
  uint64_t stream_ops = 0;
  uint64_t host_syncs = 0;
};

// The sequences of operations that run_recorded recorded and replays (a CUDA graph each on the
// GPU, the operations themselves elsewhere): the last few distinct sequences seen, so that work
// that alternates between a few (DQN's updates with and without a target sync) replays each.
// Owned by the code that runs it, destroyed before its device.
class Recording {
 public:
  Recording();
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;
  ~Recording();

  [[nodiscard]] uint64_t recordings() const { return recordings_; }  // times recorded
  [[nodiscard]] uint64_t replays() const { return replays_; }        // runs as one launch
  // The device's form of one (its operations, or a CUDA graph).
  struct Native {
    virtual ~Native() = default;
  };
  // Distinct sequences kept, the least recently run given up first.
  static constexpr std::size_t kKept = 4;

 private:
  friend class Device;
  struct Entry {
    std::vector<uint64_t> fingerprints;  // its operations, in order
    std::vector<const char*> names;      // and their names (for BATCHPOLE_DEBUG_RECORDING)
    std::unique_ptr<Native> native;      // null until seen twice
    uint64_t last_run = 0;
  };
  std::vector<Entry> entries_;
  uint64_t runs_ = 0;
  uint64_t recordings_ = 0;
  uint64_t replays_ = 0;
};

class Device {
 public:
  Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  virtual ~Device();

  [[nodiscard]] virtual DeviceKind kind() const = 0;
  [[nodiscard]] virtual std::string description() const = 0;  // e.g. "cpu (2 threads)"
  [[nodiscard]] virtual int threads() const = 0;              // CPU threads; 1 on the GPU
  // Bytes that can still be allocated on this device (an estimate, read now).
  [[nodiscard]] virtual std::size_t available_memory() const = 0;

  // ---- memory: the one place that refuses an allocation that does not fit ----
  // Throws Error(kOutOfMemory) naming the size and what is available; deallocate never throws.
  void* allocate(std::size_t bytes);
  // Inside run_recorded the memory goes back when the run's held operations have run.
  void deallocate(void* ptr) noexcept {
    if (held_ != nullptr && ptr != nullptr && defer_deallocation(ptr)) return;
    do_deallocate(ptr);
  }
  void copy_to_host(void* dst, const void* src, std::size_t bytes);  // waits for the device
  // Several copies to the host with one wait: what an update reads at its end.
  struct HostCopy {
    void* dst;
    const void* src;
    std::size_t bytes;
  };
  void copy_to_host(const std::vector<HostCopy>& copies);
  // Queued; the caller may reuse its (pageable) memory as soon as the call returns.
  void copy_from_host(void* dst, const void* src, std::size_t bytes);
  void copy_on_device(void* dst, const void* src, std::size_t bytes);
  // `rows` rows of `width` bytes, rows dst_pitch and src_pitch bytes apart (one operation).
  void copy_rows_on_device(void* dst, std::size_t dst_pitch, const void* src, std::size_t src_pitch,
                           std::size_t width, std::size_t rows);
  void fill_zero(void* ptr, std::size_t bytes);
  void synchronize();
  // Throws a pending asynchronous error (the GPU's invalid-action report), if any. Synchronises.
  void check_errors();

  // Runs body(task, worker) for every task in [0, tasks). On the CPU the tasks run on up to
  // threads() OpenMP threads (worker = the thread's index, so a caller can give each worker its
  // own scratch); on the GPU they run in order on the calling thread (worker 0), each task
  // queuing its work on the stream. Which worker runs a task is not fixed, so results must not
  // depend on it. The first exception a task throws is rethrown here after all have ended.
  virtual void run_tasks(int64_t tasks, const std::function<void(int64_t task, int worker)>& body);
  // The device stream as an opaque handle (a cudaStream_t on the GPU, nullptr on the CPU).
  [[nodiscard]] virtual void* native_stream() const = 0;

  // ---- recording ----
  // Runs `work` (host code that queues operations) as one launch where the plan says so
  // (plan().graphs), else as it is. `work` always runs on the host, so whatever it computes
  // and keeps there stays right; the operations it queues are held instead of queued, each with
  // a fingerprint of what it is and of every argument. When they are a sequence that `recording`
  // has recorded, the device replays that (the GPU: one graph launch); when it has seen them
  // before but not recorded them, it records them and launches that; else it runs them one by
  // one. So a recording never replays operations that differ from the ones asked for; `work`
  // that changes an argument every run simply runs unrecorded.
  // `work` must not wait for the device (a copy to the host, a synchronisation: refused, since
  // what it would read has not run yet). Values that change every run and that the operations
  // read from device memory are copied there with copy_parameters.
  void run_recorded(Recording& recording, const std::function<void()>& work);
  // Whether run_recorded is holding operations now.
  [[nodiscard]] bool recording() const { return held_ != nullptr; }
  // A copy from the host like copy_from_host, of values that change from run to run: its bytes
  // are not part of the fingerprint, and a replay makes it before the recorded operations. So the
  // operations of that run must not write dst, nor read it before this copy expecting the old
  // values. A run that copies parameters to one place twice (an optimiser stepping twice) runs
  // unrecorded, its copies in program order.
  void copy_parameters(void* dst, const void* src, std::size_t bytes);

  // Whether fingerprints see only the values of arguments: a struct's padding holds whatever
  // was there, and only compilers with __builtin_clear_padding (GCC) can clear it. Elsewhere a
  // run may differ from the last in its padding alone and run unrecorded (never wrongly).
  static bool exact_fingerprints();

  // Queues one operation: `launch(args...)`, counted. Inside run_recorded the arguments are
  // copied and held with a fingerprint of `name` and their bytes (so every argument must be
  // trivially copyable: pointers, numbers and plain structs).
  template <class Launch, class... Args>
  void enqueue(const char* name, const Launch& launch, const Args&... args) {
    static_assert((std::is_trivially_copyable_v<Args> && ...),
                  "enqueue: operation arguments must be trivially copyable");
    if (held_ == nullptr) {
      count_op();
      launch(args...);
      return;
    }
    uint64_t h = fingerprint_of(name);
    ((h = fingerprint_arg(args, h)), ...);
    hold(name, h, [launch, args...] { launch(args...); });
  }

  // ---- the operations and the plan ----
  [[nodiscard]] Blas& blas() { return *blas_; }
  [[nodiscard]] NnOps& nn() { return *nn_; }
  [[nodiscard]] RlOps& rl() { return *rl_; }
  [[nodiscard]] EnvOps& env() { return *env_; }
  [[nodiscard]] const DevicePlan& plan() const { return plan_; }

  // ---- counting ----
  [[nodiscard]] OpCounts counts() const {
    return {stream_ops_.load(std::memory_order_relaxed),
            host_syncs_.load(std::memory_order_relaxed)};
  }
  void count_op() { stream_ops_.fetch_add(1, std::memory_order_relaxed); }
  // A wait for the device: refused inside run_recorded.
  void count_sync() {
    refuse_wait("a synchronisation");
    host_syncs_.fetch_add(1, std::memory_order_relaxed);
  }

 protected:
  // The implementation's constructor hands over its operations and plan, once.
  void install(std::unique_ptr<Blas> blas, std::unique_ptr<NnOps> nn, std::unique_ptr<RlOps> rl,
               std::unique_ptr<EnvOps> env, const DevicePlan& plan);
  // Destroys the operations while the implementation (its stream, its handles) still exists.
  void uninstall() noexcept;

  virtual void* do_allocate(std::size_t bytes) = 0;
  virtual void do_deallocate(void* ptr) noexcept = 0;
  virtual void do_copy_to_host(void* dst, const void* src, std::size_t bytes) = 0;
  // Queued without waiting (the GPU); a do_copy_to_host or do_synchronize follows.
  virtual void do_copy_to_host_queued(void* dst, const void* src, std::size_t bytes) {
    do_copy_to_host(dst, src, bytes);
  }
  virtual void do_copy_from_host(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void do_copy_on_device(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void do_copy_rows_on_device(void* dst, std::size_t dst_pitch, const void* src,
                                      std::size_t src_pitch, std::size_t width,
                                      std::size_t rows) = 0;
  virtual void do_fill_zero(void* ptr, std::size_t bytes) = 0;
  virtual void do_synchronize() = 0;
  virtual void do_check_errors() = 0;

  // One held operation: a launch, or a copy of bytes from the host (launch empty; a parameter
  // copy when `parameter`).
  struct HeldOp {
    std::function<void()> launch;
    void* dst = nullptr;
    std::vector<unsigned char> bytes;
    bool parameter = false;
  };
  // What the default do_record keeps.
  struct HeldOps final : Recording::Native {
    std::vector<HeldOp> ops;
  };
  // Records `ops` (it runs them too). The default keeps the operations and runs them, which is
  // what replaying them means on a device without graphs; nullptr: this device could not
  // record them (it ran them, and runs later ones unrecorded).
  virtual std::unique_ptr<Recording::Native> do_record(std::vector<HeldOp>& ops);
  virtual void do_replay(Recording::Native& native);
  // Runs one held operation as it was asked for.
  void run_held(HeldOp& op);

 private:
  std::unique_ptr<Blas> blas_;
  std::unique_ptr<NnOps> nn_;
  std::unique_ptr<RlOps> rl_;
  std::unique_ptr<EnvOps> env_;
  DevicePlan plan_;
  std::atomic<uint64_t> stream_ops_{0};
  std::atomic<uint64_t> host_syncs_{0};

  // run_recorded's held operations, in program order (null outside it).
  struct Held {
    explicit Held(Device& d) : device(&d) {}
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    ~Held() {
      for (void* p : frees) device->do_deallocate(p);
    }
    Device* device;
    std::vector<HeldOp> ops;
    std::vector<uint64_t> fingerprints;
    std::vector<const char*> names;
    std::vector<void*> frees;  // deallocated while held: freed once the operations have run
  };
  Held* held_ = nullptr;
  bool graphs_failed_ = false;  // do_record could not record: run everything unrecorded
  void hold(const char* name, uint64_t fingerprint, std::function<void()> launch);
  void hold_host_bytes(void* dst, const void* src, std::size_t bytes, bool parameter);
  void refuse_wait(const char* what) const;
  bool defer_deallocation(void* ptr) noexcept;
  static void report_difference(const Recording& recording, const Held& now);
  static bool parameters_hoistable(const std::vector<HeldOp>& ops);
  static uint64_t fingerprint_of(const char* name);
  static uint64_t fingerprint_of(const void* bytes, std::size_t n, uint64_t h);
  // An argument's bytes; a struct's with its padding cleared where the compiler can
  // (exact_fingerprints).
  template <class T>
  static uint64_t fingerprint_arg(const T& value, uint64_t h) {
    if constexpr (std::is_class_v<T>) {
      T copy = value;
#ifdef BATCHPOLE_CLEAR_PADDING
      __builtin_clear_padding(&copy);
#endif
      return fingerprint_of(&copy, sizeof(T), h);
    } else {
      return fingerprint_of(&value, sizeof(T), h);
    }
  }
};

// Throws Error(kUnavailable) when CUDA is asked for and not usable, with the reason.
std::unique_ptr<Device> make_device(const DeviceOptions& options = {});

// Whether CUDA can be used here, and if not, exactly why. The CUDA device is a plugin
// (libbatchpole_cuda.so) loaded on first use, so that every program starts and runs on the CPU
// on a machine without any CUDA library.
struct CudaStatus {
  bool built = false;    // this build made the plugin
  std::string plugin;    // the plugin file loaded (or tried), "" when none was found
  bool loaded = false;   // the plugin and the CUDA libraries it needs were loaded
  int device_count = 0;  // GPUs the driver reports
  std::vector<std::string> device_names;
  std::string reason;  // why no GPU is usable ("" when one is)
  [[nodiscard]] bool available() const { return device_count > 0; }
};
// Probed once per process, then cached. Never throws.
const CudaStatus& cuda_status();

// Shorthands of cuda_status().
bool cuda_compiled();
int cuda_device_count();
std::string cuda_device_name(int index);  // "" when unavailable

}  // namespace batchpole
