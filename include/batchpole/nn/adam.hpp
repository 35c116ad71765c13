// Adam with PyTorch's semantics (torch.optim.Adam: bias correction, eps added to the corrected
// square root) and global gradient-norm clipping as torch.nn.utils.clip_grad_norm_, over one
// contiguous range of parameters (or one per agent of a population). The norm is computed on the
// device and consumed there: a step never synchronises with the host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/blas.hpp"
#include "batchpole/nn/nn_ops.hpp"

namespace batchpole {

// Doubles, as PyTorch's Python floats: the scalars of a step are worked out in double and
// rounded once.
struct AdamConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  // Clip the global L2 norm of the gradients to this before the step; <= 0: no clipping.
  double max_grad_norm = 0.0;
};

class Adam {
 public:
  // Moments for n parameters, zeroed. A population: `agents` agents with n parameters each,
  // stepped one agent at a time (batched = false: each step is exactly the one agent alone
  // would take) or all in one norm and one update (batched = true).
  Adam(Device& device, Blas& blas, NnOps& ops, int64_t n, const AdamConfig& config,
       int64_t agents = 1, bool batched = false);

  // One step: *grad_norm_out (device memory; the Adam's own scalar when null) receives the
  // gradients' global norm before clipping; the update uses grads * clip_scale(norm,
  // max_grad_norm). grads themselves are left as they are.
  void step(float* params, const float* grads, float* grad_norm_out = nullptr);
  // One step of every agent whose flag is set (empty: all): agent k's parameters and gradients
  // at params + k * stride and grads + k * stride, its norm to grad_norm_out[k * norm_stride].
  // `active_device` holds the same flags in device memory (used when batched; may be null when
  // all step).
  struct Agents {
    int64_t stride = 0;
    float* grad_norm_out = nullptr;
    int64_t norm_stride = 1;
    std::span<const uint8_t> active;
    const uint8_t* active_device = nullptr;
  };
  void step(float* params, const float* grads, const Agents& agents);

  // Where the device records updates (plan().graphs) a step's scalars are copied to the device
  // (Device::copy_parameters) rather than passed, each step of a recorded update to its own
  // slot, so that an update of several steps replays too; the update starts at slot 0 again.
  void begin_update() { scalars_.rewind(); }

  // The scalars of step t (1-based) under config c, in double on the host then rounded.
  static AdamScalars scalars(const AdamConfig& c, int64_t t);

  // What a checkpoint needs to continue exactly: the step count and the moments (m then v,
  // 2 * size() floats), copied to or from the host; one agent's.
  struct State {
    int64_t steps = 0;
    std::vector<float> moments;
  };
  [[nodiscard]] State get_state(int64_t agent = 0) const;
  void set_state(const State& state, int64_t agent = 0);  // throws Error(kInvalidArgument)
                                                          // on a size mismatch

  [[nodiscard]] int64_t steps(int64_t agent = 0) const { return steps_.at(agent); }
  [[nodiscard]] int64_t size() const { return n_; }
  [[nodiscard]] int64_t agents() const { return agents_; }
  [[nodiscard]] const AdamConfig& config() const { return config_; }
  [[nodiscard]] double lr(int64_t agent = 0) const { return lr_.at(agent); }
  void set_lr(double lr);                 // every agent's
  void set_lr(int64_t agent, double lr);  // one agent's
  [[nodiscard]] std::size_t bytes() const { return state_.bytes(); }
  // Device pointers to the first and second moments (n each; agent k's at + k * size()), for
  // tests and checkpoints, and to the norms of the last step that was given no grad_norm_out.
  [[nodiscard]] const float* first_moment() const { return state_.data(); }
  [[nodiscard]] const float* second_moment() const { return state_.data() + agents_ * n_; }
  [[nodiscard]] const float* grad_norm() const { return state_.data() + 2 * agents_ * n_; }

 private:
  [[nodiscard]] float* m() { return state_.data(); }
  [[nodiscard]] float* v() { return state_.data() + agents_ * n_; }
  [[nodiscard]] float* own_norms() { return state_.data() + 2 * agents_ * n_; }
  [[nodiscard]] AdamConfig config_of(int64_t agent) const;

  Device* device_;
  Blas* blas_;
  NnOps* ops_;
  int64_t n_;
  AdamConfig config_;
  int64_t agents_;
  bool batched_;
  Buffer<float> state_;  // m (agents x n), v (agents x n), the last norms (agents)
  // The scalars in device memory, one per agent a step: a population's agents whose steps or
  // rates differ, and every step of a recorded update.
  ParameterSlots<AdamScalars> scalars_;
  std::vector<int64_t> steps_;
  std::vector<double> lr_;
};

}  // namespace batchpole
