// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
// counter-based generator of Random123, usable on host and device. A draw is a pure function of
// (key, counter), so results never depend on batch layout, thread count or device.
#pragma once

#include <array>
#include <cstdint>

#include "batchpole/core/common.hpp"

namespace batchpole {

struct Philox4x32 {
  using Counter = std::array<uint32_t, 4>;
  using Key = std::array<uint32_t, 2>;

  static constexpr uint32_t kM0 = 0xD2511F53U;
  static constexpr uint32_t kM1 = 0xCD9E8D57U;
  static constexpr uint32_t kW0 = 0x9E3779B9U;  // golden ratio
  static constexpr uint32_t kW1 = 0xBB67AE85U;  // sqrt(3) - 1

  BP_HD static Counter round(Counter c, Key k) {
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c[2];
    const auto hi0 = static_cast<uint32_t>(p0 >> 32U);
    const auto lo0 = static_cast<uint32_t>(p0);
    const auto hi1 = static_cast<uint32_t>(p1 >> 32U);
    const auto lo1 = static_cast<uint32_t>(p1);
    return {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
  }

  // Ten rounds, the key bumped between rounds.
  BP_HD static Counter generate(Counter c, Key k) {
    for (int r = 0; r < 10; ++r) {
      c = round(c, k);
      k[0] += kW0;
      k[1] += kW1;
    }
    return c;
  }
};

// What a draw is for. Each purpose has its own counter space, so a reset draw can never equal
// an action draw whatever the counters are.
enum class Stream : uint32_t {
  kReset = 1,         // (env, episode number of that env)
  kBenchAction = 2,   // (env, step / 128): 128 random action bits per draw
  kPolicyAction = 3,  // (env, update-step counter): sampling from the policy
  kInit = 4,          // (parameter block, element / 4): network initialisation
  kPolicyNoise = 5,   // (env, 2 * step + k / 4): the Gaussian policy's noise, 4 normals per draw
  kExplore = 6,       // (env, acting step): epsilon-greedy exploration (DQN)
  kReplay = 7,        // (minibatch row, minibatch number): replay-buffer sampling (DQN)
};

// One draw of 128 bits for (seed, stream, a, b), where `a` is usually an environment index and
// `b` a 64-bit counter.
BP_HD Philox4x32::Counter philox_draw(uint64_t seed, Stream stream, uint32_t a, uint64_t b) {
  const Philox4x32::Key key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32U)};
  const Philox4x32::Counter ctr = {a, static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32U),
                                   static_cast<uint32_t>(stream)};
  return Philox4x32::generate(ctr, key);
}

// Uniform in [0, 1) with 24 bits (float), 32 bits (double from one word, exact) or 53 bits
// (double from two words).
BP_HD float uniform_float(uint32_t u) { return static_cast<float>(u >> 8U) * 0x1.0p-24f; }
BP_HD double uniform_double32(uint32_t u) { return static_cast<double>(u) * 0x1.0p-32; }
BP_HD double uniform_double(uint32_t hi, uint32_t lo) {
  return (static_cast<double>(hi >> 5U) * 67108864.0 + static_cast<double>(lo >> 6U)) * 0x1.0p-53;
}

// The random benchmark action of env `env` at global step `step`: bit step % 128 of one draw.
BP_HD int32_t bench_action(uint64_t seed, uint32_t env, uint64_t step) {
  const auto r = philox_draw(seed, Stream::kBenchAction, env, step >> 7U);
  const uint32_t bit = static_cast<uint32_t>(step) & 127U;
  return static_cast<int32_t>((r[bit >> 5U] >> (bit & 31U)) & 1U);
}

}  // namespace batchpole
