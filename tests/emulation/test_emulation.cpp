// The CPU emulation itself (tests/emulation): that barriers, shared memory and warp intrinsics
// behave as on a GPU, that misuse a GPU would punish is reported instead of passing quietly,
// and that the cuBLAS stand-in checks what cuBLAS checks. The project's kernels are tested in
// test_emulated_kernels.cpp and by the "cuda" instances of the device-parameterised tests.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr unsigned kFull = 0xFFFFFFFFU;

// ---- Kernels ------------------------------------------------------------------------------------

// Each thread reads its neighbour's slot after the barrier: right only if every thread of the
// block wrote before any read, and only the block's own values are seen.
__global__ void neighbour_kernel(int* out) {
  __shared__ int slots[256];
  slots[threadIdx.x] = static_cast<int>(blockIdx.x * 1000 + threadIdx.x);
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

// A shared-memory tree: log2(256) + 1 barriers, as kernels/rl_reduce.cu does it.
__global__ void tree_sum_kernel(const int* in, int* out) {
  __shared__ int s[256];
  s[threadIdx.x] = in[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

__global__ void warp_kernel(int* out) {
  const unsigned t = threadIdx.x;
  const unsigned lane = t % 32;
  const int v = static_cast<int>(t) - 40;  // negative and positive values
  int* o = out + t * 8;
  o[0] = static_cast<int>(__reduce_add_sync(kFull, t));
  o[1] = __reduce_min_sync(kFull, v);
  o[2] = __reduce_max_sync(kFull, v);
  o[3] = static_cast<int>(__ballot_sync(kFull, (t % 3) == 0));
  o[4] = __shfl_sync(kFull, v, 5);
  o[5] = __shfl_down_sync(kFull, v, 3, 16);
  __syncwarp();
  // Only the even lanes, with a mask that names just them.
  if ((lane & 1U) == 0) {
    o[6] = static_cast<int>(__reduce_add_sync(0x55555555U, 1U));
    o[7] = __shfl_sync(0x55555555U, v, 2);
  } else {
    o[6] = -1;
    o[7] = -1;
  }
}

__global__ void index_kernel(uint32_t* out, unsigned long long* count) {
  const unsigned bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned tx = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned per_block = blockDim.x * blockDim.y * blockDim.z;
  out[bx * per_block + tx] = bx * per_block + tx;
  atomicAdd(count, 1ULL);
  atomicMin(count + 1, static_cast<unsigned long long>(bx * per_block + tx));
  atomicMax(count + 2, static_cast<unsigned long long>(bx * per_block + tx));
}

__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 10) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void warp_deadlock_kernel(int* out) {
  if (threadIdx.x == 1) return;  // lane 1 never arrives, but the mask names it
  out[threadIdx.x] = static_cast<int>(__reduce_add_sync(kFull, 1U));
}

__global__ void fill_kernel(float* x, int64_t n, float v) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = v;
}

// ---- Helpers -----------------------------------------------------------------------------------

template <class T>
T* device_alloc(std::size_t n) {
  T* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess);
  return p;
}

template <class T>
std::vector<T> to_host(const T* d, std::size_t n) {
  std::vector<T> h(n);
  EXPECT_EQ(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

std::string last_error_text() { return cudaGetErrorString(cudaGetLastError()); }

// ---- Tests -------------------------------------------------------------------------------------

TEST(CudaEmulation, OneDeviceNamedAsEmulated) {
  int count = 0;
  ASSERT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
  EXPECT_EQ(count, 1);
  cudaDeviceProp prop{};
  ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  EXPECT_NE(std::string(prop.name).find("emulated"), std::string::npos);
  EXPECT_EQ(cudaSetDevice(1), cudaErrorInvalidDevice);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidDevice);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // read once, then cleared
}

TEST(CudaEmulation, BarrierOrdersSharedMemoryWithinEachBlock) {
  constexpr unsigned kBlocks = 3;
  int* out = device_alloc<int>(kBlocks * 256);
  ASSERT_EQ(cuda_emu::launch(neighbour_kernel, dim3(kBlocks), dim3(256), nullptr, out),
            cudaSuccess);
  const auto h = to_host(out, kBlocks * 256);
  for (unsigned b = 0; b < kBlocks; ++b) {
    for (unsigned t = 0; t < 256; ++t) {
      ASSERT_EQ(h[b * 256 + t], static_cast<int>(b * 1000 + (t + 1) % 256)) << b << " " << t;
    }
  }
  std::vector<int> in(4 * 256);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i % 97) - 13;
  int* din = device_alloc<int>(in.size());
  int* sums = device_alloc<int>(4);
  ASSERT_EQ(cudaMemcpy(din, in.data(), in.size() * sizeof(int), cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(cuda_emu::launch(tree_sum_kernel, dim3(4), dim3(256), nullptr, din, sums), cudaSuccess);
  const auto hs = to_host(sums, 4);
  for (int b = 0; b < 4; ++b) {
    int want = 0;
    for (int t = 0; t < 256; ++t) want += in[static_cast<std::size_t>(b * 256 + t)];
    EXPECT_EQ(hs[static_cast<std::size_t>(b)], want) << b;
  }
  cudaFree(out);
  cudaFree(din);
  cudaFree(sums);
}

TEST(CudaEmulation, WarpIntrinsics) {
  constexpr unsigned kThreads = 64;
  int* out = device_alloc<int>(kThreads * 8);
  ASSERT_EQ(cuda_emu::launch(warp_kernel, dim3(1), dim3(kThreads), nullptr, out), cudaSuccess);
  const auto h = to_host(out, kThreads * 8);
  for (unsigned t = 0; t < kThreads; ++t) {
    const unsigned w = t / 32 * 32;
    const unsigned lane = t % 32;
    const int* o = &h[t * 8];
    EXPECT_EQ(o[0], static_cast<int>(32 * w + 31 * 32 / 2)) << t;
    EXPECT_EQ(o[1], static_cast<int>(w) - 40) << t;
    EXPECT_EQ(o[2], static_cast<int>(w + 31) - 40) << t;
    unsigned ballot = 0;
    for (unsigned l = 0; l < 32; ++l) ballot |= ((w + l) % 3 == 0 ? 1U : 0U) << l;
    EXPECT_EQ(static_cast<unsigned>(o[3]), ballot) << t;
    EXPECT_EQ(o[4], static_cast<int>(w + 5) - 40) << t;
    // Within segments of 16 lanes; lanes whose source leaves the segment keep their value.
    const unsigned src = lane % 16 + 3 < 16 ? t + 3 : t;
    EXPECT_EQ(o[5], static_cast<int>(src) - 40) << t;
    EXPECT_EQ(o[6], (lane & 1U) == 0 ? 16 : -1) << t;
    EXPECT_EQ(o[7], (lane & 1U) == 0 ? static_cast<int>(w + 2) - 40 : -1) << t;
  }
  cudaFree(out);
}

TEST(CudaEmulation, ThreeDimensionalGridsAndAtomics) {
  const dim3 grid(3, 2, 2), block(8, 4, 2);
  const unsigned total = 3 * 2 * 2 * 8 * 4 * 2;
  auto* out = device_alloc<uint32_t>(total);
  auto* count = device_alloc<unsigned long long>(3);
  const unsigned long long init[3] = {0, ~0ULL, 0};
  ASSERT_EQ(cudaMemcpy(count, init, sizeof(init), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cuda_emu::launch(index_kernel, grid, block, nullptr, out, count), cudaSuccess);
  const auto h = to_host(out, total);
  for (unsigned i = 0; i < total; ++i) ASSERT_EQ(h[i], i);
  const auto c = to_host(count, 3);
  EXPECT_EQ(c[0], total);
  EXPECT_EQ(c[1], 0U);
  EXPECT_EQ(c[2], total - 1);
  cudaFree(out);
  cudaFree(count);
}

TEST(CudaEmulation, BlocksWithoutBarriersRunWithoutContextSwitches) {
  constexpr int64_t kN = 100 * 256 - 7;
  float* x = device_alloc<float>(kN);
  const cuda_emu::Stats before = cuda_emu::stats();
  ASSERT_EQ(cuda_emu::launch(fill_kernel, dim3(100), dim3(256), nullptr, x, kN, 2.5f), cudaSuccess);
  const cuda_emu::Stats after = cuda_emu::stats();
  EXPECT_EQ(after.launches - before.launches, 1U);
  EXPECT_EQ(after.blocks - before.blocks, 100U);
  EXPECT_EQ(after.threads - before.threads, 100U * 256U);
  EXPECT_LE(after.fiber_switches - before.fiber_switches, 1U);  // the whole grid in one fiber
  for (const float v : to_host(x, kN)) ASSERT_EQ(v, 2.5f);
  cudaFree(x);
}

TEST(CudaEmulation, DivergentBarriersAndDeadlocksAreErrorsNotHangs) {
  int* out = device_alloc<int>(256);
  EXPECT_EQ(cuda_emu::launch(divergent_barrier_kernel, dim3(2), dim3(64), nullptr, out),
            cudaErrorLaunchFailure);
  EXPECT_NE(last_error_text().find("divergent"), std::string::npos);
  EXPECT_EQ(cuda_emu::launch(warp_deadlock_kernel, dim3(1), dim3(32), nullptr, out),
            cudaErrorLaunchFailure);
  EXPECT_NE(last_error_text().find("deadlock"), std::string::npos);
  // The abandoned threads leave nothing behind: the next launch runs normally.
  EXPECT_EQ(cuda_emu::launch(neighbour_kernel, dim3(1), dim3(256), nullptr, out), cudaSuccess);
  EXPECT_EQ(to_host(out, 256)[255], 0);
  cudaFree(out);
}

TEST(CudaEmulation, LaunchConfigurationAndPointerArgumentsAreChecked) {
  float* x = device_alloc<float>(16);
  EXPECT_EQ(cuda_emu::launch(fill_kernel, dim3(0), dim3(256), nullptr, x, int64_t{16}, 1.0f),
            cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cuda_emu::launch(fill_kernel, dim3(1), dim3(1025), nullptr, x, int64_t{16}, 1.0f),
            cudaErrorInvalidConfiguration);
  (void)cudaGetLastError();
  // A host pointer as a kernel argument would fault on the GPU.
  std::vector<float> host(16);
  EXPECT_EQ(
      cuda_emu::launch(fill_kernel, dim3(1), dim3(32), nullptr, host.data(), int64_t{16}, 1.0f),
      cudaErrorIllegalAddress);
  EXPECT_NE(last_error_text().find("argument 0"), std::string::npos);
  // Null and just-past-the-end pointers are fine (the kernel does not touch them here).
  EXPECT_EQ(cuda_emu::launch(fill_kernel, dim3(1), dim3(32), nullptr, x + 16, int64_t{0}, 1.0f),
            cudaSuccess);
  EXPECT_EQ(cuda_emu::launch(fill_kernel, dim3(1), dim3(32), nullptr, static_cast<float*>(nullptr),
                             int64_t{0}, 1.0f),
            cudaSuccess);
  // A destroyed stream.
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  EXPECT_EQ(cuda_emu::launch(fill_kernel, dim3(1), dim3(32), s, x, int64_t{16}, 1.0f), cudaSuccess);
  ASSERT_EQ(cudaStreamDestroy(s), cudaSuccess);
  EXPECT_EQ(cuda_emu::launch(fill_kernel, dim3(1), dim3(32), s, x, int64_t{16}, 1.0f),
            cudaErrorInvalidResourceHandle);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidResourceHandle);
  cudaFree(x);
}

TEST(CudaEmulation, DeviceMemoryIsTrackedAndChecked) {
  constexpr std::size_t kN = 10;
  float* d = device_alloc<float>(kN);
  // Fresh device memory is not zero.
  for (const float v : to_host(d, kN)) EXPECT_TRUE(std::isnan(v));
  std::vector<float> h(kN, 1.0f);
  EXPECT_TRUE(cuda_emu::is_device_range(d, kN * sizeof(float)));
  EXPECT_FALSE(cuda_emu::is_device_range(d, kN * sizeof(float) + 1));
  EXPECT_FALSE(cuda_emu::is_device_range(h.data(), 4));
  // Directions the wrong way round, and copies that leave the allocation.
  EXPECT_EQ(cudaMemcpy(h.data(), d, kN * sizeof(float), cudaMemcpyHostToDevice),
            cudaErrorInvalidValue);
  EXPECT_NE(last_error_text().find("destination"), std::string::npos);
  EXPECT_EQ(cudaMemcpy(d, h.data(), kN * sizeof(float), cudaMemcpyDeviceToHost),
            cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(d + 1, h.data(), kN * sizeof(float), cudaMemcpyHostToDevice),
            cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemsetAsync(d, 0, kN * sizeof(float) + 4, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(d, d + 2, 4 * sizeof(float), cudaMemcpyDeviceToDevice),
            cudaErrorInvalidValue);  // overlapping
  EXPECT_EQ(cudaMemcpy(d, h.data(), kN * sizeof(float), cudaMemcpyDefault), cudaSuccess);
  EXPECT_EQ(to_host(d, kN), h);
  EXPECT_EQ(cudaFree(d + 1), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(d), cudaSuccess);
  EXPECT_EQ(cudaFree(d), cudaErrorInvalidValue);  // twice
  EXPECT_EQ(cudaFree(nullptr), cudaSuccess);
  (void)cudaGetLastError();
  std::size_t free_bytes = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total), cudaSuccess);
  EXPECT_GT(total, 0U);
  EXPECT_LE(free_bytes, total);
}

// A capture records launches, device copies and memsets with their arguments as given, and a
// graph's launch runs them on what memory holds then; what a capture cannot hold fails as on a
// GPU and invalidates it.
TEST(CudaEmulation, StreamCaptureRecordsAndGraphsReplay) {
  constexpr int64_t kN = 64;
  float* x = device_alloc<float>(kN);
  float* y = device_alloc<float>(kN);
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  ASSERT_EQ(cuda_emu::launch(fill_kernel, dim3(1), dim3(64), s, x, kN, 2.0f), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(y, x, kN * sizeof(float), cudaMemcpyDeviceToDevice, s), cudaSuccess);
  ASSERT_EQ(cudaMemsetAsync(x, 0, sizeof(float), s), cudaSuccess);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  EXPECT_TRUE(std::isnan(to_host(y, 1)[0]));  // nothing ran while capturing
  for (int run = 0; run < 2; ++run) {
    ASSERT_EQ(cudaMemset(y, 0xFF, kN * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
    EXPECT_EQ(to_host(y, kN), std::vector<float>(kN, 2.0f));
    EXPECT_EQ(to_host(x, 1)[0], 0.0f);
  }
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);

  // Host memory, a synchronisation, the legacy stream and allocations are refused meanwhile.
  std::vector<float> h(kN, 1.0f);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(y, h.data(), kN * sizeof(float), cudaMemcpyHostToDevice),
            cudaErrorStreamCaptureImplicit);
  float* z = nullptr;
  EXPECT_EQ(cudaMalloc(&z, 16), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaMemcpyAsync(y, h.data(), kN * sizeof(float), cudaMemcpyHostToDevice, s),
            cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(graph, nullptr);
  (void)cudaGetLastError();
  // Capture over, all is allowed again.
  EXPECT_EQ(cudaMemcpy(y, h.data(), kN * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
  cudaFree(x);
  cudaFree(y);
}

TEST(CudaEmulation, HostThreadsLaunchAtTheSameTime) {
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &ok] {
      int* out = nullptr;
      if (cudaMalloc(&out, 3 * 256 * sizeof(int)) != cudaSuccess) return;
      bool good = true;
      for (int rep = 0; rep < 20 && good; ++rep) {
        good = cuda_emu::launch(neighbour_kernel, dim3(3), dim3(256), nullptr, out) == cudaSuccess;
        std::vector<int> h(3 * 256);
        good = good && cudaMemcpy(h.data(), out, h.size() * sizeof(int), cudaMemcpyDeviceToHost) ==
                           cudaSuccess;
        for (unsigned i = 0; i < h.size() && good; ++i) {
          good = h[i] == static_cast<int>(i / 256 * 1000 + (i % 256 + 1) % 256);
        }
      }
      cudaFree(out);
      ok[static_cast<std::size_t>(t)] = good ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, std::vector<int>(4, 1));
}

// ---- cuBLAS -------------------------------------------------------------------------------------

class EmulatedCublasChecks : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(cublasCreate(&h_), CUBLAS_STATUS_SUCCESS);
    a_ = device_alloc<float>(64);
    b_ = device_alloc<float>(64);
    c_ = device_alloc<float>(64);
    const std::vector<float> ones(64, 1.0f);
    for (float* p : {a_, b_}) {
      ASSERT_EQ(cudaMemcpy(p, ones.data(), 64 * sizeof(float), cudaMemcpyHostToDevice),
                cudaSuccess);
    }
  }
  void TearDown() override {
    EXPECT_EQ(cublasDestroy(h_), CUBLAS_STATUS_SUCCESS);
    cudaFree(a_);
    cudaFree(b_);
    cudaFree(c_);
  }
  cublasHandle_t h_ = nullptr;
  float* a_ = nullptr;
  float* b_ = nullptr;
  float* c_ = nullptr;
};

TEST_F(EmulatedCublasChecks, ArgumentsAsCublasChecksThem) {
  const float one = 1.0f, zero = 0.0f;
  // Column-major: A is m x k = 4 x 3 needs lda >= 4.
  EXPECT_EQ(cublasSgemm(h_, CUBLAS_OP_N, CUBLAS_OP_N, 4, 5, 3, &one, a_, 3, b_, 3, &zero, c_, 4),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_NE(std::string(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE)).find("lda = 3"),
            std::string::npos);
  EXPECT_EQ(cublasSgemm(h_, CUBLAS_OP_N, CUBLAS_OP_N, 4, 5, 3, &one, a_, 4, b_, 3, &zero, c_, 3),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasSgemv(h_, CUBLAS_OP_N, 4, 3, &one, a_, 3, b_, 1, &zero, c_, 1),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasSgemv(h_, CUBLAS_OP_N, 4, 3, &one, a_, 4, b_, 0, &zero, c_, 1),
            CUBLAS_STATUS_INVALID_VALUE);
  // Quick returns touch nothing.
  EXPECT_EQ(cublasSgemm(h_, CUBLAS_OP_N, CUBLAS_OP_N, 0, 5, 3, &one, nullptr, 1, nullptr, 3, &zero,
                        nullptr, 1),
            CUBLAS_STATUS_SUCCESS);
  cublasHandle_t dead = nullptr;
  ASSERT_EQ(cublasCreate(&dead), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasDestroy(dead), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasSscal(dead, 4, &one, c_, 1), CUBLAS_STATUS_NOT_INITIALIZED);
}

TEST_F(EmulatedCublasChecks, MemoryAndPointerModeMistakesAreCaught) {
  const float one = 1.0f, zero = 0.0f;
  // 8 x 8 column-major with ld 8 is exactly the 64 floats; ld 9 reaches past them.
  EXPECT_EQ(cublasSgemm(h_, CUBLAS_OP_N, CUBLAS_OP_N, 8, 8, 8, &one, a_, 8, b_, 8, &zero, c_, 8),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasSgemm(h_, CUBLAS_OP_N, CUBLAS_OP_N, 8, 8, 8, &one, a_, 9, b_, 8, &zero, c_, 8),
            CUBLAS_STATUS_EXECUTION_FAILED);
  std::vector<float> host(64, 1.0f);
  EXPECT_EQ(cublasSaxpy(h_, 64, &one, host.data(), 1, c_, 1), CUBLAS_STATUS_EXECUTION_FAILED);
  // Host pointer mode with a result in device memory: a GPU would write through a device
  // pointer from the host.
  float host_result = 0.0f;
  EXPECT_EQ(cublasSdot(h_, 8, a_, 1, b_, 1, c_), CUBLAS_STATUS_EXECUTION_FAILED);
  EXPECT_NE(std::string(cublasGetStatusString(CUBLAS_STATUS_EXECUTION_FAILED)).find("pointer mode"),
            std::string::npos);
  EXPECT_EQ(cublasSdot(h_, 8, a_, 1, b_, 1, &host_result), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(host_result, 8.0f);
  ASSERT_EQ(cublasSetPointerMode(h_, CUBLAS_POINTER_MODE_DEVICE), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasSnrm2(h_, 4, a_, 1, &host_result), CUBLAS_STATUS_EXECUTION_FAILED);
  EXPECT_EQ(cublasSnrm2(h_, 4, a_, 1, c_), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(to_host(c_, 1)[0], 2.0f);
  // alpha and beta must now be device memory too.
  EXPECT_EQ(cublasSscal(h_, 4, &one, c_, 1), CUBLAS_STATUS_EXECUTION_FAILED);
}

TEST_F(EmulatedCublasChecks, BetaZeroIgnoresNanAndTf32RoundsInputs) {
  const float one = 1.0f, zero = 0.0f;
  // c_ is fresh (NaN) device memory: beta = 0 must not read it.
  ASSERT_EQ(cublasSgemm(h_, CUBLAS_OP_N, CUBLAS_OP_T, 2, 2, 3, &one, a_, 2, b_, 2, &zero, c_, 2),
            CUBLAS_STATUS_SUCCESS);
  for (const float v : to_host(c_, 4)) EXPECT_EQ(v, 3.0f);
  float* y = device_alloc<float>(4);
  ASSERT_EQ(cublasSgemv(h_, CUBLAS_OP_T, 3, 4, &one, a_, 3, b_, 1, &zero, y, 1),
            CUBLAS_STATUS_SUCCESS);
  for (const float v : to_host(y, 4)) EXPECT_EQ(v, 3.0f);
  cudaFree(y);
  // 1 + 2^-12 is not a TF32 number: FP32 math keeps it, TF32 math rounds it to 1.
  const std::vector<float> x = {1.0f + 0x1.0p-12f};
  ASSERT_EQ(cudaMemcpy(a_, x.data(), sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cublasSgemm(h_, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a_, 1, b_, 1, &zero, c_, 1),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(to_host(c_, 1)[0], x[0]);
  ASSERT_EQ(cublasSetMathMode(h_, CUBLAS_TF32_TENSOR_OP_MATH), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasSgemm(h_, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a_, 1, b_, 1, &zero, c_, 1),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(to_host(c_, 1)[0], 1.0f);
}

}  // namespace
