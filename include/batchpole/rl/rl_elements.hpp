// Element functions of the trainers (returns, masks, normalisation, reductions), one per
// environment or per element, called by the CPU loops (host/cpu/cpu_rl_ops.cpp) and the CUDA
// kernels (kernels/rl_*.cu) alike.
//
// A rollout of T steps of N environments is stored time-major: row t * N + env. A population's
// rollout holds one such block per agent, agent-major: agent k's row t * N + env is row
// k * agent_stride + t * N + env of the arrays, and its per-env arrays (V(s_T), the ended
// flags) are packed, agent k's env j at k * N + j. The per-env functions below then run over
// agents * N envs, env i being agent i / N's env i % N.
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
  int64_t agents = 1;        // a population: agents blocks of T x N rows,
  int64_t agent_stride = 0;  // agent_stride rows apart
};

// Where env i's row t is, and where its per-env entries are (i itself).
BP_HD int64_t rollout_row(int64_t envs, int64_t agent_stride, int64_t i, int64_t t) {
  const int64_t agent = i / envs;
  return agent * agent_stride + t * envs + (i - agent * envs);
}

// Discounted returns of env `i`, backwards in time: G = r on termination (no future), G = r +
// gamma V(final_obs) on truncation (the episode was cut, not over), G = r + gamma G otherwise;
// the last row bootstraps from V(s_T). With a rollout of n steps this is A2C's n-step return
// ("up to n": row t looks T - t steps ahead), with whole episodes it is REINFORCE's G_t.
BP_HD void discounted_returns_env(const ReturnsArgs& a, int64_t i) {
  float g = a.last_value != nullptr ? a.last_value[i] : 0.0f;
  const int64_t first = rollout_row(a.envs, a.agent_stride, i, 0);
  for (int64_t t = a.steps - 1; t >= 0; --t) {
    const int64_t k = first + t * a.envs;
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
  int64_t steps = 0;            // T
  int64_t envs = 0;             // N
  float* advantages = nullptr;  // T x N, written
  float* returns = nullptr;     // T x N, written
  int64_t agents = 1;           // a population, as ReturnsArgs
  int64_t agent_stride = 0;
};

BP_HD void gae_env(const GaeArgs& a, int64_t i) {
  float advantage = 0.0f;
  const int64_t first = rollout_row(a.envs, a.agent_stride, i, 0);
  for (int64_t t = a.steps - 1; t >= 0; --t) {
    const int64_t k = first + t * a.envs;
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

// The key of a seed's shuffle: the seed's part xor the (update, epoch) part.
BP_HD uint64_t shuffle_seed_part(uint64_t seed) { return seed * 0x9E3779B97F4A7C15ULL; }

inline ShuffleKey make_shuffle_key(uint64_t seed, uint64_t update, uint64_t epoch, uint64_t rows) {
  ShuffleKey k;
  k.key = shuffle_seed_part(seed) ^ (update + 1) * 0xBF58476D1CE4E5B9ULL ^
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
// shuffle_index(key, first + j) of the rollout. A population: one minibatch of `rows` rows per
// agent, packed agent after agent; agent k's rows come from its block of the rollout
// (agent_stride rows apart) in the order of its own key, make_shuffle_key(seeds[k], ...), which
// is key.key ^ shuffle_seed_part(seed) ^ shuffle_seed_part(seeds[k]) (key: made with `seed`).
struct MinibatchArgs {
  ShuffleKey key;
  // When set, key.key is read here instead (device memory: an update that the device records
  // passes the same arguments every update).
  const uint64_t* key_word = nullptr;
  uint64_t seed = 0;
  int64_t agents = 1;
  int64_t agent_stride = 0;
  const uint64_t* seeds = nullptr;  // agents > 1: per agent (device memory)
  int64_t first = 0;                // position in the shuffled order
  int64_t rows = 0;                 // B
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

BP_HD void gather_minibatch_row(const MinibatchArgs& a, int64_t g) {
  // g: the row over all agents' minibatches; j: within agent k's.
  const int64_t k = a.agents > 1 ? g / a.rows : 0;
  const int64_t j = g - k * a.rows;
  ShuffleKey key = a.key;
  if (a.key_word != nullptr) key.key = *a.key_word;
  if (a.agents > 1) key.key ^= shuffle_seed_part(a.seed) ^ shuffle_seed_part(a.seeds[k]);
  const auto src = k * a.agent_stride +
                   static_cast<int64_t>(shuffle_index(key, static_cast<uint64_t>(a.first + j)));
  for (int32_t d = 0; d < a.obs_dim; ++d) a.out_obs[g * a.obs_dim + d] = a.obs[src * a.obs_dim + d];
  if (a.actions != nullptr) a.out_actions[g] = a.actions[src];
  if (a.continuous_actions != nullptr) {
    for (int32_t d = 0; d < a.action_dim; ++d) {
      a.out_continuous_actions[g * a.action_dim + d] = a.continuous_actions[src * a.action_dim + d];
    }
  }
  a.out_log_prob[g] = a.log_prob[src];
  a.out_advantages[g] = a.advantages[src];
  a.out_returns[g] = a.returns[src];
  a.out_values[g] = a.values[src];
}

// ---------------------------------------------------------------------------------------------
// DQN: the replay buffer (fixed capacity, circular, structure of arrays on the device) and the
// TD targets. A population's agents each have a buffer of `capacity` slots, agent k's slots
// [k * capacity, (k + 1) * capacity) of the arrays, and a cursor of their own.

struct ReplayArrays {
  float* obs = nullptr;  // capacity x obs_dim (of each agent)
  int32_t* actions = nullptr;
  float* rewards = nullptr;
  uint8_t* terminated = nullptr;  // 1: no bootstrap (the episode is over, not just cut)
  float* next_obs = nullptr;      // capacity x obs_dim: the observation the action led to
  int64_t capacity = 0;
  int32_t obs_dim = 4;
};

// One agent's place in its buffer in an update of a population: where its rows go, the slots
// filled once they are stored, and its sampling key. Agents with active = 0 neither store nor
// draw.
struct ReplayCursor {
  int64_t position = 0;  // the slot of row 0 of the store, in [0, capacity)
  int64_t size = 0;      // filled slots after the store
  uint64_t seed = 0;     // the agent's seed (Stream::kReplay)
  uint64_t draw = 0;     // the number of its update's first minibatch
  uint8_t active = 1;
};

// Rows [0, rows) of a T x N rollout into the slots (position + k) % capacity, k the row. The
// next observation of row k is row k + N of the rollout's observations, unless the episode ended
// at row k: with same-step auto-reset that row already holds the next episode's first
// observation, and the ended episode's last one is final_obs (so a truncated transition still
// bootstraps from where it stopped). rows <= capacity (no two rows share a slot). A population:
// `rows` rows of each agent, agent k's from row k * agent_stride of the rollout into its buffer
// at cursors[k].position.
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
  int64_t agents = 1;
  int64_t agent_stride = 0;  // rollout rows between agents' blocks
  // Per agent (device memory): required with agents > 1, and with one agent it replaces
  // `position` (an update the device records passes the same arguments every update).
  const ReplayCursor* cursors = nullptr;
};

// Row g of the call: agent g / rows's row g % rows.
BP_HD void replay_store_row(const ReplayStoreArgs& a, int64_t g) {
  const ReplayArrays& r = a.replay;
  const int64_t agent = a.agents > 1 ? g / a.rows : 0;
  const int64_t k = g - agent * a.rows;
  if (a.cursors != nullptr && a.cursors[agent].active == 0) return;
  const int64_t position = a.cursors != nullptr ? a.cursors[agent].position : a.position;
  const int64_t slot = agent * r.capacity + (position + k) % r.capacity;
  const int64_t src = agent * a.agent_stride + k;
  const bool ended = (a.terminated[src] | a.truncated[src]) != 0;
  const float* next = ended ? a.final_obs + src * r.obs_dim : a.obs + (src + a.envs) * r.obs_dim;
  for (int32_t d = 0; d < r.obs_dim; ++d) {
    r.obs[slot * r.obs_dim + d] = a.obs[src * r.obs_dim + d];
    r.next_obs[slot * r.obs_dim + d] = next[d];
  }
  r.actions[slot] = a.actions[src];
  r.rewards[slot] = a.rewards[src];
  r.terminated[slot] = a.terminated[src];
}

// A minibatch drawn uniformly, with replacement, from slots [0, size): row j is slot
// replay_index(seed, draw, j, size), a pure function of (seed, minibatch number, row), so the
// same on every device and thread count. A population: `rows` rows of each agent, packed agent
// after agent, agent k's drawn from its buffer with its cursor's seed, size and draw + `draw`.
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
  int64_t agents = 1;
  // Per agent (device memory): required with agents > 1, and with one agent it replaces size,
  // seed and the draw's base (draw is then added to the cursor's).
  const ReplayCursor* cursors = nullptr;
};

// 64 random bits modulo size: the bias, at most size / 2^64, is far below anything measurable.
BP_HD int64_t replay_index(uint64_t seed, uint64_t draw, int64_t j, int64_t size) {
  const auto r = philox_draw(seed, Stream::kReplay, static_cast<uint32_t>(j), draw);
  const uint64_t bits = (static_cast<uint64_t>(r[0]) << 32U) | r[1];
  return static_cast<int64_t>(bits % static_cast<uint64_t>(size));
}

// Row g of the call: agent g / rows's row g % rows. An inactive agent's rows are left as they
// are.
BP_HD void replay_sample_row(const ReplaySampleArgs& a, int64_t g) {
  const ReplayArrays& r = a.replay;
  const int64_t agent = a.agents > 1 ? g / a.rows : 0;
  const int64_t j = g - agent * a.rows;
  int64_t slot = 0;
  if (a.cursors != nullptr) {
    const ReplayCursor& c = a.cursors[agent];
    if (c.active == 0 || c.size <= 0) return;
    slot = agent * r.capacity + replay_index(c.seed, c.draw + a.draw, j, c.size);
  } else {
    slot = replay_index(a.seed, a.draw, j, a.size);
  }
  for (int32_t d = 0; d < r.obs_dim; ++d) {
    a.obs[g * r.obs_dim + d] = r.obs[slot * r.obs_dim + d];
    a.next_obs[g * r.obs_dim + d] = r.next_obs[slot * r.obs_dim + d];
  }
  a.actions[g] = r.actions[slot];
  a.rewards[g] = r.rewards[slot];
  a.terminated[g] = r.terminated[slot];
}

// The TD target of a sampled transition: y = r where it terminated, else
// y = r + gamma Q_target(s', a*) with a* = argmax Q_target(s', .) (DQN) or, given the online
// network's Q-values of s', a* = argmax Q_online(s', .) (double DQN, van Hasselt et al. 2016).
// A truncated transition is not terminated: it bootstraps from its stored final observation.
// Row by row: a population's packed minibatches are one call.
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
                                     int64_t steps, int64_t envs, int64_t i, uint8_t* mask,
                                     int64_t agent_stride = 0) {
  uint8_t live = 1;
  const int64_t first = rollout_row(envs, agent_stride, i, 0);
  for (int64_t t = 0; t < steps; ++t) {
    const int64_t k = first + t * envs;
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
// result then depends neither on the thread count nor on the run. It does depend on the device:
// the CPU adds a block's elements in order, the GPU in 256 strided lanes and then a fixed tree
// (rl_reduce.cu), so the two agree to the rounding of double sums (~1e-15 relative), not bit for
// bit (RlOpsTest.ReductionsAreIndependentOfThreadCountAndLarge holds both to 1e-6 of float64).
constexpr int64_t kReduceBlock = 4096;

}  // namespace batchpole
