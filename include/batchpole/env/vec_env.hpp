// N CartPole environments stepped together on one device, with Gymnasium's autoreset modes
// (same-step, the trainers' and the default here; next-step; none).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "batchpole/device/device.hpp"
#include "batchpole/env/cartpole.hpp"

namespace batchpole {

// What one step returned, copied to the host (for tests, the CLI and comparisons).
struct HostStep {
  std::vector<float> obs;  // N x 4: the next observation (a new episode's first where one ended)
  std::vector<float> reward;
  std::vector<uint8_t> terminated;
  std::vector<uint8_t> truncated;
  std::vector<float> final_obs;  // N x 4, meaningful where terminated or truncated
  std::vector<float> final_return;
  std::vector<int32_t> final_length;
};

// The complete state of every environment, in double whatever the precision (both precisions
// convert exactly into double).
struct EnvState {
  std::vector<double> x, x_dot, theta, theta_dot;
  std::vector<int32_t> length;
  std::vector<float> ret;
  std::vector<uint32_t> episode;
};

// Where one step writes its outputs. Each pointer (N, or N x 4 values, on the env's device)
// replaces the env's own buffer for this step; nullptr keeps the env's own. A trainer points
// them at rows of its rollout, so that nothing is copied per step. The env's accessors (obs(),
// reward(), ..., fetch()) then read where the last step wrote, so the memory must outlive the
// next step or reset.
struct StepTargets {
  float* obs = nullptr;  // the next observations (a new episode's first where one ended)
  float* reward = nullptr;
  uint8_t* terminated = nullptr;
  uint8_t* truncated = nullptr;
  float* final_obs = nullptr;  // written only where an episode ended
  float* final_return = nullptr;
  int32_t* final_length = nullptr;
  // For a population: rows between consecutive agents' blocks in these arrays (agent k's env j
  // writes row k * agent_stride + j), which also locates the actions step() reads; 0: the
  // arrays are indexed by env.
  int64_t agent_stride = 0;
};

class VecEnv {
 public:
  VecEnv(Device& device, int64_t num_envs, const CartPoleParams& params = {},
         Precision precision = Precision::kF32, AutoresetMode autoreset = AutoresetMode::kSameStep);
  VecEnv(const VecEnv&) = delete;
  VecEnv& operator=(const VecEnv&) = delete;
  VecEnv(VecEnv&&) noexcept;
  VecEnv& operator=(VecEnv&&) noexcept;
  ~VecEnv();

  // Device memory that N environments need in the given precision (for a caller's memory
  // estimate; the device refuses an allocation that does not fit).
  static std::size_t bytes_required(int64_t num_envs, Precision precision);

  // Every env starts episode 0 from the draw (seed, env, 0).
  void reset(uint64_t seed);
  // A population: the envs are cut into seeds.size() agents of size() / seeds.size() envs, and
  // agent k's env j starts from the draw (seeds[k], j, 0), as it would in a VecEnv of its own.
  void reset(std::span<const uint64_t> seeds);
  // Data-parallel parts (rl/data_parallel.hpp): from the next reset or restore on, env i's
  // draws are keyed by first_env + i, its index in the whole batch, whatever the agents (the
  // parts, which then share one seed).
  void set_global_keys(uint32_t first_env);
  [[nodiscard]] int64_t agents() const;
  [[nodiscard]] int64_t envs_per_agent() const;
  [[nodiscard]] const std::vector<uint64_t>& seeds() const;
  // Which agents' envs step (and restart): one flag per agent, all set after a reset.
  void set_active(std::span<const uint8_t> active);
  // Envs where the mask is set (N device-resident flags; nullptr: every env) begin their next
  // episode from the draw of its number, whatever their state; obs() then holds every env's
  // observation (in the env's own buffer). Clears their pending NEXT_STEP resets.
  void next_episode(const uint8_t* device_mask = nullptr);
  // Every env in the middle of an episode abandons it and begins the next (env_restart_episode);
  // envs at an episode's start are left as they are.
  void restart_episodes();
  // actions: N device-resident int32 values in {0, 1}; outputs to `targets` where given.
  void step(const int32_t* device_actions, const StepTargets& targets = {});
  // Copies host actions to the device first; for tests and small N.
  void step_host(std::span<const int32_t> actions);
  // Continuous CartPole: N device-resident float actions, force = clip(a, -1, 1) * force_mag
  // (cartpole_continuous_force; a = +-1 steps exactly as the discrete actions 1 and 0).
  void step_continuous(const float* device_actions, const StepTargets& targets = {});
  void step_host_continuous(std::span<const float> actions);
  // Fills N device-resident actions with the benchmark's random actions for the current step.
  void random_actions(int32_t* device_actions);
  // `steps` steps with random actions inside one pass (registers on the GPU, L1-sized chunks on
  // the CPU). Leaves state, obs and counters as `steps` calls of step(random_actions) would,
  // without the per-step outputs. Returns the episodes that ended.
  uint64_t run_random(int32_t steps);

  [[nodiscard]] int64_t size() const;
  [[nodiscard]] Precision precision() const;
  [[nodiscard]] AutoresetMode autoreset() const;
  [[nodiscard]] const CartPoleParams& params() const;
  [[nodiscard]] uint64_t seed() const;
  [[nodiscard]] uint64_t steps_taken() const;  // calls of step() plus run_random's steps
  [[nodiscard]] Device& device() const;

  // Device pointers to the outputs of the last step (N, or N x 4 for observations): the env's
  // own buffers, or the StepTargets of the last step.
  [[nodiscard]] const float* obs() const;
  // Rows between agents' blocks where the last step wrote (StepTargets::agent_stride; 0:
  // packed, env i at row i).
  [[nodiscard]] int64_t agent_stride() const;
  [[nodiscard]] const float* reward() const;
  [[nodiscard]] const uint8_t* terminated() const;
  [[nodiscard]] const uint8_t* truncated() const;
  [[nodiscard]] const float* final_obs() const;
  [[nodiscard]] const float* final_return() const;
  [[nodiscard]] const int32_t* final_length() const;

  [[nodiscard]] HostStep fetch() const;
  [[nodiscard]] EnvState get_state() const;
  // Sets every env's state and counters (observations follow from the state) and clears
  // pending NEXT_STEP resets, so the next step starts from exactly this state. Lengths must be
  // in [0, max_episode_steps) and the episode counters are kept as given.
  void set_state(const EnvState& state);
  // set_state plus the seeds and step counter: continues exactly where get_state, seeds() and
  // steps_taken() were read (checkpoints).
  void restore(std::span<const uint64_t> seeds, uint64_t steps_taken, const EnvState& state);

  struct Impl;  // defined in host/vec_env.cpp, per precision

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace batchpole
