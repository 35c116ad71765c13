// RlOps on the GPU: launcher calls on the device's stream, with a scratch buffer for the
// partial sums of the reductions.
#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "batchpole/device/buffer.hpp"
#include "batchpole/rl/rl_ops.hpp"
#include "cuda_check.cuh"
#include "cuda_ops.cuh"
#include "rl_ops.cuh"

namespace batchpole {

namespace {

class CudaRlOps final : public RlOps {
 public:
  CudaRlOps(Device& device, cudaStream_t stream) : RlOps(device), stream_(stream) {}

 protected:
  void do_returns(const ReturnsArgs& args) override { cuda::launch_returns(stream_, args); }
  void do_gae(const GaeArgs& args) override { cuda::launch_gae(stream_, args); }
  void do_gather_minibatch(const MinibatchArgs& args) override {
    cuda::launch_gather_minibatch(stream_, args);
  }
  void do_replay_store(const ReplayStoreArgs& args) override {
    cuda::launch_replay_store(stream_, args);
  }
  void do_replay_sample(const ReplaySampleArgs& args) override {
    cuda::launch_replay_sample(stream_, args);
  }
  void do_td_targets(const TdTargetArgs& args) override { cuda::launch_td_targets(stream_, args); }
  void do_first_episode_mask(const uint8_t* terminated, const uint8_t* truncated, int64_t steps,
                             int64_t envs, uint8_t* mask, int64_t agents, int64_t stride) override {
    cuda::launch_first_episode_mask(stream_, terminated, truncated, steps, envs, mask, agents,
                                    stride);
  }
  void do_mark_ended(uint8_t* ended, const uint8_t* terminated, const uint8_t* truncated, int64_t n,
                     int64_t* ended_count, int64_t agents, int64_t stride) override {
    cuda::launch_mark_ended(stream_, ended, terminated, truncated, n, ended_count, agents, stride);
  }
  void do_subtract(const float* a, const float* b, int64_t n, float* out) override {
    cuda::launch_subtract(stream_, a, b, n, out);
  }
  void do_moments(const float* x, const uint8_t* mask, int64_t n, Moments* out, int64_t agents,
                  int64_t stride) override {
    cuda::launch_moments(stream_, x, mask, n, partials<Moments>(n, agents), out, agents, stride);
  }
  void do_normalize(float* x, const uint8_t* mask, int64_t n, const Moments* m, float eps,
                    int64_t agents, int64_t stride) override {
    cuda::launch_normalize(stream_, x, mask, n, m, eps, agents, stride);
  }
  void do_episode_tally(const EpisodeRows& rows, int64_t n, EpisodeTally* out, int64_t agents,
                        int64_t stride) override {
    cuda::launch_episode_tally(stream_, rows, n, partials<EpisodeTally>(n, agents), out, agents,
                               stride);
  }

 private:
  // Scratch for agents x reduce_blocks(n) partial results of type T (grown, never shrunk, and
  // what it outgrew kept: a recorded update's graph may still name it).
  template <class T>
  T* partials(int64_t n, int64_t agents) {
    const std::size_t need =
        static_cast<std::size_t>(agents * cuda::reduce_blocks(n) + 1) * sizeof(T);
    if (scratch_.size() < need) {
      outgrown_.push_back(std::move(scratch_));
      scratch_ = Buffer<unsigned char>(device(), need);
    }
    return reinterpret_cast<T*>(scratch_.data());
  }

  cudaStream_t stream_;
  Buffer<unsigned char> scratch_;
  std::vector<Buffer<unsigned char>> outgrown_;
};

}  // namespace

}  // namespace batchpole

namespace batchpole::cuda {

std::unique_ptr<RlOps> make_rl_ops(Device& device, cudaStream_t stream) {
  return std::make_unique<CudaRlOps>(device, stream);
}

}  // namespace batchpole::cuda
