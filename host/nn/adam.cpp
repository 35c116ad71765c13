#include "batchpole/nn/adam.hpp"

#include <cmath>

#include "batchpole/nn/blas.hpp"

namespace batchpole {

Adam::Adam(Device& device, Blas& blas, NnOps& ops, int64_t n, const AdamConfig& config)
    : device_(&device), blas_(&blas), ops_(&ops), n_(n), config_(config) {
  BP_CHECK_ARG(n >= 1, "Adam: needs at least one parameter, got " << n);
  BP_CHECK_ARG(config.lr >= 0.0, "Adam: negative learning rate " << config.lr);
  BP_CHECK_ARG(
      config.beta1 >= 0.0 && config.beta1 < 1.0 && config.beta2 >= 0.0 && config.beta2 < 1.0,
      "Adam: betas must be in [0, 1), got " << config.beta1 << ", " << config.beta2);
  BP_CHECK_ARG(config.eps > 0.0, "Adam: eps must be positive, got " << config.eps);
  state_ = Buffer<float>(device, static_cast<std::size_t>(2 * n + 1));
  state_.zero();
}

AdamScalars Adam::scalars(const AdamConfig& c, int64_t t) {
  const auto td = static_cast<double>(t);
  const double bias_correction1 = 1.0 - std::pow(c.beta1, td);
  const double bias_correction2 = 1.0 - std::pow(c.beta2, td);
  return {static_cast<float>(c.beta2),
          static_cast<float>(1.0 - c.beta1),
          static_cast<float>(1.0 - c.beta2),
          static_cast<float>(c.eps),
          static_cast<float>(c.lr / bias_correction1),
          static_cast<float>(std::sqrt(bias_correction2))};
}

void Adam::step(float* params, const float* grads, float* grad_norm_out) {
  BP_CHECK_ARG(params != nullptr && grads != nullptr, "Adam::step: null parameter or gradient");
  float* norm = grad_norm_out != nullptr ? grad_norm_out : state_.data() + 2 * n_;
  blas_->nrm2(n_, grads, 1, norm);
  ++steps_;
  ops_->adam_step(params, grads, state_.data(), state_.data() + n_, n_, scalars(config_, steps_),
                  norm, static_cast<float>(config_.max_grad_norm));
}

Adam::State Adam::get_state() const {
  State s;
  s.steps = steps_;
  s.moments.resize(static_cast<std::size_t>(2 * n_));
  device_->copy_to_host(s.moments.data(), state_.data(), s.moments.size() * sizeof(float));
  return s;
}

void Adam::set_state(const State& state) {
  BP_CHECK_ARG(static_cast<int64_t>(state.moments.size()) == 2 * n_,
               "Adam::set_state: " << state.moments.size() << " moments given, expected " << 2 * n_
                                   << " (m and v of " << n_ << " parameters)");
  BP_CHECK_ARG(state.steps >= 0, "Adam::set_state: negative step count " << state.steps);
  device_->copy_from_host(state_.data(), state.moments.data(),
                          state.moments.size() * sizeof(float));
  steps_ = state.steps;
}

}  // namespace batchpole
