// The CUDA implementation of RlOps: launcher calls on the backend's stream, with a scratch
// buffer for the partial sums of the reductions.
#include <cuda_runtime.h>

#include <algorithm>

#include "../host/rl_entry.hpp"
#include "batchpole/buffer.hpp"
#include "cuda_check.cuh"
#include "rl_ops.cuh"

namespace batchpole {

namespace {

class CudaRlOps final : public RlOps {
 public:
  explicit CudaRlOps(Backend& backend)
      : backend_(backend), stream_(static_cast<cudaStream_t>(backend.native_stream())) {}

  void returns(const ReturnsArgs& args) override { cuda::launch_returns(stream_, args); }
  void first_episode_mask(const uint8_t* terminated, const uint8_t* truncated, int64_t steps,
                          int64_t envs, uint8_t* mask) override {
    cuda::launch_first_episode_mask(stream_, terminated, truncated, steps, envs, mask);
  }
  void mark_ended(uint8_t* ended, const uint8_t* terminated, const uint8_t* truncated,
                  int64_t n) override {
    cuda::launch_mark_ended(stream_, ended, terminated, truncated, n);
  }
  void subtract(const float* a, const float* b, int64_t n, float* out) override {
    cuda::launch_subtract(stream_, a, b, n, out);
  }
  void moments(const float* x, const uint8_t* mask, int64_t n, Moments* out) override {
    cuda::launch_moments(stream_, x, mask, n, partials<Moments>(n), out);
  }
  void normalize(float* x, const uint8_t* mask, int64_t n, const Moments* m, float eps) override {
    cuda::launch_normalize(stream_, x, mask, n, m, eps);
  }
  void episode_tally(const EpisodeRows& rows, int64_t n, EpisodeTally* out) override {
    cuda::launch_episode_tally(stream_, rows, n, partials<EpisodeTally>(n), out);
  }
  int64_t count_nonzero(const uint8_t* flags, int64_t n) override {
    auto* partial = partials<Moments>(n + 1);  // the last slot holds the total
    Moments* total = partial + cuda::reduce_blocks(n);
    cuda::launch_count_nonzero(stream_, flags, n, partial, total);
    Moments host;
    backend_.copy_to_host(&host, total, sizeof(host));
    return static_cast<int64_t>(host.count);
  }

 private:
  // Scratch for reduce_blocks(n) partial results of type T (grown, never shrunk).
  template <class T>
  T* partials(int64_t n) {
    const std::size_t need = static_cast<std::size_t>(cuda::reduce_blocks(n) + 1) * sizeof(T);
    if (scratch_.size() < need) scratch_ = Buffer<unsigned char>(backend_, need);
    return reinterpret_cast<T*>(scratch_.data());
  }

  Backend& backend_;
  cudaStream_t stream_;
  Buffer<unsigned char> scratch_;
};

}  // namespace

std::unique_ptr<RlOps> make_cuda_rl_ops(Backend& backend) {
  return std::make_unique<CudaRlOps>(backend);
}

}  // namespace batchpole
