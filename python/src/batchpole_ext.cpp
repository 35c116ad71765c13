// batchpole._batchpole: the Python module's C++ half, a thin layer over the public C++ API
// (VecEnv, the device registry, run_training, evaluate). The Gymnasium classes, seeding and the
// info dicts live in python/batchpole/; everything that touches the environments' memory is here.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "batchpole/device/buffer.hpp"
#include "batchpole/device/device.hpp"
#include "batchpole/env/vec_env.hpp"
#include "batchpole/rl/rl_ops.hpp"
#include "batchpole/run/evaluate.hpp"
#include "batchpole/run/train_run.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace batchpole::python {

namespace {

// DLPack device types (dlpack.h): the ones an environment's arrays can live on.
constexpr int kDlCpu = 1;
constexpr int kDlCuda = 2;
constexpr int kDlCudaHost = 3;
constexpr std::size_t kAlign = 64;
// Free output blocks an environment keeps for the next steps; more are given back.
constexpr std::size_t kPoolKeep = 4;

// The training keys that configure the environment: the keyword arguments of VectorEnv beyond
// its own, checked and applied through the same field table as `batchpole train`'s flags.
const std::vector<std::string>& env_keys() {
  static const std::vector<std::string> keys = {"reward",          "integrator",
                                                "theta_threshold", "theta_threshold_deg",
                                                "x_threshold",     "max_episode_steps"};
  return keys;
}

std::size_t aligned(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// A Python value as a FieldValue; the field tables then check its type and range.
FieldValue field_value(nb::handle v, const std::string& key) {
  if (PyBool_Check(v.ptr())) return nb::cast<bool>(v);
  if (PyLong_Check(v.ptr())) {
    int overflow = 0;
    const long long i = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
    if (overflow == 0) return static_cast<int64_t>(i);
    if (overflow > 0) {
      const unsigned long long u = PyLong_AsUnsignedLongLong(v.ptr());
      if (!PyErr_Occurred()) return static_cast<uint64_t>(u);
      PyErr_Clear();
    }
    throw nb::value_error(
        (key + " is out of range: " + nb::cast<std::string>(nb::repr(v))).c_str());
  }
  if (PyFloat_Check(v.ptr())) return nb::cast<double>(v);
  if (PyUnicode_Check(v.ptr())) return nb::cast<std::string>(v);
  // NumPy scalars and other number types: through their Python value.
  if (nb::hasattr(v, "item") && !PyUnicode_Check(v.ptr())) {
    nb::object item = v.attr("item")();
    if (!item.is(v) &&
        (PyBool_Check(item.ptr()) || PyLong_Check(item.ptr()) || PyFloat_Check(item.ptr()))) {
      return field_value(item, key);
    }
  }
  throw nb::type_error((key + " must be a bool, int, float or str, got " +
                        nb::cast<std::string>(nb::str(v.type().attr("__name__"))))
                           .c_str());
}

// One step's (or reset's) outputs in one allocation on the environment's device. The arrays
// handed to Python share it through one capsule; when the last of them is gone it goes back to
// the environment's pool (or is freed, if the environment is gone), so that a step writes its
// outputs straight into memory that stays valid for as long as Python holds it.
class Pool {
 public:
  Pool(std::shared_ptr<Device> device, std::size_t bytes)
      : device_(std::move(device)), bytes_(bytes) {}
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool() {
    for (void* p : free_) device_->deallocate(p);
  }
  void* take() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        void* p = free_.back();
        free_.pop_back();
        return p;
      }
    }
    return device_->allocate(bytes_);
  }
  void give_back(void* p) noexcept {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (free_.size() < kPoolKeep) {
        free_.push_back(p);
        return;
      }
    }
    device_->deallocate(p);
  }
  [[nodiscard]] const std::shared_ptr<Device>& device() const { return device_; }

 private:
  std::shared_ptr<Device> device_;
  std::size_t bytes_;
  std::mutex mutex_;
  std::vector<void*> free_;
};

struct Block {
  std::shared_ptr<Device> device;  // outlives the memory, whatever Python frees first
  std::weak_ptr<Pool> pool;
  char* data = nullptr;
  ~Block() {
    if (auto p = pool.lock()) {
      p->give_back(data);
    } else {
      device->deallocate(data);
    }
  }
};

// Where each output lies in a block of N environments. SAME_STEP adds the final observations
// and the mask of ended episodes (zeroed before each step: Gymnasium's zeros where none ended).
struct Layout {
  std::size_t obs, reward, final_obs, done, count, terminated, truncated, bytes;
  explicit Layout(std::size_t n) {
    std::size_t at = 0;
    const auto place = [&](std::size_t size) {
      const std::size_t here = at;
      at += aligned(size);
      return here;
    };
    obs = place(4 * n * sizeof(float));
    reward = place(n * sizeof(float));
    final_obs = place(4 * n * sizeof(float));
    done = place(n);
    count = place(sizeof(int64_t));
    terminated = place(n);
    truncated = place(n);
    bytes = at;
  }
};

template <class T>
bool convert_actions(const T* src, int64_t stride, int64_t n, int32_t* dst) {
  T bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T v = src[i * stride];
    bad = static_cast<T>(bad | (v & static_cast<T>(~T{1})));
    dst[i] = static_cast<int32_t>(v & T{1});
  }
  return bad == 0;
}

template <class T>
[[noreturn]] void throw_bad_action(const T* src, int64_t stride, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = src[i * stride];
    if ((v & static_cast<T>(~T{1})) != 0) {
      throw nb::value_error(("invalid action " + std::to_string(static_cast<int64_t>(v)) +
                             " for env " + std::to_string(i) + " (CartPole actions are 0 and 1)")
                                .c_str());
    }
  }
  throw nb::value_error("invalid action");
}

// Host actions of any integer (or bool) dtype into int32 0/1, refusing anything else by env.
void host_actions(const nb::ndarray<nb::ro>& a, int64_t n, int32_t* dst) {
  const auto* p = static_cast<const char*>(a.data());
  const int64_t s = a.stride(0);
  const nb::dlpack::dtype dt = a.dtype();
  const auto code = static_cast<nb::dlpack::dtype_code>(dt.code);
  const auto run = [&](auto tag) {
    using T = decltype(tag);
    const auto* src = reinterpret_cast<const T*>(p);
    if (!convert_actions(src, s, n, dst)) throw_bad_action(src, s, n);
  };
  if (dt.lanes == 1 && code == nb::dlpack::dtype_code::Bool && dt.bits == 8) {
    const auto* src = reinterpret_cast<const uint8_t*>(p);
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i * s] != 0 ? 1 : 0;
    return;
  }
  if (dt.lanes == 1 && code == nb::dlpack::dtype_code::Int) {
    switch (dt.bits) {
      case 8:
        return run(int8_t{});
      case 16:
        return run(int16_t{});
      case 32:
        return run(int32_t{});
      case 64:
        return run(int64_t{});
      default:
        break;
    }
  }
  if (dt.lanes == 1 && code == nb::dlpack::dtype_code::UInt) {
    switch (dt.bits) {
      case 8:
        return run(uint8_t{});
      case 16:
        return run(uint16_t{});
      case 32:
        return run(uint32_t{});
      case 64:
        return run(uint64_t{});
      default:
        break;
    }
  }
  throw nb::type_error("actions must be integers (any int or uint dtype) or bool");
}

bool is_int32(const nb::dlpack::dtype& dt) {
  return dt.lanes == 1 && dt.bits == 32 &&
         static_cast<nb::dlpack::dtype_code>(dt.code) == nb::dlpack::dtype_code::Int;
}

bool is_action_dtype(const nb::dlpack::dtype& dt) {
  const auto code = static_cast<nb::dlpack::dtype_code>(dt.code);
  return dt.lanes == 1 &&
         ((code == nb::dlpack::dtype_code::Bool && dt.bits == 8) ||
          code == nb::dlpack::dtype_code::Int || code == nb::dlpack::dtype_code::UInt);
}

std::string dtype_name(const nb::dlpack::dtype& dt) {
  switch (static_cast<nb::dlpack::dtype_code>(dt.code)) {
    case nb::dlpack::dtype_code::Int:
      return "int" + std::to_string(dt.bits);
    case nb::dlpack::dtype_code::UInt:
      return "uint" + std::to_string(dt.bits);
    case nb::dlpack::dtype_code::Float:
      return "float" + std::to_string(dt.bits);
    case nb::dlpack::dtype_code::Bool:
      return "bool";
    default:
      return "a non-integer dtype";
  }
}

std::string shape_text(const nb::ndarray<nb::ro>& a) {
  std::string s = "(";
  for (std::size_t i = 0; i < a.ndim(); ++i) {
    s += (i > 0 ? ", " : "") + std::to_string(a.shape(i));
  }
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// The environment as Python sees it: a VecEnv on its own device, and the memory of its outputs.
class Env {
 public:
  Env(int64_t num_envs, const std::string& device, int threads, const std::string& precision,
      const std::string& autoreset, const nb::dict& env_params) {
    TrainConfig config;  // only its env part is used: the table's checks, CartPole-v1's defaults
    for (auto [k, v] : env_params) {
      const std::string key = nb::cast<std::string>(nb::str(k));
      bool known = false;
      for (const auto& e : env_keys()) known = known || e == key;
      if (!known) {
        std::string list;
        for (const auto& e : env_keys()) list += (list.empty() ? "" : ", ") + e;
        throw nb::type_error(
            ("unknown environment parameter '" + key + "' (expected " + list + ")").c_str());
      }
      find_field(train_config_fields(), key)->assign(config, field_value(v, key));
    }
    DeviceOptions options;
    options.device = DeviceRequest::parse(device);
    options.threads = threads;
    const Precision p = parse_precision(precision);
    const AutoresetMode mode = parse_autoreset_mode(autoreset);
    BP_CHECK_ARG(num_envs > 0, "num_envs must be positive, got " << num_envs);
    device_ = make_device(options);
    env_ = std::make_unique<VecEnv>(*device_, num_envs, config.env, p, mode);
    layout_ = Layout(static_cast<std::size_t>(num_envs));
    pool_ = std::make_shared<Pool>(device_, layout_.bytes);
    actions_ = Buffer<int32_t>(*device_, static_cast<std::size_t>(num_envs));
    mask_ = Buffer<uint8_t>(*device_, static_cast<std::size_t>(num_envs));
  }

  [[nodiscard]] int64_t size() const { return env_->size(); }
  [[nodiscard]] bool on_cuda() const { return device_->kind() == DeviceKind::kCuda; }

  // Every env begins episode 0 of `seed`; returns the observations.
  nb::object reset(uint64_t seed) {
    env_->reset(seed);
    return observations_from_env();
  }

  // Envs where the mask is set (all without one) begin their next episode.
  nb::object next_episode(std::optional<nb::ndarray<nb::ro>> mask) {
    if (!mask) {
      env_->next_episode(nullptr);
      return observations_from_env();
    }
    const nb::ndarray<nb::ro>& m = *mask;
    const auto code = static_cast<nb::dlpack::dtype_code>(m.dtype().code);
    if (code != nb::dlpack::dtype_code::Bool || m.dtype().bits != 8) {
      throw nb::type_error(
          ("reset_mask must be a bool array, got " + dtype_name(m.dtype())).c_str());
    }
    check_shape(m, "reset_mask");
    BP_CHECK_ARG(m.device_type() == kDlCpu || m.device_type() == kDlCudaHost,
                 "reset_mask must be a host (NumPy) array");
    const auto n = static_cast<std::size_t>(size());
    std::vector<uint8_t> host(n);
    const auto* src = static_cast<const uint8_t*>(m.data());
    for (std::size_t i = 0; i < n; ++i) host[i] = src[static_cast<int64_t>(i) * m.stride(0)] != 0;
    mask_.from_host(host);
    env_->next_episode(mask_.data());
    return observations_from_env();
  }

  // One step; returns (obs, reward, terminated, truncated) and, in SAME_STEP, (final_obs, done).
  nb::tuple step(const nb::ndarray<nb::ro>& actions) {
    const int32_t* device_actions = actions_on_device(actions);
    const auto n = static_cast<std::size_t>(size());
    Block* block = new_block();
    nb::capsule owner(block, [](void* p) noexcept { delete static_cast<Block*>(p); });
    char* base = block->data;
    StepTargets t;
    t.obs = reinterpret_cast<float*>(base + layout_.obs);
    t.reward = reinterpret_cast<float*>(base + layout_.reward);
    t.terminated = reinterpret_cast<uint8_t*>(base + layout_.terminated);
    t.truncated = reinterpret_cast<uint8_t*>(base + layout_.truncated);
    const bool same_step = env_->autoreset() == AutoresetMode::kSameStep;
    if (same_step) {
      t.final_obs = reinterpret_cast<float*>(base + layout_.final_obs);
      // final_obs, done and the count are adjacent: one fill.
      device_->fill_zero(t.final_obs, layout_.terminated - layout_.final_obs);
    }
    auto* done = reinterpret_cast<uint8_t*>(base + layout_.done);
    {
      const nb::gil_scoped_release release;
      env_->step(device_actions, t);
      if (same_step) {
        device_->rl().mark_ended(done, t.terminated, t.truncated, static_cast<int64_t>(n),
                                 reinterpret_cast<int64_t*>(base + layout_.count));
      }
      // The GPU reports a bad action here (a synchronisation: the arrays are complete when
      // Python gets them, whatever stream reads them next).
      device_->check_errors();
    }
    nb::object obs = array<float>(t.obs, {n, 4}, owner);
    nb::object reward = array<float>(t.reward, {n}, owner);
    nb::object term = array<bool>(reinterpret_cast<bool*>(t.terminated), {n}, owner);
    nb::object trunc = array<bool>(reinterpret_cast<bool*>(t.truncated), {n}, owner);
    if (!same_step) return nb::make_tuple(obs, reward, term, trunc);
    return nb::make_tuple(obs, reward, term, trunc, array<float>(t.final_obs, {n, 4}, owner),
                          array<bool>(reinterpret_cast<bool*>(done), {n}, owner));
  }

  // (state (N, 4) float64, elapsed steps (N,) int64), host arrays of their own.
  nb::tuple get_state() const {
    const EnvState s = env_->get_state();
    const auto n = static_cast<std::size_t>(size());
    auto* state = new double[4 * n];
    nb::capsule own_state(state, [](void* p) noexcept { delete[] static_cast<double*>(p); });
    auto* elapsed = new int64_t[n];
    nb::capsule own_elapsed(elapsed, [](void* p) noexcept { delete[] static_cast<int64_t*>(p); });
    for (std::size_t i = 0; i < n; ++i) {
      state[4 * i + 0] = s.x[i];
      state[4 * i + 1] = s.x_dot[i];
      state[4 * i + 2] = s.theta[i];
      state[4 * i + 3] = s.theta_dot[i];
      elapsed[i] = s.length[i];
    }
    return nb::make_tuple(nb::ndarray<nb::numpy, double>(state, {n, 4}, own_state).cast(),
                          nb::ndarray<nb::numpy, int64_t>(elapsed, {n}, own_elapsed).cast());
  }

  // Every env's state; elapsed steps as given, or 0 (then each env's return so far is 0 too).
  // Episode counters are kept, so later episodes still draw their own start states.
  void set_state(const nb::ndarray<nb::numpy, const double, nb::shape<-1, 4>, nb::c_contig>& state,
                 std::optional<nb::ndarray<nb::numpy, const int64_t, nb::ndim<1>>> elapsed) {
    const auto n = static_cast<std::size_t>(size());
    BP_CHECK_ARG(state.shape(0) == n,
                 "state must have shape (" << n << ", 4), got (" << state.shape(0) << ", 4)");
    EnvState s = env_->get_state();
    const double* v = state.data();
    for (std::size_t i = 0; i < n; ++i) {
      s.x[i] = v[4 * i + 0];
      s.x_dot[i] = v[4 * i + 1];
      s.theta[i] = v[4 * i + 2];
      s.theta_dot[i] = v[4 * i + 3];
    }
    if (elapsed) {
      const auto& e = *elapsed;
      BP_CHECK_ARG(e.shape(0) == n,
                   "elapsed_steps must have shape (" << n << ",), got (" << e.shape(0) << ",)");
      const int32_t limit = env_->params().max_episode_steps;
      for (std::size_t i = 0; i < n; ++i) {
        const int64_t len = e.data()[static_cast<int64_t>(i) * e.stride(0)];
        BP_CHECK_ARG(len >= 0 && (limit == 0 || len < limit),
                     "elapsed_steps[" << i << "] is " << len << ", outside [0, "
                                      << (limit == 0 ? std::string("2^31") : std::to_string(limit))
                                      << ")");
        BP_CHECK_ARG(len < (int64_t{1} << 31), "elapsed_steps[" << i << "] is too large");
        s.length[i] = static_cast<int32_t>(len);
      }
    } else {
      std::fill(s.length.begin(), s.length.end(), 0);
      std::fill(s.ret.begin(), s.ret.end(), 0.0F);
    }
    env_->set_state(s);
  }

  [[nodiscard]] std::string device_description() const { return device_->description(); }
  [[nodiscard]] std::string device_kind() const { return to_string(device_->kind()); }
  [[nodiscard]] std::string precision() const { return to_string(env_->precision()); }
  [[nodiscard]] std::string autoreset() const { return to_string(env_->autoreset()); }
  [[nodiscard]] uintptr_t stream() const {
    return reinterpret_cast<uintptr_t>(device_->native_stream());
  }
  [[nodiscard]] nb::dict params() const {
    const CartPoleParams& p = env_->params();
    nb::dict d;
    d["reward"] = to_string(p.reward_mode);
    d["integrator"] = to_string(p.integrator);
    d["theta_threshold"] = p.theta_threshold;
    d["x_threshold"] = p.x_threshold;
    d["max_episode_steps"] = p.max_episode_steps;
    return d;
  }

 private:
  template <class T>
  nb::object array(T* data, std::initializer_list<std::size_t> shape, nb::handle owner) const {
    if (on_cuda()) {
      return nb::ndarray<T>(data, shape, owner, {}, nb::dtype<T>(), kDlCuda, 0).cast();
    }
    return nb::ndarray<nb::numpy, T>(data, shape, owner).cast();
  }

  Block* new_block() {
    auto* b = new Block;
    b->device = device_;
    b->pool = pool_;
    try {
      b->data = static_cast<char*>(pool_->take());
    } catch (...) {
      b->pool.reset();
      delete b;
      throw;
    }
    return b;
  }

  // The observations the env just wrote to its own buffer, in a block of their own.
  nb::object observations_from_env() {
    const auto n = static_cast<std::size_t>(size());
    Block* block = new_block();
    nb::capsule owner(block, [](void* p) noexcept { delete static_cast<Block*>(p); });
    auto* obs = reinterpret_cast<float*>(block->data + layout_.obs);
    device_->copy_on_device(obs, env_->obs(), 4 * n * sizeof(float));
    device_->check_errors();
    return array<float>(obs, {n, 4}, owner);
  }

  void check_shape(const nb::ndarray<nb::ro>& a, const char* what) const {
    if (a.ndim() != 1 || static_cast<int64_t>(a.shape(0)) != size()) {
      throw nb::value_error((std::string(what) + " must have shape (" + std::to_string(size()) +
                             ",), one per environment, got " + shape_text(a))
                                .c_str());
    }
  }

  // The actions as N int32 0/1 values on the env's device: used in place where they already are
  // (int32, contiguous, on the env's device; the engine checks them), converted otherwise.
  const int32_t* actions_on_device(const nb::ndarray<nb::ro>& a) {
    check_shape(a, "actions");
    if (!is_action_dtype(a.dtype())) {
      throw nb::type_error(
          ("actions must be integers (any int or uint dtype) or bool, got " + dtype_name(a.dtype()))
              .c_str());
    }
    const int64_t n = size();
    const int dev = a.device_type();
    const bool host = dev == kDlCpu || dev == kDlCudaHost;
    if (!host && !(dev == kDlCuda && on_cuda())) {
      throw nb::value_error(on_cuda() ? "actions must be on the host or on the environment's GPU"
                                      : "actions must be host memory (NumPy or a CPU tensor) for "
                                        "an environment on the CPU");
    }
    if (dev == kDlCuda && a.device_id() != 0) {
      throw nb::value_error("actions are on another GPU than the environment's (GPU 0)");
    }
    const bool in_place = is_int32(a.dtype()) && (a.stride(0) == 1 || n == 1);
    if (in_place && (host ? !on_cuda() : true)) return static_cast<const int32_t*>(a.data());
    if (host && !on_cuda()) {
      host_actions(a, n, actions_.data());
      return actions_.data();
    }
    std::vector<int32_t> converted(static_cast<std::size_t>(n));
    if (host) {
      host_actions(a, n, converted.data());
    } else {
      // Device actions of another dtype or layout go through the host.
      if (a.stride(0) < 0) throw nb::value_error("device actions need a non-negative stride");
      const std::size_t item = a.dtype().bits / 8;
      const std::size_t span = (static_cast<std::size_t>(n - 1) * a.stride(0) + 1) * item;
      std::vector<char> raw(span);
      device_->copy_to_host(raw.data(), a.data(), span);
      const nb::ndarray<nb::ro> view(raw.data(), {static_cast<std::size_t>(n)}, nb::handle(),
                                     {a.stride(0)}, a.dtype(), kDlCpu);
      host_actions(view, n, converted.data());
    }
    actions_.from_host(converted);
    return actions_.data();
  }

  std::shared_ptr<Device> device_;
  std::unique_ptr<VecEnv> env_;
  Layout layout_{0};
  std::shared_ptr<Pool> pool_;
  Buffer<int32_t> actions_;
  Buffer<uint8_t> mask_;
};

// ---- training and evaluation ----------------------------------------------------------------

nb::dict progress_dict(const RunProgress& p) {
  const UpdateRecord& r = p.record;
  const EpisodeTally& t = r.recent;
  const bool any = t.episodes > 0;
  nb::dict d;
  d["update"] = r.update;
  d["env_steps"] = r.env_steps;
  d["episodes"] = r.episodes;
  d["wall_s"] = p.wall_s;
  d["env_steps_per_s"] = p.env_steps_per_s;
  d["budget_fraction"] = p.budget_fraction;
  d["recent_episodes"] = t.episodes;
  d["mean_return"] = any ? t.return_sum / t.episodes : 0.0;
  d["mean_length"] = any ? t.length_sum / t.episodes : 0.0;
  d["policy_loss"] = r.loss.policy_loss;
  d["value_loss"] = r.value_loss;
  d["entropy"] = r.loss.entropy;
  d["grad_norm"] = r.loss.grad_norm;
  d["done"] = p.done;
  d["agents"] = p.agents;
  d["solved"] = p.solved;
  d["active"] = p.active;
  d["population_env_steps"] = p.env_steps;
  d["population_mean_return"] = p.mean_return;
  return d;
}

// Trains as `batchpole train` does with these keys; returns (exit code, run directory,
// summary.json's text, the closing message). progress(dict) is called after every update and
// message(str) with the run's notices (either may be None). Ctrl-C (or an exception in a
// callback) stops the run as the command line's does: checkpoint and summary, then the
// exception is raised.
nb::tuple train(const nb::dict& config, const nb::object& progress, const nb::object& message) {
  RunKeys keys;
  for (auto [k, v] : config) {
    const std::string key = nb::cast<std::string>(nb::str(k));
    const FieldSpec* spec = find_field(run_config_fields(), key);
    if (spec == nullptr) spec = find_field(train_config_fields(), key);
    if (spec == nullptr) {
      throw nb::type_error(("train() got an unknown configuration key '" + key +
                            "' (the keys of `batchpole train --config`)")
                               .c_str());
    }
    FieldValue value = field_value(v, key);
    spec->check(value);
    keys[key] = std::move(value);
  }
  const RunConfig run = resolve_run_config(keys);
  DeviceOptions options;
  options.device = DeviceRequest::parse(run.device);
  options.threads = run.threads;
  const auto device = make_device(options);
  const std::vector<SweepPoint> points = resolve_sweep(keys, device->plan());

  std::optional<nb::python_error> failure;
  RunCallbacks cb;
  cb.interrupted = [&failure]() {
    const nb::gil_scoped_acquire gil;
    if (!failure && PyErr_CheckSignals() != 0) failure.emplace();
    return failure.has_value();
  };
  if (!progress.is_none()) {
    cb.on_update = [&](const RunProgress& p) {
      const nb::gil_scoped_acquire gil;
      if (failure) return;
      try {
        progress(progress_dict(p));
      } catch (nb::python_error& e) {
        failure.emplace(std::move(e));
      }
    };
  }
  if (!message.is_none()) {
    cb.message = [&](const std::string& m) {
      const nb::gil_scoped_acquire gil;
      if (failure) return;
      try {
        message(m);
      } catch (nb::python_error& e) {
        failure.emplace(std::move(e));
      }
    };
  }
  RunResult result;
  {
    const nb::gil_scoped_release release;
    result = run_training(*device, run, points, has_train_keys(keys), cb);
  }
  if (failure) throw nb::python_error(std::move(*failure));
  return nb::make_tuple(result.exit_code, result.out_dir, result.summary_json, result.message);
}

nb::dict evaluate_checkpoint(const std::string& checkpoint, int64_t episodes, bool greedy,
                             uint64_t seed, const std::string& device, int threads) {
  DeviceOptions o;
  o.device = DeviceRequest::parse(device);
  o.threads = threads;
  const auto dev = make_device(o);
  EvalOptions eo;
  eo.episodes = episodes;
  eo.greedy = greedy;
  eo.seed = seed;
  EvalResult r;
  {
    const nb::gil_scoped_release release;
    r = evaluate(*dev, checkpoint, eo);
  }
  nb::dict d;
  d["checkpoint"] = checkpoint;
  d["algo"] = r.algo;
  d["episodes"] = r.episodes;
  d["greedy"] = greedy;
  d["mean_return"] = r.mean_return;
  d["std_return"] = r.std_return;
  d["min_return"] = r.min_return;
  d["max_return"] = r.max_return;
  d["device"] = dev->description();
  nb::list returns;
  for (double x : r.returns) returns.append(x);
  d["returns"] = returns;
  return d;
}

nb::dict cuda_info() {
  const CudaStatus& s = cuda_status();
  nb::dict d;
  d["built"] = s.built;
  d["plugin"] = s.plugin;
  d["loaded"] = s.loaded;
  d["device_count"] = s.device_count;
  nb::list names;
  for (const auto& name : s.device_names) names.append(name);
  d["device_names"] = names;
  d["reason"] = s.reason;
  return d;
}

nb::list config_keys(bool run_keys) {
  nb::list keys;
  if (run_keys) {
    for (const auto& f : run_config_fields()) keys.append(f.key);
  } else {
    for (const auto& f : train_config_fields()) keys.append(f.key);
  }
  return keys;
}

}  // namespace

}  // namespace batchpole::python

NB_MODULE(_batchpole, m) {
  using batchpole::Error;
  using namespace batchpole::python;
  m.doc() = "batchpole's C++ engine (use the batchpole package, not this module)";
  m.attr("__version__") = BATCHPOLE_VERSION;

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Error& e) {
      switch (e.kind()) {
        case Error::Kind::kInvalidArgument:
          PyErr_SetString(PyExc_ValueError, e.what());
          break;
        case Error::Kind::kOutOfMemory:
          PyErr_SetString(PyExc_MemoryError, e.what());
          break;
        case Error::Kind::kUnavailable:
        case Error::Kind::kRuntime:
        default:
          PyErr_SetString(PyExc_RuntimeError, e.what());
          break;
      }
    }
  });

  nb::class_<Env>(m, "Env")
      .def(nb::init<int64_t, const std::string&, int, const std::string&, const std::string&,
                    const nb::dict&>(),
           "num_envs"_a, "device"_a, "threads"_a, "precision"_a, "autoreset"_a, "env_params"_a)
      .def("reset", &Env::reset, "seed"_a)
      .def("next_episode", &Env::next_episode, "mask"_a.none())
      .def("step", &Env::step, "actions"_a)
      .def("get_state", &Env::get_state)
      .def("set_state", &Env::set_state, "state"_a, "elapsed"_a.none())
      .def_prop_ro("num_envs", &Env::size)
      .def_prop_ro("device", &Env::device_description)
      .def_prop_ro("device_kind", &Env::device_kind)
      .def_prop_ro("precision", &Env::precision)
      .def_prop_ro("autoreset", &Env::autoreset)
      .def_prop_ro("stream", &Env::stream)
      .def_prop_ro("params", &Env::params);

  m.def("train", &train, "config"_a, "progress"_a.none(), "message"_a.none());
  m.def("evaluate", &evaluate_checkpoint, "checkpoint"_a, "episodes"_a, "greedy"_a, "seed"_a,
        "device"_a, "threads"_a);
  m.def("cuda_status", &cuda_info);
  m.def("config_keys", &config_keys, "run_keys"_a);
  m.def("env_keys", [] {
    nb::list keys;
    for (const auto& k : env_keys()) keys.append(k);
    return keys;
  });
}
