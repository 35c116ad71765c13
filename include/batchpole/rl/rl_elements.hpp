// Element functions of the trainers (returns, masks, normalisation, reductions), one per
// environment or per element, called by the CPU loops (host/cpu/cpu_rl_ops.cpp) and the CUDA
// kernels (kernels/rl_*.cu) alike.
//
// A rollout of T steps of N environments is stored time-major: row t * N + env.
#pragma once

#include <cmath>
#include <cstdint>

#include "batchpole/core/common.hpp"
#include "batchpole/core/random.hpp"
#include "batchpole/nn/nn_elements.hpp"

namespace batchpole {

struct ReturnsArgs {
  const float* rewards = nullptr;       // T x N
  const uint8_t* terminated = nullptr;  // T x N
  const uint8_t* truncated = nullptr;   // T x N
  // V(s_T): the value of the observation after the last step, per env; nullptr = 0 (REINFORCE).
  const float* last_value = nullptr;
  // V(final_obs) of the rows that were truncated; nullptr = 0 (no bootstrap on truncation).
  const float* truncation_value = nullptr;  // T x N
  float gamma = 0.99f;
  int64_t steps = 0;         // T
  int64_t envs = 0;          // N
  float* returns = nullptr;  // T x N, written
};

// Discounted returns of env `i`, backwards in time: G = r on termination (no future), G = r +
// gamma V(final_obs) on truncation (the episode was cut, not over), G = r + gamma G otherwise;
// the last row bootstraps from V(s_T). With a rollout of n steps this is A2C's n-step return
// ("up to n": row t looks T - t steps ahead), with whole episodes it is REINFORCE's G_t.
BP_HD void discounted_returns_env(const ReturnsArgs& a, int64_t i) {
  float g = a.last_value != nullptr ? a.last_value[i] : 0.0f;
  for (int64_t t = a.steps - 1; t >= 0; --t) {
    const int64_t k = t * a.envs + i;
    const float r = a.rewards[k];
    if (a.terminated[k] != 0) {
      g = r;
    } else if (a.truncated[k] != 0) {
      g = r + a.gamma * (a.truncation_value != nullptr ? a.truncation_value[k] : 0.0f);
    } else {
      g = r + a.gamma * g;
    }
    a.returns[k] = g;
  }
}

// Generalised advantage estimation (Schulman et al. 2016) for env `i`, backwards in time:
//   delta_t = r_t + gamma V(next) - V(s_t),  A_t = delta_t + gamma lambda A_{t+1},
// where V(next) is 0 after a termination, V(final obs) after a truncation (the chain of
// advantages is cut at both), V(s_{t+1}) otherwise and V(s_T) after the last row. The value
// targets are A_t + V(s_t). With lambda = 1 these are the n-step returns of ReturnsArgs.
struct GaeArgs {
  const float* rewards = nullptr;           // T x N
  const uint8_t* terminated = nullptr;      // T x N
  const uint8_t* truncated = nullptr;       // T x N
  const float* values = nullptr;            // T x N: V(s_t) when acting
  const float* last_value = nullptr;        // N: V(s_T)
  const float* truncation_value = nullptr;  // T x N: V(final obs) where truncated; nullptr = 0
  float gamma = 0.99f;
  float lambda = 0.95f;
  int64_t steps = 0;  // T
  int64_t envs = 0;   // N
  float* advantages = nullptr;  // T x N, written
  float* returns = nullptr;     // T x N, written
};

BP_HD void gae_env(const GaeArgs& a, int64_t i) {
  float advantage = 0.0f;
  for (int64_t t = a.steps - 1; t >= 0; --t) {
    const int64_t k = t * a.envs + i;
    const bool term = a.terminated[k] != 0;
    const bool trunc = a.truncated[k] != 0;
    float next_value;
    if (term) {
      next_value = 0.0f;
    } else if (trunc) {
      next_value = a.truncation_value != nullptr ? a.truncation_value[k] : 0.0f;
    } else {
      next_value = t + 1 < a.steps ? a.values[k + a.envs] : a.last_value[i];
    }
    const float delta = a.rewards[k] + a.gamma * next_value - a.values[k];
    advantage = delta + (term || trunc ? 0.0f : a.gamma * a.lambda * advantage);
    a.advantages[k] = advantage;
    a.returns[k] = advantage + a.values[k];
  }
}

// A pseudorandom permutation of [0, rows), keyed by (seed, update, epoch): PPO's minibatches
// are rows shuffle_index(key, m * B) ... of the rollout. A balanced Feistel network on 2h bits
// (4 rounds of a 32-bit mix) with cycle walking onto [0, rows): each index is computed on its
// own, so the same key gives the same minibatches on every device and thread count, with no
// sort and no stored permutation.
struct ShuffleKey {
  uint64_t key = 0;
  uint64_t rows = 0;
  uint32_t half_bits = 1;  // the permuted domain is [0, 4^half_bits), at least rows
};

BP_HD uint32_t shuffle_mix(uint32_t x, uint32_t key) {
  // murmur3's finaliser over x ^ key: a bijection with good avalanche.
  x ^= key;
  x ^= x >> 16U;
  x *= 0x85EBCA6BU;
  x ^= x >> 13U;
  x *= 0xC2B2AE35U;
  x ^= x >> 16U;
  return x;
}

inline ShuffleKey make_shuffle_key(uint64_t seed, uint64_t update, uint64_t epoch, uint64_t rows) {
  ShuffleKey k;
  k.key = seed * 0x9E3779B97F4A7C15ULL ^ (update + 1) * 0xBF58476D1CE4E5B9ULL ^
          (epoch + 1) * 0x94D049BB133111EBULL;
  k.rows = rows;
  while ((uint64_t{1} << (2 * k.half_bits)) < rows) ++k.half_bits;
  return k;
}

BP_HD uint64_t shuffle_index(const ShuffleKey& k, uint64_t i) {
  const uint64_t mask = (uint64_t{1} << k.half_bits) - 1;
  uint64_t x = i;
  do {
    uint64_t left = x >> k.half_bits;
    uint64_t right = x & mask;
    for (uint32_t round = 0; round < 4; ++round) {
      const auto round_key = static_cast<uint32_t>(k.key >> (16U * round)) ^ (round * 0x27D4EB2DU);
      const uint64_t f = shuffle_mix(static_cast<uint32_t>(right), round_key) & mask;
      const uint64_t next = left ^ f;
      left = right;
      right = next;
    }
    x = (left << k.half_bits) | right;
  } while (x >= k.rows);
  return x;
}

// One minibatch of a rollout, gathered into contiguous rows: row j of the minibatch is row
// shuffle_index(key, first + j) of the rollout.
struct MinibatchArgs {
  ShuffleKey key;
  int64_t first = 0;  // position in the shuffled order
  int64_t rows = 0;   // B
  int32_t obs_dim = 4;
  const float* obs = nullptr;        // rollout rows x obs_dim, and the others rollout rows
  const int32_t* actions = nullptr;  // discrete actions, or nullptr
  // Continuous actions (rollout rows x action_dim), or nullptr.
  const float* continuous_actions = nullptr;
  int32_t action_dim = 1;
  float* out_continuous_actions = nullptr;  // B x action_dim
  const float* log_prob = nullptr;
  const float* advantages = nullptr;
  const float* returns = nullptr;
  const float* values = nullptr;
  float* out_obs = nullptr;  // B x obs_dim, and the others B
  int32_t* out_actions = nullptr;
  float* out_log_prob = nullptr;
  float* out_advantages = nullptr;
  float* out_returns = nullptr;
  float* out_values = nullptr;
};

BP_HD void gather_minibatch_row(const MinibatchArgs& a, int64_t j) {
  const auto src = static_cast<int64_t>(shuffle_index(a.key, static_cast<uint64_t>(a.first + j)));
  for (int32_t d = 0; d < a.obs_dim; ++d) a.out_obs[j * a.obs_dim + d] = a.obs[src * a.obs_dim + d];
  if (a.actions != nullptr) a.out_actions[j] = a.actions[src];
  if (a.continuous_actions != nullptr) {
    for (int32_t k = 0; k < a.action_dim; ++k) {
      a.out_continuous_actions[j * a.action_dim + k] = a.continuous_actions[src * a.action_dim + k];
    }
  }
  a.out_log_prob[j] = a.log_prob[src];
  a.out_advantages[j] = a.advantages[src];
  a.out_returns[j] = a.returns[src];
  a.out_values[j] = a.values[src];
}

// ---------------------------------------------------------------------------------------------
// DQN: the replay buffer (fixed capacity, circular, structure of arrays on the device) and the
// TD targets.

struct ReplayArrays {
  float* obs = nullptr;  // capacity x obs_dim
  int32_t* actions = nullptr;
  float* rewards = nullptr;
  uint8_t* terminated = nullptr;  // 1: no bootstrap (the episode is over, not just cut)
  float* next_obs = nullptr;      // capacity x obs_dim: the observation the action led to
  int64_t capacity = 0;
  int32_t obs_dim = 4;
};

// Rows [0, rows) of a T x N rollout into the slots (position + k) % capacity, k the row. The
// next observation of row k is row k + N of the rollout's observations, unless the episode ended
// at row k: with same-step auto-reset that row already holds the next episode's first
// observation, and the ended episode's last one is final_obs (so a truncated transition still
// bootstraps from where it stopped). rows <= capacity (no two rows share a slot).
struct ReplayStoreArgs {
  ReplayArrays replay;
  int64_t position = 0;        // the slot of row 0, in [0, capacity)
  int64_t rows = 0;            // T x N
  int64_t envs = 0;            // N
  const float* obs = nullptr;  // (rows + N) x obs_dim
  const int32_t* actions = nullptr;
  const float* rewards = nullptr;
  const uint8_t* terminated = nullptr;
  const uint8_t* truncated = nullptr;
  const float* final_obs = nullptr;  // rows x obs_dim, valid where an episode ended
};

BP_HD void replay_store_row(const ReplayStoreArgs& a, int64_t k) {
  const ReplayArrays& r = a.replay;
  const int64_t slot = (a.position + k) % r.capacity;
  const bool ended = (a.terminated[k] | a.truncated[k]) != 0;
  const float* next = ended ? a.final_obs + k * r.obs_dim : a.obs + (k + a.envs) * r.obs_dim;
  for (int32_t d = 0; d < r.obs_dim; ++d) {
    r.obs[slot * r.obs_dim + d] = a.obs[k * r.obs_dim + d];
    r.next_obs[slot * r.obs_dim + d] = next[d];
  }
  r.actions[slot] = a.actions[k];
  r.rewards[slot] = a.rewards[k];
  r.terminated[slot] = a.terminated[k];
}

// A minibatch drawn uniformly, with replacement, from slots [0, size): row j is slot
// replay_index(seed, draw, j, size), a pure function of (seed, minibatch number, row), so the
// same on every device and thread count.
struct ReplaySampleArgs {
  ReplayArrays replay;  // read
  int64_t size = 0;     // filled slots, 1 <= size <= capacity
  uint64_t seed = 0;
  uint64_t draw = 0;     // the minibatch's number
  int64_t rows = 0;      // B
  float* obs = nullptr;  // B x obs_dim, and the others B
  int32_t* actions = nullptr;
  float* rewards = nullptr;
  uint8_t* terminated = nullptr;
  float* next_obs = nullptr;
};

// 64 random bits modulo size: the bias, at most size / 2^64, is far below anything measurable.
BP_HD int64_t replay_index(uint64_t seed, uint64_t draw, int64_t j, int64_t size) {
  const auto r = philox_draw(seed, Stream::kReplay, static_cast<uint32_t>(j), draw);
  const uint64_t bits = (static_cast<uint64_t>(r[0]) << 32U) | r[1];
  return static_cast<int64_t>(bits % static_cast<uint64_t>(size));
}

BP_HD void replay_sample_row(const ReplaySampleArgs& a, int64_t j) {
  const ReplayArrays& r = a.replay;
  const int64_t slot = replay_index(a.seed, a.draw, j, a.size);
  for (int32_t d = 0; d < r.obs_dim; ++d) {
    a.obs[j * r.obs_dim + d] = r.obs[slot * r.obs_dim + d];
    a.next_obs[j * r.obs_dim + d] = r.next_obs[slot * r.obs_dim + d];
  }
  a.actions[j] = r.actions[slot];
  a.rewards[j] = r.rewards[slot];
  a.terminated[j] = r.terminated[slot];
}

// The TD target of a sampled transition: y = r where it terminated, else
// y = r + gamma Q_target(s', a*) with a* = argmax Q_target(s', .) (DQN) or, given the online
// network's Q-values of s', a* = argmax Q_online(s', .) (double DQN, van Hasselt et al. 2016).
// A truncated transition is not terminated: it bootstraps from its stored final observation.
struct TdTargetArgs {
  const float* rewards = nullptr;        // B
  const uint8_t* terminated = nullptr;   // B
  const float* next_q_target = nullptr;  // B x num_actions
  const float* next_q_online = nullptr;  // B x num_actions, or nullptr (plain DQN)
  int32_t num_actions = 2;
  float gamma = 0.99f;
  int64_t rows = 0;
  float* targets = nullptr;  // B, written
};

BP_HD void td_target_row(const TdTargetArgs& a, int64_t j) {
  const int32_t n = a.num_actions;
  const float* target_q = a.next_q_target + j * n;
  const int32_t best =
      argmax_row(a.next_q_online != nullptr ? a.next_q_online + j * n : target_q, n);
  const float bootstrap = a.gamma * target_q[best];
  a.targets[j] = a.terminated[j] != 0 ? a.rewards[j] : a.rewards[j] + bootstrap;
}

// mask[t, i] = 1 up to and including the step that ends env i's first episode of the rollout,
// 0 after it: the rollout holds exactly one complete episode per env (REINFORCE). Returns 1 when
// that episode ended within the rollout.
BP_HD uint8_t first_episode_mask_env(const uint8_t* terminated, const uint8_t* truncated,
                                     int64_t steps, int64_t envs, int64_t i, uint8_t* mask) {
  uint8_t live = 1;
  for (int64_t t = 0; t < steps; ++t) {
    const int64_t k = t * envs + i;
    mask[k] = live;
    if ((terminated[k] | truncated[k]) != 0) live = 0;
  }
  return static_cast<uint8_t>(1 - live);
}

// Moments of the masked samples, the partial sums of one block of elements. Accumulated in
// double so that a million-sample batch keeps float precision.
struct Moments {
  double count = 0, sum = 0, sum_sq = 0;
};

BP_HD Moments add(Moments a, const Moments& b) {
  a.count += b.count;
  a.sum += b.sum;
  a.sum_sq += b.sum_sq;
  return a;
}

// Element k's share of the moments of the masked samples of x.
BP_HD Moments moments_row(const float* x, const uint8_t* mask, int64_t k) {
  Moments m;
  if (mask == nullptr || mask[k] != 0) {
    const double v = x[k];
    m.count = 1;
    m.sum = v;
    m.sum_sq = v * v;
  }
  return m;
}

// (x - mean) / (std + eps) with the unbiased std, as torch's (x - x.mean()) / (x.std() + eps).
BP_HD float normalized(float x, const Moments& m, float eps) {
  const double mean = m.sum / (m.count > 0 ? m.count : 1.0);
  const double var = m.count > 1 ? (m.sum_sq - m.count * mean * mean) / (m.count - 1) : 0.0;
  const double sd = var > 0 ? std::sqrt(var) : 0.0;
  return static_cast<float>((static_cast<double>(x) - mean) / (sd + eps));
}

// Statistics of the episodes that ended in a rollout (at rows where terminated or truncated,
// and valid under the mask when there is one).
struct EpisodeTally {
  double episodes = 0, return_sum = 0, return_sq = 0, length_sum = 0;
  double return_min = 1e300, return_max = -1e300, length_min = 1e300, length_max = -1e300;
  double truncations = 0;
};

BP_HD EpisodeTally add(EpisodeTally a, const EpisodeTally& b) {
  a.episodes += b.episodes;
  a.return_sum += b.return_sum;
  a.return_sq += b.return_sq;
  a.length_sum += b.length_sum;
  a.return_min = a.return_min < b.return_min ? a.return_min : b.return_min;
  a.return_max = a.return_max > b.return_max ? a.return_max : b.return_max;
  a.length_min = a.length_min < b.length_min ? a.length_min : b.length_min;
  a.length_max = a.length_max > b.length_max ? a.length_max : b.length_max;
  a.truncations += b.truncations;
  return a;
}

struct EpisodeRows {
  const uint8_t* terminated = nullptr;
  const uint8_t* truncated = nullptr;
  const float* final_return = nullptr;
  const int32_t* final_length = nullptr;
  const uint8_t* mask = nullptr;  // nullptr: every row counts
};

BP_HD EpisodeTally episode_tally_row(const EpisodeRows& r, int64_t k) {
  EpisodeTally t;
  const bool ended = (r.terminated[k] | r.truncated[k]) != 0;
  const bool valid = r.mask == nullptr || r.mask[k] != 0;
  if (ended && valid) {
    const double ret = r.final_return[k];
    const double len = r.final_length[k];
    t.episodes = 1;
    t.return_sum = ret;
    t.return_sq = ret * ret;
    t.length_sum = len;
    t.return_min = t.return_max = ret;
    t.length_min = t.length_max = len;
    t.truncations = r.truncated[k] != 0 ? 1 : 0;
  }
  return t;
}

// Fixed-size blocks of a reduction: partial sums per block, then the blocks in order. The
// result then depends neither on the thread count nor on the device.
constexpr int64_t kReduceBlock = 4096;

}  // namespace batchpole
