// The batched operations of the trainers: returns, masks, normalisation and the reductions of
// a rollout. One call runs one element function of rl_kernels.hpp over the rollout, on the
// backend's device and stream; results the GPU consumes stay in device memory, and only
// read_*() synchronise. Trainers are written once against this, NnOps and the model.
#pragma once

#include <cstdint>
#include <memory>

#include "batchpole/backend.hpp"
#include "batchpole/rl_kernels.hpp"

namespace batchpole {

class RlOps {
 public:
  RlOps() = default;
  RlOps(const RlOps&) = delete;
  RlOps& operator=(const RlOps&) = delete;
  virtual ~RlOps() = default;

  // One thread (GPU) or loop iteration (CPU) per env: discounted_returns_env.
  virtual void returns(const ReturnsArgs& args) = 0;
  // first_episode_mask_env over the N envs of a T x N rollout.
  virtual void first_episode_mask(const uint8_t* terminated, const uint8_t* truncated,
                                  int64_t steps, int64_t envs, uint8_t* mask) = 0;
  // ended[i] |= terminated[i] | truncated[i], n elements.
  virtual void mark_ended(uint8_t* ended, const uint8_t* terminated, const uint8_t* truncated,
                          int64_t n) = 0;
  // out[i] = a[i] - b[i].
  virtual void subtract(const float* a, const float* b, int64_t n, float* out) = 0;
  // Moments of x over the masked elements into *out (device memory).
  virtual void moments(const float* x, const uint8_t* mask, int64_t n, Moments* out) = 0;
  // x = normalized(x, *m, eps) where the mask is set (everywhere without a mask).
  virtual void normalize(float* x, const uint8_t* mask, int64_t n, const Moments* m,
                         float eps) = 0;
  // The episodes that ended within rows [0, n) into *out (device memory).
  virtual void episode_tally(const EpisodeRows& rows, int64_t n, EpisodeTally* out) = 0;
  // Number of nonzero bytes, read back to the host (synchronises).
  virtual int64_t count_nonzero(const uint8_t* flags, int64_t n) = 0;
};

std::unique_ptr<RlOps> make_rl_ops(Backend& backend);

}  // namespace batchpole
