#include "batchpole/nn/adam.hpp"

#include <algorithm>
#include <cmath>

#include "batchpole/nn/blas.hpp"

namespace batchpole {

Adam::Adam(Device& device, Blas& blas, NnOps& ops, int64_t n, const AdamConfig& config,
           int64_t agents, bool batched)
    : device_(&device),
      blas_(&blas),
      ops_(&ops),
      n_(n),
      config_(config),
      agents_(agents),
      batched_(batched),
      steps_(static_cast<std::size_t>(std::max<int64_t>(agents, 1)), 0),
      lr_(static_cast<std::size_t>(std::max<int64_t>(agents, 1)), config.lr) {
  BP_CHECK_ARG(n >= 1, "Adam: needs at least one parameter, got " << n);
  BP_CHECK_ARG(agents >= 1, "Adam: needs at least one agent, got " << agents);
  BP_CHECK_ARG(config.lr >= 0.0, "Adam: negative learning rate " << config.lr);
  BP_CHECK_ARG(
      config.beta1 >= 0.0 && config.beta1 < 1.0 && config.beta2 >= 0.0 && config.beta2 < 1.0,
      "Adam: betas must be in [0, 1), got " << config.beta1 << ", " << config.beta2);
  BP_CHECK_ARG(config.eps > 0.0, "Adam: eps must be positive, got " << config.eps);
  state_ = Buffer<float>(device, static_cast<std::size_t>(agents * (2 * n + 1)));
  state_.zero();
  if ((batched_ && agents_ > 1) || device.plan().graphs) {
    scalars_ = ParameterSlots<AdamScalars>(device, static_cast<std::size_t>(agents_));
  }
}

void Adam::set_lr(double lr) {
  BP_CHECK_ARG(lr >= 0.0, "Adam: negative learning rate " << lr);
  config_.lr = lr;
  for (double& l : lr_) l = lr;
}

void Adam::set_lr(int64_t agent, double lr) {
  BP_CHECK_ARG(lr >= 0.0, "Adam: negative learning rate " << lr);
  lr_.at(static_cast<std::size_t>(agent)) = lr;
}

AdamConfig Adam::config_of(int64_t agent) const {
  AdamConfig c = config_;
  c.lr = lr_[static_cast<std::size_t>(agent)];
  return c;
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
  BP_CHECK_ARG(agents_ == 1, "Adam::step: " << agents_ << " agents need their strides (Agents)");
  Agents a;
  a.stride = n_;
  a.grad_norm_out = grad_norm_out;
  step(params, grads, a);
}

void Adam::step(float* params, const float* grads, const Agents& a) {
  BP_CHECK_ARG(params != nullptr && grads != nullptr, "Adam::step: null parameter or gradient");
  BP_CHECK_ARG(agents_ == 1 || a.stride >= n_,
               "Adam::step: stride " << a.stride << " is less than the " << n_ << " parameters");
  BP_CHECK_ARG(a.active.empty() || static_cast<int64_t>(a.active.size()) == agents_,
               "Adam::step: " << a.active.size() << " flags for " << agents_ << " agents");
  const auto stepping = [&](int64_t k) { return a.active.empty() || a.active[k] != 0; };
  float* norms = a.grad_norm_out != nullptr ? a.grad_norm_out : own_norms();
  const int64_t norm_stride = a.grad_norm_out != nullptr ? a.norm_stride : 1;
  const auto max_norm = static_cast<float>(config_.max_grad_norm);
  if (!batched_ || agents_ == 1) {
    // Each agent exactly as alone; a population's agents as tasks of the device.
    std::vector<int64_t> list;
    for (int64_t k = 0; k < agents_; ++k) {
      if (stepping(k)) list.push_back(k);
    }
    AdamScalars* block = device_->plan().graphs ? scalars_.next() : nullptr;
    const auto one = [&](int64_t k) {
      float* norm = norms + k * norm_stride;
      blas_->nrm2(n_, grads + k * a.stride, 1, norm);
      ++steps_[k];
      AdamScalars s = scalars(config_of(k), steps_[k]);
      AdamAgents one_agent;
      if (block != nullptr) {
        AdamScalars* slot = block + k;
        device_->copy_parameters(slot, &s, sizeof s);
        one_agent.scalars = slot;
        s = AdamScalars{};  // read from device memory instead
      }
      ops_->adam_step(params + k * a.stride, grads + k * a.stride, m() + k * n_, v() + k * n_, n_,
                      s, norm, max_norm, one_agent);
    };
    if (list.size() == 1) {
      one(list.front());
    } else {
      device_->run_tasks(static_cast<int64_t>(list.size()),
                         [&](int64_t task, int) { one(list[static_cast<std::size_t>(task)]); });
    }
    return;
  }
  // Every agent in one norm and one update; per-agent scalars where the agents differ.
  BP_CHECK_ARG(a.active.empty() || a.active_device != nullptr,
               "Adam::step: the active flags must be in device memory too");
  int64_t first = -1;
  bool uniform = true;
  for (int64_t k = 0; k < agents_; ++k) {
    if (!stepping(k)) continue;
    ++steps_[k];
    if (first < 0) {
      first = k;
    } else if (steps_[k] != steps_[first] || lr_[k] != lr_[first]) {
      uniform = false;
    }
  }
  if (first < 0) return;
  AdamAgents agents;
  agents.agents = agents_;
  agents.stride = a.stride;
  agents.state_stride = n_;
  agents.norm_stride = norm_stride;
  agents.active = a.active.empty() ? nullptr : a.active_device;
  AdamScalars uniform_scalars = scalars(config_of(first), steps_[first]);
  if (!uniform || device_->plan().graphs) {
    std::vector<AdamScalars> host(static_cast<std::size_t>(agents_));
    for (int64_t k = 0; k < agents_; ++k) {
      host[k] = scalars(config_of(k), std::max<int64_t>(steps_[k], 1));
    }
    AdamScalars* slot = scalars_.next();
    device_->copy_parameters(slot, host.data(), host.size() * sizeof(AdamScalars));
    agents.scalars = slot;
    uniform_scalars = AdamScalars{};  // read from device memory instead
  }
  ops_->norms(grads, n_, agents_, a.stride, norms, norm_stride);
  ops_->adam_step(params, grads, m(), v(), n_, uniform_scalars, norms, max_norm, agents);
}

Adam::State Adam::get_state(int64_t agent) const {
  BP_CHECK_ARG(agent >= 0 && agent < agents_,
               "Adam::get_state: agent " << agent << " of " << agents_);
  State s;
  s.steps = steps_[agent];
  s.moments.resize(static_cast<std::size_t>(2 * n_));
  const std::size_t bytes = static_cast<std::size_t>(n_) * sizeof(float);
  device_->copy_to_host(s.moments.data(), state_.data() + agent * n_, bytes);
  device_->copy_to_host(s.moments.data() + n_, state_.data() + (agents_ + agent) * n_, bytes);
  return s;
}

void Adam::set_state(const State& state, int64_t agent) {
  BP_CHECK_ARG(agent >= 0 && agent < agents_,
               "Adam::set_state: agent " << agent << " of " << agents_);
  BP_CHECK_ARG(static_cast<int64_t>(state.moments.size()) == 2 * n_,
               "Adam::set_state: " << state.moments.size() << " moments given, expected " << 2 * n_
                                   << " (m and v of " << n_ << " parameters)");
  BP_CHECK_ARG(state.steps >= 0, "Adam::set_state: negative step count " << state.steps);
  const std::size_t bytes = static_cast<std::size_t>(n_) * sizeof(float);
  device_->copy_from_host(state_.data() + agent * n_, state.moments.data(), bytes);
  device_->copy_from_host(state_.data() + (agents_ + agent) * n_, state.moments.data() + n_, bytes);
  steps_[agent] = state.steps;
}

}  // namespace batchpole
