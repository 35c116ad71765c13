// The CUDA device: one GPU, one non-blocking stream that every kernel and cuBLAS call is queued
// on, device-resident buffers. Built into the plugin libbatchpole_cuda.so, whose one exported
// symbol hands the library this device's constructor (host/device/cuda_plugin.hpp).
#include <cuda_runtime.h>

#include <climits>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "batchpole/env/env_ops.hpp"
#include "batchpole/nn/blas.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "batchpole/rl/rl_ops.hpp"
#include "cuda_check.cuh"
#include "cuda_ops.cuh"
#include "device/cuda_plugin.hpp"

namespace batchpole {

namespace {

int device_count(std::string* error) {
  // Without a driver this returns cudaErrorInsufficientDriver and leaves count untouched.
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error so later calls start clean
    if (error != nullptr) {
      *error = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(err) + " (" +
               cudaGetErrorString(err) + ")";
    }
    return 0;
  }
  return count;
}

std::string device_name(int index) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) return "";
  return prop.name;
}

// The GPU's plan. Chunks of 262144 rows fill an H100/H200 with one pass; one shard (the chunks
// already fill the device). The batch sizes are where throughput levels off (BENCHMARKS.md).
DevicePlan cuda_plan() {
  DevicePlan p;
  p.chunk_rows = 262144;
  p.shards = 1;
  p.record_budget = std::size_t{8} << 30U;
  p.batch_agents = true;
  p.sync_free_updates = true;
  p.graphs = true;
  p.train_envs = 16384;
  p.bench_env_envs = int64_t{1} << 22;
  p.bench_nn_batch = int64_t{1} << 20;
  p.bench_train_envs = int64_t{1} << 20;
  return p;
}

class CudaDevice final : public Device {
 public:
  explicit CudaDevice(const DeviceOptions& options) : device_(options.cuda_device) {
    std::string error;
    const int count = device_count(&error);
    BP_REQUIRE(count > 0, kUnavailable,
               "CUDA was asked for, but no usable GPU was found"
                   << (error.empty() ? std::string(" (no device)") : ": " + error));
    BP_REQUIRE(device_ >= 0 && device_ < count, kUnavailable,
               "GPU " << device_ << " was asked for, but only " << count << " found");
    BP_CUDA_CHECK(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    BP_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    BP_REQUIRE(prop.major >= 8, kUnavailable,
               "GPU " << device_ << " (" << prop.name << ") has compute capability " << prop.major
                      << "." << prop.minor << "; batchpole's kernels need 8.0 or newer");
    name_ = prop.name;
    BP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    BP_CUDA_CHECK(cudaMalloc(&bad_action_, sizeof(unsigned long long)));
    reset_bad_action();
    install(cuda::make_blas(*this, stream_, options.allow_tf32), cuda::make_nn_ops(*this, stream_),
            cuda::make_rl_ops(*this, stream_), cuda::make_env_ops(*this, stream_, bad_action_),
            options.plan ? *options.plan : cuda_plan());
  }
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;
  ~CudaDevice() override {
    uninstall();
    BP_CUDA_LOG(cudaFree(bad_action_));
    BP_CUDA_LOG(cudaStreamDestroy(stream_));
  }

  [[nodiscard]] DeviceKind kind() const override { return DeviceKind::kCuda; }
  [[nodiscard]] std::string description() const override {
    return "cuda:" + std::to_string(device_) + " (" + name_ + ")";
  }
  [[nodiscard]] int threads() const override { return 1; }
  [[nodiscard]] std::size_t available_memory() const override {
    std::size_t free_bytes = 0;
    std::size_t total = 0;
    BP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
    return free_bytes;
  }
  [[nodiscard]] void* native_stream() const override { return stream_; }

 protected:
  void* do_allocate(std::size_t bytes) override {
    void* ptr = nullptr;
    const cudaError_t err = cudaMalloc(&ptr, bytes);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      BP_REQUIRE(false, kOutOfMemory,
                 "cannot allocate " << bytes << " bytes on " << description() << ": "
                                    << cudaGetErrorString(err));
    }
    return ptr;
  }
  void do_deallocate(void* ptr) noexcept override { BP_CUDA_LOG(cudaFree(ptr)); }
  void do_copy_to_host_queued(void* dst, const void* src, std::size_t bytes) override {
    BP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  }
  void do_copy_to_host(void* dst, const void* src, std::size_t bytes) override {
    BP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    do_synchronize();
  }
  void do_copy_from_host(void* dst, const void* src, std::size_t bytes) override {
    // From pageable memory (every caller's) the copy is staged before the call returns, so the
    // caller may reuse its memory at once without waiting for the device.
    BP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void do_copy_on_device(void* dst, const void* src, std::size_t bytes) override {
    BP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void do_copy_rows_on_device(void* dst, std::size_t dst_pitch, const void* src,
                              std::size_t src_pitch, std::size_t width, std::size_t rows) override {
    BP_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows,
                                    cudaMemcpyDeviceToDevice, stream_));
  }
  void do_fill_zero(void* ptr, std::size_t bytes) override {
    BP_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, stream_));
  }
  void do_synchronize() override {
    BP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    do_check_errors();
  }
  // The environment kernels report invalid actions in one device word (they cannot throw).
  void do_check_errors() override {
    unsigned long long bad = cuda::kNoBadAction;
    BP_CUDA_CHECK(cudaMemcpyAsync(&bad, bad_action_, sizeof(bad), cudaMemcpyDeviceToHost, stream_));
    BP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (bad == cuda::kNoBadAction) return;
    reset_bad_action();
    BP_CHECK_ARG(false, "invalid action " << static_cast<int32_t>(bad & 0xFFFFFFFFULL)
                                          << " for env " << (bad >> 32U)
                                          << " (CartPole actions are 0 and 1; the GPU stepped "
                                             "it as action 0)");
  }

  // Records the operations as a CUDA graph and launches it. Bytes from the host are staged in
  // device memory first, so that the graph copies from there (a graph's copy from pageable
  // memory would read it at every launch). Where capture fails (a library that cannot be
  // captured, a driver without graphs), the operations run as they are, and so do all later
  // ones: this device then reports why once on stderr.
  std::unique_ptr<Recording::Native> do_record(std::vector<HeldOp>& ops) override {
    auto graph = std::make_unique<Graph>();
    std::string failure;
    bool capturing = false;
    try {
      std::vector<const void*> sources(ops.size(), nullptr);
      for (std::size_t i = 0; i < ops.size(); ++i) {
        if (ops[i].launch) continue;
        void* staged = nullptr;
        BP_CUDA_CHECK(cudaMalloc(&staged, ops[i].bytes.size()));
        graph->staging.push_back(staged);
        // On the stream, so that the graph's launches follow it.
        BP_CUDA_CHECK(cudaMemcpyAsync(staged, ops[i].bytes.data(), ops[i].bytes.size(),
                                      cudaMemcpyHostToDevice, stream_));
        sources[i] = staged;
      }
      BP_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      capturing = true;
      for (std::size_t i = 0; i < ops.size(); ++i) {
        if (ops[i].launch) {
          ops[i].launch();
        } else {
          BP_CUDA_CHECK(cudaMemcpyAsync(ops[i].dst, sources[i], ops[i].bytes.size(),
                                        cudaMemcpyDeviceToDevice, stream_));
        }
      }
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "an exception that is not a std::exception";
    }
    if (capturing) {
      // Always ended, whatever failed: the stream must not stay capturing.
      cudaGraph_t captured = nullptr;
      const cudaError_t ended = cudaStreamEndCapture(stream_, &captured);
      if (failure.empty() && ended != cudaSuccess) failure = cudaGetErrorString(ended);
      if (failure.empty()) {
        const cudaError_t made = cudaGraphInstantiate(&graph->exec, captured, 0);
        if (made != cudaSuccess) failure = cudaGetErrorString(made);
      }
      if (captured != nullptr) BP_CUDA_LOG(cudaGraphDestroy(captured));
    }
    if (!failure.empty()) {
      (void)cudaGetLastError();
      std::fprintf(stderr,
                   "batchpole: CUDA graphs are unavailable (%s); updates run launch by launch\n",
                   failure.c_str());
      for (HeldOp& op : ops) run_held(op);
      return nullptr;
    }
    BP_CUDA_CHECK(cudaGraphLaunch(graph->exec, stream_));
    return graph;
  }
  void do_replay(Recording::Native& native) override {
    BP_CUDA_CHECK(cudaGraphLaunch(static_cast<Graph&>(native).exec, stream_));
  }

 private:
  struct Graph final : Recording::Native {
    cudaGraphExec_t exec = nullptr;
    std::vector<void*> staging;  // the held host copies' bytes
    Graph() = default;
    Graph(const Graph&) = delete;
    Graph& operator=(const Graph&) = delete;
    ~Graph() override {
      if (exec != nullptr) BP_CUDA_LOG(cudaGraphExecDestroy(exec));
      for (void* p : staging) BP_CUDA_LOG(cudaFree(p));
    }
  };

  void reset_bad_action() {
    const unsigned long long init = cuda::kNoBadAction;
    BP_CUDA_CHECK(
        cudaMemcpyAsync(bad_action_, &init, sizeof(init), cudaMemcpyHostToDevice, stream_));
    BP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  int device_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  unsigned long long* bad_action_ = nullptr;  // min((env << 32) | action) over invalid actions
};

std::unique_ptr<Device> make_cuda_device(const DeviceOptions& options) {
  return std::make_unique<CudaDevice>(options);
}

const CudaPluginApi kApi = {kCudaPluginAbi, BATCHPOLE_VERSION, &device_count, &device_name,
                            &make_cuda_device};

}  // namespace

}  // namespace batchpole

extern "C" __attribute__((visibility("default"))) const batchpole::CudaPluginApi*
batchpole_cuda_plugin() {
  return &batchpole::kApi;
}
