// The batched operations of the trainers: returns, masks, normalisation and the reductions of
// a rollout. One call runs one element function of rl_elements.hpp over the rollout, on the
// device's stream; results stay in device memory, so no call here waits for the device.
// Trainers are written once against this, NnOps and the model. The public calls check their
// arguments and count one stream operation each (host/rl/rl_ops.cpp); the implementations are
// host/cpu/cpu_rl_ops.cpp and kernels/cuda_rl_ops.cu.
#pragma once

#include <cstdint>

#include "batchpole/device/device.hpp"
#include "batchpole/rl/rl_elements.hpp"

namespace batchpole {

// A population's calls cover `agents` agents whose rows start `stride` rows apart (the
// agent-major layout of rl_elements.hpp); `n` or the steps and envs are then each agent's, the
// per-env arrays and the results (counts, moments, tallies) one per agent, packed. On the CPU
// each agent's part is computed exactly as the same call on that agent alone.
class RlOps {
 public:
  explicit RlOps(Device& device) : device_(&device) {}
  RlOps(const RlOps&) = delete;
  RlOps& operator=(const RlOps&) = delete;
  virtual ~RlOps() = default;

  // One thread (GPU) or loop iteration (CPU) per env: discounted_returns_env.
  void returns(const ReturnsArgs& args);
  // gae_env over the N envs: advantages and value targets.
  void gae(const GaeArgs& args);
  // gather_minibatch_row over the minibatch's rows.
  void gather_minibatch(const MinibatchArgs& args);
  // DQN: replay_store_row over the rollout's rows (at most the capacity), replay_sample_row
  // over the minibatch's rows, td_target_row over its rows. A population: every agent's rows,
  // each into or from its own buffer as its ReplayCursor says.
  void replay_store(const ReplayStoreArgs& args);
  void replay_sample(const ReplaySampleArgs& args);
  void td_targets(const TdTargetArgs& args);
  // first_episode_mask_env over the N envs of a T x N rollout.
  void first_episode_mask(const uint8_t* terminated, const uint8_t* truncated, int64_t steps,
                          int64_t envs, uint8_t* mask, int64_t agents = 1, int64_t stride = 0);
  // ended[i] |= terminated[i] | truncated[i] over n envs; *ended_count (device memory) grows by
  // the number of envs whose flag went from 0 to 1, so that it counts the envs that have ended.
  // A population: ended packed (agents x n), the flags at rows k * stride + j, one count each.
  void mark_ended(uint8_t* ended, const uint8_t* terminated, const uint8_t* truncated, int64_t n,
                  int64_t* ended_count, int64_t agents = 1, int64_t stride = 0);
  // out[i] = a[i] - b[i].
  void subtract(const float* a, const float* b, int64_t n, float* out);
  // Moments of x over the masked elements into *out (device memory), summed in blocks of
  // kReduceBlock elements and then the blocks in order.
  void moments(const float* x, const uint8_t* mask, int64_t n, Moments* out, int64_t agents = 1,
               int64_t stride = 0);
  // x = normalized(x, *m, eps) where the mask is set (everywhere without a mask).
  void normalize(float* x, const uint8_t* mask, int64_t n, const Moments* m, float eps,
                 int64_t agents = 1, int64_t stride = 0);
  // The episodes that ended within rows [0, n) into *out (device memory).
  void episode_tally(const EpisodeRows& rows, int64_t n, EpisodeTally* out, int64_t agents = 1,
                     int64_t stride = 0);

 protected:
  [[nodiscard]] Device& device() const { return *device_; }

  // Called with checked arguments; sizes may be 0 only where a result must still be written
  // (moments, episode_tally). stride is n (or steps x envs) for one agent.
  virtual void do_returns(const ReturnsArgs& args) = 0;
  virtual void do_gae(const GaeArgs& args) = 0;
  virtual void do_gather_minibatch(const MinibatchArgs& args) = 0;
  virtual void do_replay_store(const ReplayStoreArgs& args) = 0;
  virtual void do_replay_sample(const ReplaySampleArgs& args) = 0;
  virtual void do_td_targets(const TdTargetArgs& args) = 0;
  virtual void do_first_episode_mask(const uint8_t* terminated, const uint8_t* truncated,
                                     int64_t steps, int64_t envs, uint8_t* mask, int64_t agents,
                                     int64_t stride) = 0;
  virtual void do_mark_ended(uint8_t* ended, const uint8_t* terminated, const uint8_t* truncated,
                             int64_t n, int64_t* ended_count, int64_t agents,
                             int64_t stride) = 0;
  virtual void do_subtract(const float* a, const float* b, int64_t n, float* out) = 0;
  virtual void do_moments(const float* x, const uint8_t* mask, int64_t n, Moments* out,
                          int64_t agents, int64_t stride) = 0;
  virtual void do_normalize(float* x, const uint8_t* mask, int64_t n, const Moments* m, float eps,
                            int64_t agents, int64_t stride) = 0;
  virtual void do_episode_tally(const EpisodeRows& rows, int64_t n, EpisodeTally* out,
                                int64_t agents, int64_t stride) = 0;

 private:
  Device* device_;
};

}  // namespace batchpole
