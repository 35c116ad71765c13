// CPU emulation of the part of the CUDA runtime that kernels/ uses. On the include path only in
// the BATCHPOLE_CUDA_EMULATION build (tests/emulation/README.md): the project's .cu files then
// compile with the host compiler and their kernels run on the CPU. Blocks run one after another;
// the threads of a block run as fibers on the launching thread, so they can meet at
// __syncthreads() and in the warp intrinsics. Device memory is host memory that the runtime
// tracks, so that copies, cuBLAS calls and kernel pointer arguments can be checked against it.
//
// C++17, like the .cu files that include it. Everything else lives in cuda_emulation.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- Qualifiers --------------------------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
// One copy per block: blocks run one after another on a launching thread, so static storage is
// block storage. thread_local so that two host threads can run kernels at once. (A declaration
// that aligns its __shared__ array must put alignas first: `alignas(T) __shared__ ...`.)
#define __shared__ static thread_local

// ---- Index types and built-in variables --------------------------------------------------------

struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
      : x(vx), y(vy), z(vz) {}
};

// Set by the emulated launch for the thread that runs (restored whenever a fiber resumes).
inline thread_local uint3 threadIdx{};
inline thread_local uint3 blockIdx{};
inline thread_local dim3 blockDim{};
inline thread_local dim3 gridDim{};
inline constexpr int warpSize = 32;

// ---- Errors ------------------------------------------------------------------------------------

// The values are CUDA's.
enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidPitchValue = 12,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureImplicit = 906,
};
typedef enum cudaError cudaError_t;

// Returns and clears the calling thread's last error.
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
// For an error this thread's last call returned, the text carries what the emulation saw.
const char* cudaGetErrorString(cudaError_t error);
const char* cudaGetErrorName(cudaError_t error);

// ---- Device ------------------------------------------------------------------------------------

struct cudaDeviceProp {
  char name[256];
  std::size_t totalGlobalMem;
  std::size_t sharedMemPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major;
  int minor;
  int multiProcessorCount;
};

// One device, "emulated CUDA device (CPU)"; none when BATCHPOLE_EMULATION_DEVICES=0.
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceSynchronize();
// The host's available and total memory.
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes);

// ---- Memory ------------------------------------------------------------------------------------

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

// Host memory, registered as a device allocation and filled with 0xFF bytes (NaN floats): like
// cudaMalloc's, its content is not zero.
cudaError_t cudaMalloc(void** ptr, std::size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** ptr, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
cudaError_t cudaFree(void* ptr);

// ---- Streams -----------------------------------------------------------------------------------

struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

// Streams are synchronous: each call has finished when it returns.
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);

// The direction is checked against the registered allocations, and so is the extent: a copy
// that leaves its allocation fails with cudaErrorInvalidValue instead of corrupting memory.
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy2DAsync(void* dst, std::size_t dpitch, const void* src, std::size_t spitch,
                              std::size_t width, std::size_t height, cudaMemcpyKind kind,
                              cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* ptr, int value, std::size_t bytes);

// ---- Graphs (stream capture) -------------------------------------------------------------------

// Between cudaStreamBeginCapture and cudaStreamEndCapture a stream's work is recorded instead of
// run: kernel launches (their arguments as converted at the launch), device-to-device copies,
// memsets and cuBLAS calls (scalars behind host pointers read at the call, as cuBLAS does).
// What a capture cannot hold fails as on a GPU and invalidates the capture: a synchronisation of
// the stream, a copy to or from host memory on it, and in the capturing thread any call that
// would wait on the legacy stream or allocate (cudaMemcpy, cudaMemset, cudaMalloc, cudaFree).
// A graph's launch runs the recorded work in order, on the calling thread.
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
struct CUgraph_st;
typedef struct CUgraph_st* cudaGraph_t;
struct CUgraphExec_st;
typedef struct CUgraphExec_st* cudaGraphExec_t;

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph,
                                 unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

// ---- Emulation interface -----------------------------------------------------------------------

namespace cuda_emu {

// What the emulation has run on this process, for tests.
struct Stats {
  uint64_t launches = 0;        // kernel launches that ran
  uint64_t blocks = 0;          // blocks run
  uint64_t threads = 0;         // threads run
  uint64_t fiber_switches = 0;  // context switches (barriers and warp intrinsics)
};
Stats stats();

// Whether [p, p + bytes) lies inside one live device allocation.
bool is_device_range(const void* p, std::size_t bytes);

enum class WarpOp : uint8_t {
  kSync,
  kReduceAddU,
  kReduceAddI,
  kReduceMinU,
  kReduceMinI,
  kReduceMaxU,
  kReduceMaxI,
  kBallot,
  kShfl,      // arg: the source lane (within width)
  kShflDown,  // arg: the lane delta
};

namespace detail {

// Opaque calls: the compiler cannot keep shared memory in registers across them.
void syncthreads();
uint32_t warp_exchange(unsigned mask, WarpOp op, uint32_t value, uint32_t arg, int width);

cudaError_t run_grid(dim3 grid, dim3 block, cudaStream_t stream, void (*body)(void*), void* frame,
                     const char* kernel);
// Stream capture: whether `stream` is capturing, and work recorded into its capture (run at
// each launch of the graph).
bool capturing(cudaStream_t stream);
cudaError_t capture(cudaStream_t stream, std::function<cudaError_t()> work);
cudaError_t bad_kernel_pointer(const char* kernel, std::size_t index, const void* p);

// A top-level pointer argument must be null or point into (or just past) device memory.
template <class T>
cudaError_t check_argument(const T& v, std::size_t index, const char* kernel) {
  if constexpr (std::is_pointer_v<T>) {
    if (v != nullptr && !is_device_range(v, 0)) return bad_kernel_pointer(kernel, index, v);
  }
  return cudaSuccess;
}

}  // namespace detail

// A kernel launch: the arguments are converted to the parameter types once, as a launch copies
// them to the parameter space, then every thread of the grid runs the kernel on its own copy.
// Top-level pointer arguments must be null or point into device memory (a host pointer there
// would fault on the GPU). Records and returns the launch's error, as <<<>>> does.
template <class... Params, class... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream,
                   Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "launch: wrong number of kernel arguments");
  static_assert((std::is_trivially_copyable_v<std::decay_t<Params>> && ...),
                "kernel parameters must be trivially copyable");
  using Tuple = std::tuple<std::decay_t<Params>...>;
  struct Frame {
    void (*kernel)(Params...);
    Tuple params;
  };
  Frame frame{kernel, Tuple(static_cast<Params>(std::forward<Args>(args))...)};
  const char* name = __PRETTY_FUNCTION__;
  // Pointer arguments must be device memory when the kernel runs: at the launch, and at each
  // launch of a graph that captured it (memory freed since would fault there).
  const auto check = [name](const Tuple& params) {
    cudaError_t err = cudaSuccess;
    std::size_t index = 0;
    std::apply(
        [&](const auto&... p) {
          ((err = err == cudaSuccess ? detail::check_argument(p, index, name) : err, ++index), ...);
        },
        params);
    return err;
  };
  if (const cudaError_t err = check(frame.params); err != cudaSuccess) return err;
  void (*body)(void*) = [](void* f) {
    auto* fr = static_cast<Frame*>(f);
    std::apply(fr->kernel, fr->params);
  };
  if (detail::capturing(stream)) {
    // The graph holds the arguments as converted now, as a captured launch does.
    return detail::capture(stream, [frame, grid, block, body, name, check]() mutable {
      if (const cudaError_t err = check(frame.params); err != cudaSuccess) return err;
      return detail::run_grid(grid, block, nullptr, body, &frame, name);
    });
  }
  return detail::run_grid(grid, block, stream, body, &frame, name);
}

}  // namespace cuda_emu

// ---- Device functions --------------------------------------------------------------------------

inline void __syncthreads() { cuda_emu::detail::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xFFFFFFFFU) {
  (void)cuda_emu::detail::warp_exchange(mask, cuda_emu::WarpOp::kSync, 0, 0, 32);
}

inline unsigned __reduce_add_sync(unsigned mask, unsigned value) {
  return cuda_emu::detail::warp_exchange(mask, cuda_emu::WarpOp::kReduceAddU, value, 0, 32);
}
inline int __reduce_add_sync(unsigned mask, int value) {
  return static_cast<int>(cuda_emu::detail::warp_exchange(mask, cuda_emu::WarpOp::kReduceAddI,
                                                          static_cast<uint32_t>(value), 0, 32));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned value) {
  return cuda_emu::detail::warp_exchange(mask, cuda_emu::WarpOp::kReduceMinU, value, 0, 32);
}
inline int __reduce_min_sync(unsigned mask, int value) {
  return static_cast<int>(cuda_emu::detail::warp_exchange(mask, cuda_emu::WarpOp::kReduceMinI,
                                                          static_cast<uint32_t>(value), 0, 32));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned value) {
  return cuda_emu::detail::warp_exchange(mask, cuda_emu::WarpOp::kReduceMaxU, value, 0, 32);
}
inline int __reduce_max_sync(unsigned mask, int value) {
  return static_cast<int>(cuda_emu::detail::warp_exchange(mask, cuda_emu::WarpOp::kReduceMaxI,
                                                          static_cast<uint32_t>(value), 0, 32));
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return cuda_emu::detail::warp_exchange(mask, cuda_emu::WarpOp::kBallot, predicate != 0 ? 1U : 0U,
                                         0, 32);
}
inline unsigned __shfl_sync(unsigned mask, unsigned value, int src_lane, int width = 32) {
  return cuda_emu::detail::warp_exchange(mask, cuda_emu::WarpOp::kShfl, value,
                                         static_cast<uint32_t>(src_lane), width);
}
inline int __shfl_sync(unsigned mask, int value, int src_lane, int width = 32) {
  return static_cast<int>(__shfl_sync(mask, static_cast<unsigned>(value), src_lane, width));
}
inline float __shfl_sync(unsigned mask, float value, int src_lane, int width = 32) {
  uint32_t bits;
  __builtin_memcpy(&bits, &value, sizeof(bits));
  bits = __shfl_sync(mask, bits, src_lane, width);
  float out;
  __builtin_memcpy(&out, &bits, sizeof(out));
  return out;
}
inline unsigned __shfl_down_sync(unsigned mask, unsigned value, unsigned delta, int width = 32) {
  return cuda_emu::detail::warp_exchange(mask, cuda_emu::WarpOp::kShflDown, value, delta, width);
}
inline int __shfl_down_sync(unsigned mask, int value, unsigned delta, int width = 32) {
  return static_cast<int>(__shfl_down_sync(mask, static_cast<unsigned>(value), delta, width));
}
inline float __shfl_down_sync(unsigned mask, float value, unsigned delta, int width = 32) {
  uint32_t bits;
  __builtin_memcpy(&bits, &value, sizeof(bits));
  bits = __shfl_down_sync(mask, bits, delta, width);
  float out;
  __builtin_memcpy(&out, &bits, sizeof(out));
  return out;
}

// Atomics: the threads of a launch share one OS thread, but device memory may be touched by
// kernels another host thread runs, so these are real atomic operations.
template <class T>
inline T atomicAdd(T* address, T value) {
  static_assert(std::is_same_v<T, int> || std::is_same_v<T, unsigned> ||
                    std::is_same_v<T, unsigned long long>,
                "atomicAdd: int, unsigned, unsigned long long, float or double");
  return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
}
namespace cuda_emu::detail {
template <class T, class F>
T atomic_update(T* address, F f) {
  T old = __atomic_load_n(address, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(address, &old, f(old), true, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED)) {
  }
  return old;
}
template <class Real, class Bits>
Real atomic_add_real(Real* address, Real value) {
  auto* bits = reinterpret_cast<Bits*>(address);
  const Bits old = atomic_update(bits, [value](Bits b) {
    Real r;
    __builtin_memcpy(&r, &b, sizeof(r));
    r += value;
    __builtin_memcpy(&b, &r, sizeof(b));
    return b;
  });
  Real out;
  __builtin_memcpy(&out, &old, sizeof(out));
  return out;
}
}  // namespace cuda_emu::detail
inline float atomicAdd(float* address, float value) {
  return cuda_emu::detail::atomic_add_real<float, uint32_t>(address, value);
}
inline double atomicAdd(double* address, double value) {
  return cuda_emu::detail::atomic_add_real<double, uint64_t>(address, value);
}
template <class T>
inline T atomicMin(T* address, T value) {
  static_assert(std::is_integral_v<T>, "atomicMin: integer types");
  return cuda_emu::detail::atomic_update(address,
                                         [value](T old) { return value < old ? value : old; });
}
template <class T>
inline T atomicMax(T* address, T value) {
  static_assert(std::is_integral_v<T>, "atomicMax: integer types");
  return cuda_emu::detail::atomic_update(address,
                                         [value](T old) { return value > old ? value : old; });
}
template <class T>
inline T atomicExch(T* address, T value) {
  return __atomic_exchange_n(address, value, __ATOMIC_RELAXED);
}
template <class T>
inline T atomicCAS(T* address, T compare, T value) {
  __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;
}
