// Adam with PyTorch's semantics (torch.optim.Adam: bias correction, eps added to the corrected
// square root) and global gradient-norm clipping as torch.nn.utils.clip_grad_norm_, over one
// contiguous range of parameters. The norm is computed on the device and consumed there: a step
// never synchronises with the host.
#pragma once

#include <cstddef>
#include <cstdint>
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
  // Moments for n parameters, zeroed.
  Adam(Device& device, Blas& blas, NnOps& ops, int64_t n, const AdamConfig& config);

  // One step: *grad_norm_out (device memory; the Adam's own scalar when null) receives the
  // gradients' global norm before clipping; the update uses grads * clip_scale(norm,
  // max_grad_norm). grads themselves are left as they are.
  void step(float* params, const float* grads, float* grad_norm_out = nullptr);

  // The scalars of step t (1-based) under config c, in double on the host then rounded.
  static AdamScalars scalars(const AdamConfig& c, int64_t t);

  // What a checkpoint needs to continue exactly: the step count and the moments (m then v,
  // 2 * size() floats), copied to or from the host.
  struct State {
    int64_t steps = 0;
    std::vector<float> moments;
  };
  [[nodiscard]] State get_state() const;
  void set_state(const State& state);  // throws Error(kInvalidArgument) on a size mismatch

  [[nodiscard]] int64_t steps() const { return steps_; }
  [[nodiscard]] int64_t size() const { return n_; }
  [[nodiscard]] const AdamConfig& config() const { return config_; }
  void set_lr(double lr) { config_.lr = lr; }
  [[nodiscard]] std::size_t bytes() const { return state_.bytes(); }
  // Device pointers to the first and second moments (n each), for tests and checkpoints, and
  // to the norm of the last step that was given no grad_norm_out.
  [[nodiscard]] const float* first_moment() const { return state_.data(); }
  [[nodiscard]] const float* second_moment() const { return state_.data() + n_; }
  [[nodiscard]] const float* grad_norm() const { return state_.data() + 2 * n_; }

 private:
  Device* device_;
  Blas* blas_;
  NnOps* ops_;
  int64_t n_;
  AdamConfig config_;
  Buffer<float> state_;  // m (n), v (n), the last norm (1)
  int64_t steps_ = 0;
};

}  // namespace batchpole
