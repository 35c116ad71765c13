// The environment operations of a device: one call runs one element function of
// env_elements.hpp over envs [0, n), on the device's stream. VecEnv is written once against
// this; the implementations are host/cpu/cpu_env_ops.cpp and kernels/cuda_env_ops.cu. Each call
// counts one stream operation (run_random also one host synchronisation: it returns a count).
#pragma once

#include <cstdint>

#include "batchpole/device/device.hpp"
#include "batchpole/env/env_elements.hpp"

namespace batchpole {

class EnvOps {
 public:
  explicit EnvOps(Device& device) : device_(&device) {}
  EnvOps(const EnvOps&) = delete;
  EnvOps& operator=(const EnvOps&) = delete;
  virtual ~EnvOps() = default;

  // env_begin_episode over envs [0, n).
  template <class Real>
  void reset(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n) {
    if (n <= 0) return;
    device_->enqueue(
        "reset", [this](const auto&... op_args) { this->do_reset(op_args...); }, c, a, n);
  }
  // env_restart_episode over envs [0, n).
  template <class Real>
  void restart(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n) {
    if (n <= 0) return;
    device_->enqueue(
        "restart", [this](const auto&... op_args) { this->do_restart(op_args...); }, c, a, n);
  }
  // env_next_episode over envs [0, n); mask: n device-resident flags, or nullptr for all.
  template <class Real>
  void next_episode(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n,
                    const uint8_t* mask) {
    if (n <= 0) return;
    device_->enqueue(
        "next_episode", [this](const auto&... op_args) { this->do_next_episode(op_args...); }, c, a,
        n, mask);
  }
  // env_step over envs [0, n), in c.autoreset's mode. Actions must be 0 or 1. The CPU checks before
  // stepping and throws; the GPU steps (treating anything but 1 as 0, as Gymnasium's `action == 1`
  // does) and raises the error at the next synchronising call (Device::check_errors, copy_to_host).
  template <class Real>
  void step(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n, const int32_t* actions) {
    if (n <= 0) return;
    BP_CHECK_ARG(actions != nullptr, "env step: actions is a null pointer");
    device_->enqueue(
        "step", [this](const auto&... op_args) { this->do_step(op_args...); }, c, a, n, actions);
  }
  // env_step with continuous actions, one float per env (where the outputs go, as step's),
  // force = clip(a, -1, 1) * force_mag (cartpole_continuous_force). Every float is valid.
  template <class Real>
  void step_continuous(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n,
                       const float* actions) {
    if (n <= 0) return;
    BP_CHECK_ARG(actions != nullptr, "env step: actions is a null pointer");
    device_->enqueue(
        "step_continuous", [this](const auto&... op_args) { this->do_step_continuous(op_args...); },
        c, a, n, actions);
  }
  // `steps` steps with the benchmark's random actions, state kept close to the core; returns
  // the number of episodes that ended.
  template <class Real>
  uint64_t run_random(const EnvConfig<Real>& c, const EnvArrays<Real>& a, int64_t n,
                      uint64_t first_step, int32_t steps) {
    if (n <= 0 || steps <= 0) return 0;
    device_->count_op();
    device_->count_sync();
    return do_run_random(c, a, n, first_step, steps);
  }
  // out[i] = bench_action(seed, i, step).
  void bench_actions(uint64_t seed, uint64_t step, int64_t n, int32_t* out) {
    if (n <= 0) return;
    device_->enqueue(
        "bench_actions", [this](const auto&... op_args) { this->do_bench_actions(op_args...); },
        seed, step, n, out);
  }

 protected:
  [[nodiscard]] Device& device() const { return *device_; }

  virtual void do_reset(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n) = 0;
  virtual void do_reset(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n) = 0;
  virtual void do_restart(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n) = 0;
  virtual void do_restart(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n) = 0;
  virtual void do_next_episode(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                               const uint8_t* mask) = 0;
  virtual void do_next_episode(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                               const uint8_t* mask) = 0;
  virtual void do_step(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                       const int32_t* actions) = 0;
  virtual void do_step(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                       const int32_t* actions) = 0;
  virtual void do_step_continuous(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                                  const float* actions) = 0;
  virtual void do_step_continuous(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                                  const float* actions) = 0;
  virtual uint64_t do_run_random(const EnvConfig<float>& c, const EnvArrays<float>& a, int64_t n,
                                 uint64_t first_step, int32_t steps) = 0;
  virtual uint64_t do_run_random(const EnvConfig<double>& c, const EnvArrays<double>& a, int64_t n,
                                 uint64_t first_step, int32_t steps) = 0;
  virtual void do_bench_actions(uint64_t seed, uint64_t step, int64_t n, int32_t* out) = 0;

 private:
  Device* device_;
};

}  // namespace batchpole
