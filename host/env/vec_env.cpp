#include "batchpole/env/vec_env.hpp"

#include <cmath>
#include <limits>

#include "batchpole/core/checked.hpp"
#include "batchpole/device/buffer.hpp"
#include "batchpole/env/env_ops.hpp"

namespace batchpole {

namespace {

constexpr int64_t kMaxEnvs = std::numeric_limits<int32_t>::max();

template <class Real>
constexpr std::size_t bytes_per_env() {
  return 4 * sizeof(Real)                                       // state
         + sizeof(int32_t) + sizeof(float) + sizeof(uint32_t)   // length, return, episode
         + 4 * sizeof(float) + sizeof(float) + 2                // obs, reward, flags
         + 4 * sizeof(float) + sizeof(float) + sizeof(int32_t)  // final obs, return, length
         + sizeof(int32_t);                                     // scratch actions for step_host
}

}  // namespace

struct VecEnv::Impl {
  Impl(Device& d, int64_t n, const CartPoleParams& p) : device(&d), num_envs(n), params(p) {}
  virtual ~Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  virtual void reset() = 0;
  virtual void next_episode(const uint8_t* mask) = 0;
  virtual void step(const int32_t* actions, const StepTargets& targets) = 0;
  virtual void step_continuous(const float* actions, const StepTargets& targets) = 0;
  virtual void restart() = 0;
  virtual uint64_t run_random(int32_t steps) = 0;
  virtual void get_state(EnvState& out) const = 0;
  virtual void set_state(const EnvState& in) = 0;

  Device* device;
  int64_t num_envs;
  CartPoleParams params;
  Precision precision = Precision::kF32;
  AutoresetMode autoreset = AutoresetMode::kSameStep;
  uint64_t seed = 0;
  uint64_t steps = 0;
  // A population's agents (one agent: seeds = {seed}, no device copies).
  std::vector<uint64_t> seeds{0};
  Buffer<uint64_t> device_seeds;
  Buffer<uint8_t> active;
  [[nodiscard]] int64_t agents() const { return static_cast<int64_t>(seeds.size()); }
  // Data-parallel parts: draws keyed by the global env index first_key + i.
  bool global_keys = false;
  uint32_t first_key = 0;

  Buffer<int32_t> length, final_length, scratch_actions;
  Buffer<float> scratch_continuous;  // step_host_continuous's, made on first use
  Buffer<float> ret, obs, reward, final_obs, final_return;
  Buffer<uint32_t> episode;
  Buffer<uint8_t> terminated, truncated;
  Buffer<uint8_t> pending_reset;  // NEXT_STEP only (empty otherwise)
  // Where the last step wrote its outputs (the buffers above, or a trainer's StepTargets).
  StepTargets current;
  void use_own_outputs() {
    current = {obs.data(),       reward.data(),       terminated.data(),  truncated.data(),
               final_obs.data(), final_return.data(), final_length.data()};
  }
};

namespace {

template <class Real>
struct TypedImpl final : VecEnv::Impl {
  TypedImpl(Device& b, int64_t n, const CartPoleParams& p, AutoresetMode mode) : Impl(b, n, p) {
    precision = sizeof(Real) == 4 ? Precision::kF32 : Precision::kF64;
    autoreset = mode;
    const auto un = static_cast<std::size_t>(n);
    for (auto* s : {&x, &x_dot, &theta, &theta_dot}) *s = Buffer<Real>(b, un);
    length = Buffer<int32_t>(b, un);
    final_length = Buffer<int32_t>(b, un);
    scratch_actions = Buffer<int32_t>(b, un);
    ret = Buffer<float>(b, un);
    obs = Buffer<float>(b, 4 * un);
    reward = Buffer<float>(b, un);
    final_obs = Buffer<float>(b, 4 * un);
    final_return = Buffer<float>(b, un);
    episode = Buffer<uint32_t>(b, un);
    terminated = Buffer<uint8_t>(b, un);
    truncated = Buffer<uint8_t>(b, un);
    // Outputs read before the first step or where no episode ended hold zeros, on every device.
    for (auto* buf : {&reward, &final_obs, &final_return}) buf->zero();
    for (auto* buf : {&terminated, &truncated}) buf->zero();
    final_length.zero();
    episode.zero();
    if (autoreset == AutoresetMode::kNextStep) {
      pending_reset = Buffer<uint8_t>(b, un);
      pending_reset.zero();
    }
    use_own_outputs();
  }

  EnvConfig<Real> config() const {
    EnvConfig<Real> c{Physics<Real>::from(params), params.reward_mode, params.max_episode_steps,
                      params.reset_bound, seed, autoreset};
    if (agents() > 1) {
      c.envs_per_agent = num_envs / agents();
      c.seeds = device_seeds.data();
      c.active = active.data();
    }
    c.global_keys = global_keys;
    c.first_key = first_key;
    return c;
  }
  // The state and counters, with the outputs where `out` says.
  EnvArrays<Real> arrays(const StepTargets& out) {
    return {x.data(),         x_dot.data(),     theta.data(),        theta_dot.data(),
            length.data(),    ret.data(),       episode.data(),      out.obs,
            out.reward,       out.terminated,   out.truncated,       out.final_obs,
            out.final_return, out.final_length, out.agent_stride,    pending_reset.data()};
  }

  void reset() override {
    episode.zero();
    clear_pending();
    use_own_outputs();
    device->env().reset(config(), arrays(current), num_envs);
  }
  void next_episode(const uint8_t* mask) override {
    use_own_outputs();
    device->env().next_episode(config(), arrays(current), num_envs, mask);
  }
  void clear_pending() {
    if (pending_reset.size() > 0) pending_reset.zero();
  }
  // The next episodes' first observations go where the current ones are.
  void restart() override { device->env().restart(config(), arrays(current), num_envs); }
  // The targets, with the env's own buffers where they give none.
  StepTargets outputs(const StepTargets& targets) {
    const StepTargets own = {obs.data(),         reward.data(),    terminated.data(),
                             truncated.data(),   final_obs.data(), final_return.data(),
                             final_length.data()};
    StepTargets out;
    out.obs = targets.obs != nullptr ? targets.obs : own.obs;
    out.reward = targets.reward != nullptr ? targets.reward : own.reward;
    out.terminated = targets.terminated != nullptr ? targets.terminated : own.terminated;
    out.truncated = targets.truncated != nullptr ? targets.truncated : own.truncated;
    out.final_obs = targets.final_obs != nullptr ? targets.final_obs : own.final_obs;
    out.final_return = targets.final_return != nullptr ? targets.final_return : own.final_return;
    out.final_length = targets.final_length != nullptr ? targets.final_length : own.final_length;
    out.agent_stride = targets.agent_stride;
    BP_CHECK_ARG(targets.agent_stride == 0 ||
                     (targets.obs != nullptr && targets.reward != nullptr &&
                      targets.terminated != nullptr && targets.truncated != nullptr &&
                      targets.final_obs != nullptr && targets.final_return != nullptr &&
                      targets.final_length != nullptr),
                 "step: strided targets (agent_stride " << targets.agent_stride
                                                        << ") must name every output");
    BP_CHECK_ARG(targets.agent_stride == 0 || targets.agent_stride >= num_envs / agents(),
                 "step: agent_stride " << targets.agent_stride << " is below the "
                                       << num_envs / agents() << " envs of an agent");
    return out;
  }
  void step(const int32_t* actions, const StepTargets& targets) override {
    const StepTargets out = outputs(targets);
    device->env().step(config(), arrays(out), num_envs, actions);
    current = out;
  }
  void step_continuous(const float* actions, const StepTargets& targets) override {
    const StepTargets out = outputs(targets);
    device->env().step_continuous(config(), arrays(out), num_envs, actions);
    current = out;
  }
  uint64_t run_random(int32_t n_steps) override {
    use_own_outputs();
    return device->env().run_random(config(), arrays(current), num_envs, steps, n_steps);
  }

  void get_state(EnvState& out) const override {
    const auto to_double = [](const Buffer<Real>& buf) {
      const auto host = buf.to_host();
      return std::vector<double>(host.begin(), host.end());
    };
    out.x = to_double(x);
    out.x_dot = to_double(x_dot);
    out.theta = to_double(theta);
    out.theta_dot = to_double(theta_dot);
    out.length = length.to_host();
    out.ret = ret.to_host();
    out.episode = episode.to_host();
  }

  void set_state(const EnvState& in) override {
    const auto n = static_cast<std::size_t>(num_envs);
    for (const auto* v : {&in.x, &in.x_dot, &in.theta, &in.theta_dot}) {
      BP_CHECK_ARG(v->size() == n,
                   "set_state: state vectors need " << n << " entries, got " << v->size());
    }
    BP_CHECK_ARG(in.length.size() == n && in.ret.size() == n && in.episode.size() == n,
                 "set_state: length, ret and episode need " << n << " entries each");
    std::vector<Real> host[4];
    const std::vector<double>* src[4] = {&in.x, &in.x_dot, &in.theta, &in.theta_dot};
    std::vector<float> host_obs(4 * n);
    for (std::size_t i = 0; i < n; ++i) {
      const int32_t len = in.length[i];
      BP_CHECK_ARG(len >= 0 && (params.max_episode_steps == 0 || len < params.max_episode_steps),
                   "set_state: env " << i << " has episode length " << len
                                     << ", outside [0, max_episode_steps)");
      for (int k = 0; k < 4; ++k) {
        const double v = (*src[k])[i];
        BP_CHECK_ARG(std::isfinite(v), "set_state: env " << i << " has a non-finite state");
        host[k].push_back(static_cast<Real>(v));
        host_obs[4 * i + k] = static_cast<float>(host[k].back());
      }
    }
    Buffer<Real>* dst[4] = {&x, &x_dot, &theta, &theta_dot};
    for (int k = 0; k < 4; ++k) dst[k]->from_host(host[k]);
    use_own_outputs();
    clear_pending();
    obs.from_host(host_obs);
    length.from_host(in.length);
    ret.from_host(in.ret);
    episode.from_host(in.episode);
  }

  Buffer<Real> x, x_dot, theta, theta_dot;
};

}  // namespace

std::size_t VecEnv::bytes_required(int64_t num_envs, Precision precision) {
  const std::size_t per_env =
      precision == Precision::kF32 ? bytes_per_env<float>() : bytes_per_env<double>();
  return checked_mul(checked_size(num_envs), per_env);
}

VecEnv::VecEnv(Device& device, int64_t num_envs, const CartPoleParams& params, Precision precision,
               AutoresetMode autoreset) {
  BP_CHECK_ARG(num_envs > 0, "the number of environments must be positive, got " << num_envs);
  BP_CHECK_ARG(num_envs <= kMaxEnvs, "at most " << kMaxEnvs << " environments, got " << num_envs);
  params.validate();
  // All at once, before the first buffer: one by one, the buffers that fit would be allocated
  // (and, under AddressSanitizer, poisoned: tens of seconds for gigabytes) before one is refused.
  const std::size_t need = bytes_required(num_envs, precision);
  BP_REQUIRE(need <= device.available_memory(), kOutOfMemory,
             num_envs << " environments need " << bytes_text(need) << " on " << device.description()
                      << ", more than the " << device.available_memory() << " bytes available");
  if (precision == Precision::kF32) {
    impl_ = std::make_unique<TypedImpl<float>>(device, num_envs, params, autoreset);
  } else {
    impl_ = std::make_unique<TypedImpl<double>>(device, num_envs, params, autoreset);
  }
  reset(0);
}

VecEnv::VecEnv(VecEnv&&) noexcept = default;
VecEnv& VecEnv::operator=(VecEnv&&) noexcept = default;
VecEnv::~VecEnv() = default;

namespace {
void set_seeds(VecEnv::Impl& impl, std::span<const uint64_t> seeds) {
  BP_CHECK_ARG(!seeds.empty(), "a VecEnv needs at least one agent's seed");
  const auto k = static_cast<int64_t>(seeds.size());
  BP_CHECK_ARG(impl.num_envs % k == 0, impl.num_envs << " environments do not divide into " << k
                                                     << " agents");
  impl.seeds.assign(seeds.begin(), seeds.end());
  impl.seed = seeds[0];
  if (k > 1) {
    impl.device_seeds = Buffer<uint64_t>(*impl.device, seeds.size());
    impl.device_seeds.from_host(impl.seeds);
    impl.active = Buffer<uint8_t>(*impl.device, seeds.size());
    const std::vector<uint8_t> all(seeds.size(), 1);
    impl.active.from_host(all);
  } else {
    impl.device_seeds = Buffer<uint64_t>();
    impl.active = Buffer<uint8_t>();
  }
}
}  // namespace

void VecEnv::reset(uint64_t seed) {
  const uint64_t one[] = {seed};
  reset(one);
}

void VecEnv::reset(std::span<const uint64_t> seeds) {
  set_seeds(*impl_, seeds);
  impl_->steps = 0;
  impl_->reset();
}

void VecEnv::set_global_keys(uint32_t first_env) {
  impl_->global_keys = true;
  impl_->first_key = first_env;
}

int64_t VecEnv::agents() const { return impl_->agents(); }
int64_t VecEnv::envs_per_agent() const { return impl_->num_envs / impl_->agents(); }
const std::vector<uint64_t>& VecEnv::seeds() const { return impl_->seeds; }

void VecEnv::set_active(std::span<const uint8_t> active) {
  BP_CHECK_ARG(static_cast<int64_t>(active.size()) == agents(),
               "set_active: " << active.size() << " flags for " << agents() << " agents");
  if (agents() > 1) impl_->active.from_host(active.data(), active.size());
}

void VecEnv::next_episode(const uint8_t* device_mask) {
  BP_CHECK_ARG(agents() == 1, "next_episode: one agent's envs only");
  impl_->next_episode(device_mask);
}

void VecEnv::restart_episodes() { impl_->restart(); }

void VecEnv::step(const int32_t* device_actions, const StepTargets& targets) {
  impl_->step(device_actions, targets);
  ++impl_->steps;
}

void VecEnv::step_host(std::span<const int32_t> actions) {
  BP_CHECK_ARG(
      static_cast<int64_t>(actions.size()) == impl_->num_envs,
      "step needs one action per environment: " << impl_->num_envs << ", got " << actions.size());
  impl_->scratch_actions.from_host(actions);
  step(impl_->scratch_actions.data());
}

void VecEnv::step_continuous(const float* device_actions, const StepTargets& targets) {
  impl_->step_continuous(device_actions, targets);
  ++impl_->steps;
}

void VecEnv::step_host_continuous(std::span<const float> actions) {
  BP_CHECK_ARG(
      static_cast<int64_t>(actions.size()) == impl_->num_envs,
      "step needs one action per environment: " << impl_->num_envs << ", got " << actions.size());
  if (impl_->scratch_continuous.size() == 0) {
    impl_->scratch_continuous =
        Buffer<float>(*impl_->device, static_cast<std::size_t>(impl_->num_envs));
  }
  impl_->scratch_continuous.from_host(actions);
  step_continuous(impl_->scratch_continuous.data());
}

void VecEnv::random_actions(int32_t* device_actions) {
  BP_CHECK_ARG(agents() == 1, "random_actions: the benchmark's actions are for one agent");
  impl_->device->env().bench_actions(impl_->seed, impl_->steps, impl_->num_envs, device_actions);
}

uint64_t VecEnv::run_random(int32_t steps) {
  BP_CHECK_ARG(steps >= 0, "run_random needs steps >= 0, got " << steps);
  BP_CHECK_ARG(agents() == 1, "run_random: the benchmark's run is for one agent");
  if (steps == 0) return 0;
  const uint64_t ended = impl_->run_random(steps);
  impl_->steps += static_cast<uint64_t>(steps);
  return ended;
}

int64_t VecEnv::size() const { return impl_->num_envs; }
Precision VecEnv::precision() const { return impl_->precision; }
AutoresetMode VecEnv::autoreset() const { return impl_->autoreset; }
const CartPoleParams& VecEnv::params() const { return impl_->params; }
uint64_t VecEnv::seed() const { return impl_->seed; }
uint64_t VecEnv::steps_taken() const { return impl_->steps; }
Device& VecEnv::device() const { return *impl_->device; }

const float* VecEnv::obs() const { return impl_->current.obs; }
const float* VecEnv::reward() const { return impl_->current.reward; }
const uint8_t* VecEnv::terminated() const { return impl_->current.terminated; }
const uint8_t* VecEnv::truncated() const { return impl_->current.truncated; }
const float* VecEnv::final_obs() const { return impl_->current.final_obs; }
const float* VecEnv::final_return() const { return impl_->current.final_return; }
const int32_t* VecEnv::final_length() const { return impl_->current.final_length; }

namespace {
template <class T>
std::vector<T> copy_out(Device& device, const T* src, std::size_t n) {
  std::vector<T> out(n);
  device.copy_to_host(out.data(), src, n * sizeof(T));
  return out;
}
}  // namespace

int64_t VecEnv::agent_stride() const { return impl_->current.agent_stride; }

HostStep VecEnv::fetch() const {
  const StepTargets& c = impl_->current;
  BP_CHECK_ARG(c.agent_stride == 0,
               "fetch: the last step wrote a population's strided rows (read the rollout)");
  Device& d = *impl_->device;
  const auto n = static_cast<std::size_t>(impl_->num_envs);
  HostStep out;
  out.obs = copy_out(d, c.obs, 4 * n);
  out.reward = copy_out(d, c.reward, n);
  out.terminated = copy_out(d, c.terminated, n);
  out.truncated = copy_out(d, c.truncated, n);
  out.final_obs = copy_out(d, c.final_obs, 4 * n);
  out.final_return = copy_out(d, c.final_return, n);
  out.final_length = copy_out(d, c.final_length, n);
  return out;
}

EnvState VecEnv::get_state() const {
  EnvState out;
  impl_->get_state(out);
  return out;
}

void VecEnv::set_state(const EnvState& state) { impl_->set_state(state); }

void VecEnv::restore(std::span<const uint64_t> seeds, uint64_t steps_taken,
                     const EnvState& state) {
  impl_->set_state(state);
  set_seeds(*impl_, seeds);
  impl_->steps = steps_taken;
}

}  // namespace batchpole
