// Deep Q-learning (Mnih et al. 2015), batched, for the notebook's Exercise 3: every env acts
// epsilon-greedily on the Q-network for n_steps steps; the transitions go into a replay buffer
// on the device (fixed capacity, circular); then gradient_steps Adam steps, each on a minibatch
// drawn uniformly from the buffer with the counter-based generator (Stream::kReplay, keyed by
// the minibatch's number), on the Huber loss of Q(s, a) against the TD target
//   y = r                                   where the episode terminated,
//   y = r + gamma Q_target(s', a*)           otherwise, a truncated step included (s' is then
//                                            the final observation),
// with a* = argmax Q_online(s', .) (double DQN) or argmax Q_target(s', .), the gradient's norm
// clipped to max_grad_norm. The target network is a second model with the same shape; it
// follows the online one every target_update gradient steps (a copy, or Polyak averaging with
// tau < 1). Nothing here waits for the device: the replay cursors go to it with the update's
// other work (one host-to-device copy per update for a population, and for one agent where the
// device records updates, so that the update's operations keep their arguments).
//
// The Q-network is PolicyValueModel's kQNetwork (its "policy" network's outputs are the
// Q-values), so it runs through the same Mlp, BLAS, Adam and sharded runner as the others.
//
// A population: every agent has its own replay buffer (agent-major: agent k's slots follow
// agent k - 1's), target network (the target model's agent k), minibatches (packed agent after
// agent) and counters, and each agent's update is the one it would take alone. One operation
// stores, samples and computes the TD targets of every agent; an agent learns once it has
// stored learning_starts transitions in all (with learning_starts > buffer_size, once its
// buffer has wrapped that many times over).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include "batchpole/core/checked.hpp"
#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/blas.hpp"
#include "learner.hpp"

namespace batchpole {

namespace {

constexpr int32_t kObsDim = 4;
constexpr int32_t kActions = 2;
constexpr uint32_t kStateMagic = 0x314E5144U;  // "DQN1"

// Every agent's buffer of `slots` transitions, agent after agent.
struct ReplayBuffer {
  ReplayBuffer(Device& d, int64_t slots, int64_t agents)
      : obs(d, static_cast<std::size_t>(agents * slots * kObsDim)),
        actions(d, static_cast<std::size_t>(agents * slots)),
        rewards(d, static_cast<std::size_t>(agents * slots)),
        terminated(d, static_cast<std::size_t>(agents * slots)),
        next_obs(d, static_cast<std::size_t>(agents * slots * kObsDim)),
        capacity(slots) {}
  static std::size_t bytes(int64_t slots) {
    return static_cast<std::size_t>(slots) *
           (2 * kObsDim * sizeof(float) + sizeof(int32_t) + sizeof(float) + 1);
  }
  ReplayArrays arrays() {
    return {obs.data(),      actions.data(), rewards.data(), terminated.data(),
            next_obs.data(), capacity,       kObsDim};
  }
  Buffer<float> obs;
  Buffer<int32_t> actions;
  Buffer<float> rewards;
  Buffer<uint8_t> terminated;
  Buffer<float> next_obs;
  int64_t capacity;  // of each agent
};

// One minibatch of every agent (packed agent after agent) and what its loss needs. Zeroed, so
// that the rows of agents that do not learn in an update hold finite numbers for the passes
// that run over all agents.
struct Minibatch {
  Minibatch(Device& d, int64_t n, int64_t agents)
      : obs(d, static_cast<std::size_t>(agents * n * kObsDim)),
        actions(d, static_cast<std::size_t>(agents * n)),
        rewards(d, static_cast<std::size_t>(agents * n)),
        terminated(d, static_cast<std::size_t>(agents * n)),
        next_obs(d, static_cast<std::size_t>(agents * n * kObsDim)),
        next_q_target(d, static_cast<std::size_t>(agents * n * kActions)),
        next_q_online(d, static_cast<std::size_t>(agents * n * kActions)),
        targets(d, static_cast<std::size_t>(agents * n)),
        rows(n) {
    for (Buffer<float>* b : {&obs, &rewards, &next_obs, &next_q_target, &next_q_online, &targets}) {
      b->zero();
    }
    actions.zero();
    terminated.zero();
  }
  static std::size_t bytes(int64_t n) {
    return static_cast<std::size_t>(n) *
           (2 * kObsDim * sizeof(float) + sizeof(int32_t) + sizeof(float) + 1 +
            2 * kActions * sizeof(float) + sizeof(float));
  }
  Buffer<float> obs;
  Buffer<int32_t> actions;
  Buffer<float> rewards;
  Buffer<uint8_t> terminated;
  Buffer<float> next_obs, next_q_target, next_q_online, targets;
  int64_t rows;  // of each agent
};

// One agent's counters.
struct AgentState {
  int64_t position = 0;        // the next slot to write
  int64_t size = 0;            // slots [0, size) hold transitions
  int64_t stored = 0;          // transitions stored so far (env steps)
  uint64_t draws = 0;          // minibatches drawn so far (Stream::kReplay's counter)
  int64_t gradient_steps = 0;  // since the start: the target's clock
};

// Bytes of the checkpoint state, appended and read back in order.
class Bytes {
 public:
  template <class T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const unsigned char*>(&v);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  template <class T>
  void put(const std::vector<T>& v) {
    put<uint64_t>(v.size());
    const auto* p = reinterpret_cast<const unsigned char*>(v.data());
    out_.insert(out_.end(), p, p + v.size() * sizeof(T));
  }
  [[nodiscard]] std::vector<unsigned char> take() { return std::move(out_); }

 private:
  std::vector<unsigned char> out_;
};

class ByteReader {
 public:
  explicit ByteReader(const std::vector<unsigned char>& in) : in_(in) {}
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <class T>
  std::vector<T> get_vec(uint64_t expected) {
    const auto n = get<uint64_t>();
    BP_CHECK_ARG(n == expected, "the checkpoint's DQN state holds " << n << " values where "
                                                                    << expected << " belong");
    need(n * sizeof(T));
    std::vector<T> v(n);
    if (n > 0) std::memcpy(v.data(), in_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
    return v;
  }
  [[nodiscard]] bool at_end() const { return pos_ == in_.size(); }

 private:
  void need(std::size_t k) const {
    BP_CHECK_ARG(in_.size() - pos_ >= k, "the checkpoint's DQN state is truncated");
  }
  const std::vector<unsigned char>& in_;
  std::size_t pos_ = 0;
};

// n values of a device buffer from element `at`, and back.
template <class T>
std::vector<T> read(const Buffer<T>& b, Device& d, int64_t at, int64_t n) {
  std::vector<T> out(static_cast<std::size_t>(n));
  if (n > 0) d.copy_to_host(out.data(), b.data() + at, out.size() * sizeof(T));
  return out;
}

template <class T>
void write(Buffer<T>& b, Device& d, int64_t at, const std::vector<T>& v) {
  if (!v.empty()) d.copy_from_host(b.data() + at, v.data(), v.size() * sizeof(T));
}

// One agent's checkpoint state, read and checked.
struct SavedAgent {
  AgentState state;
  std::vector<float> target, obs, rewards, next_obs;
  std::vector<int32_t> actions;
  std::vector<uint8_t> terminated;
};

class Dqn final : public Learner {
 public:
  explicit Dqn(const TrainConfig& c) : c_(c) {}

  [[nodiscard]] RolloutSpec rollout_spec() const override {
    RolloutSpec s;
    s.steps = c_.n_steps;
    s.bootstrap = true;  // final observations: truncated transitions bootstrap from them
    s.epsilon_greedy = true;
    s.epsilon = {c_.epsilon_start, c_.epsilon_end, c_.epsilon_decay_steps};
    s.reuses_activations = false;
    return s;
  }
  [[nodiscard]] ModelConfig model_config() const override {
    return ModelConfig::q_network(kObsDim, kActions, c_.hidden);
  }
  [[nodiscard]] ModelOptions model_options() const override { return model_options_for(c_, true); }

  [[nodiscard]] std::size_t bytes_required(const Device& device, int64_t /*envs*/,
                                           int64_t agents) const override {
    const DevicePlan& plan = device.plan();
    const auto k = static_cast<std::size_t>(agents);
    const std::size_t model =
        PolicyValueModel::memory_required(model_config(),
                                          c_.chunk_rows > 0 ? c_.chunk_rows : plan.chunk_rows,
                                          device.threads(), plan.shards, agents, plan.batch_agents)
            .total();
    return checked_add(checked_mul(k, checked_add(ReplayBuffer::bytes(c_.buffer_size),
                                                  Minibatch::bytes(c_.batch_size))),
                       model);
  }

  void attach(Device& device, PolicyValueModel& model) override {
    device_ = &device;
    agents_ = model.agents();
    // The target model has the online one's agents and seeds; its parameters are a copy.
    target_ = std::make_unique<PolicyValueModel>(device, model.config(), model.options());
    device.copy_on_device(
        target_->parameters(), model.parameters(),
        static_cast<std::size_t>(agents_ * model.parameter_count()) * sizeof(float));
    replay_.emplace(device, c_.buffer_size, agents_);
    batch_.emplace(device, c_.batch_size, agents_);
    state_.assign(static_cast<std::size_t>(agents_), AgentState{});
    target_active_.assign(static_cast<std::size_t>(agents_), 1);
    // The cursors in device memory: a population's, and one agent's where the device records
    // updates (its position, size and draws change every update).
    if (agents_ > 1 || device.plan().graphs) {
      cursors_ = Buffer<ReplayCursor>(device, static_cast<std::size_t>(agents_));
    }
  }

  LearnReport learn(const LearnContext& ctx) override {
    Rollout& r = ctx.rollout;
    RlOps& rl = ctx.device.rl();
    ReplayBuffer& replay = *replay_;
    const int64_t rows = ctx.steps * r.envs;  // of each active agent: DQN's rollouts are n steps
    const std::vector<uint64_t>& seeds = ctx.model.seeds();

    // Each active agent stores its rollout and learns once it has stored learning_starts.
    std::vector<ReplayCursor> cursors(static_cast<std::size_t>(agents_));
    std::vector<uint8_t> learning(static_cast<std::size_t>(agents_), 0);
    for (int64_t k = 0; k < agents_; ++k) {
      AgentState& a = state_[k];
      ReplayCursor& cursor = cursors[k];
      cursor.active = ctx.active[k];
      cursor.position = a.position;
      cursor.seed = seeds[k];
      cursor.draw = a.draws;
      if (ctx.active[k] != 0) {
        BP_CHECK_ARG(ctx.agent_steps[k] == ctx.steps, "dqn: agent " << k << " took "
                                                                    << ctx.agent_steps[k] << " of "
                                                                    << ctx.steps << " steps");
        a.position = (a.position + rows) % replay.capacity;
        a.size = std::min(a.size + rows, replay.capacity);
        a.stored += rows;
        learning[k] = a.stored >= c_.learning_starts ? 1 : 0;
      }
      cursor.size = a.size;
    }
    const bool on_device = cursors_.size() > 0;
    if (on_device) {
      ctx.device.copy_parameters(cursors_.data(), cursors.data(),
                                 cursors.size() * sizeof(ReplayCursor));
    }
    ReplayStoreArgs st;
    st.replay = replay.arrays();
    st.position = on_device ? 0 : cursors[0].position;
    st.rows = rows;
    st.envs = r.envs;
    st.obs = r.obs.data();
    st.actions = r.actions.data();
    st.rewards = r.rewards.data();
    st.terminated = r.terminated.data();
    st.truncated = r.truncated.data();
    st.final_obs = r.final_obs.data();
    st.agents = agents_;
    st.agent_stride = ctx.stride();
    st.cursors = on_device ? cursors_.data() : nullptr;
    rl.replay_store(st);

    LearnReport report = report_of(ctx, false, 0);
    if (std::find(learning.begin(), learning.end(), 1) == learning.end()) return report;
    const bool all_learning =
        std::equal(learning.begin(), learning.end(), ctx.active.begin(), ctx.active.end());
    if (!all_learning) ctx.model.set_active(learning);
    if (learning != target_active_) {
      target_->set_active(learning);
      target_active_ = learning;
    }

    Minibatch& mb = *batch_;
    const int64_t n = mb.rows;
    for (int32_t g = 0; g < c_.gradient_steps; ++g) {
      ReplaySampleArgs sa;
      sa.replay = replay.arrays();
      sa.rows = n;
      sa.obs = mb.obs.data();
      sa.actions = mb.actions.data();
      sa.rewards = mb.rewards.data();
      sa.terminated = mb.terminated.data();
      sa.next_obs = mb.next_obs.data();
      if (on_device) {
        sa.agents = agents_;
        sa.cursors = cursors_.data();
        sa.draw = static_cast<uint64_t>(g);  // after each agent's own count
      } else {
        sa.size = cursors[0].size;
        sa.seed = cursors[0].seed;
        sa.draw = cursors[0].draw + static_cast<uint64_t>(g);
      }
      rl.replay_sample(sa);

      const ConstMatrix next{mb.next_obs.data(), n, kObsDim};
      target_->logits(next, mb.next_q_target.data(), n, n);
      if (c_.double_dqn) ctx.model.logits(next, mb.next_q_online.data(), n, n);
      TdTargetArgs ta;  // row by row over every agent's minibatch
      ta.rewards = mb.rewards.data();
      ta.terminated = mb.terminated.data();
      ta.next_q_target = mb.next_q_target.data();
      ta.next_q_online = c_.double_dqn ? mb.next_q_online.data() : nullptr;
      ta.num_actions = kActions;
      ta.gamma = c_.gamma;
      ta.rows = agents_ * n;
      ta.targets = mb.targets.data();
      rl.td_targets(ta);

      RolloutView view;
      view.obs = ConstMatrix{mb.obs.data(), n, kObsDim};
      view.actions = mb.actions.data();
      view.q_targets = mb.targets.data();
      view.huber_delta = c_.huber_delta;
      view.count = static_cast<float>(n);
      view.agent_stride = agents_ > 1 ? n : 0;
      ctx.model.accumulate_gradients(view, LossConfig{0.0F, 1.0F});
      ctx.model.step();
      std::vector<int64_t> following;
      for (int64_t k = 0; k < agents_; ++k) {
        if (learning[k] == 0) continue;
        ++state_[k].gradient_steps;
        ++report.epochs[k];
        if (state_[k].gradient_steps % c_.target_update == 0) following.push_back(k);
      }
      follow(ctx.model, following);
    }
    for (int64_t k = 0; k < agents_; ++k) {
      if (learning[k] != 0) state_[k].draws += static_cast<uint64_t>(c_.gradient_steps);
    }
    if (!all_learning) ctx.model.set_active(ctx.active);
    return report;
  }

  [[nodiscard]] std::vector<std::vector<unsigned char>> save_state() const override {
    Device& d = *device_;
    const ReplayBuffer& rb = *replay_;
    const int64_t p = target_->parameter_count();
    const std::vector<float> target = target_->get_parameters();
    std::vector<std::vector<unsigned char>> out;
    for (int64_t k = 0; k < agents_; ++k) {
      const AgentState& a = state_[k];
      const int64_t first = k * rb.capacity;
      Bytes b;
      b.put(kStateMagic);
      b.put(rb.capacity);
      b.put(a.position);
      b.put(a.size);
      b.put(a.stored);
      b.put(a.draws);
      b.put(a.gradient_steps);
      b.put(std::vector<float>(target.begin() + k * p, target.begin() + (k + 1) * p));
      b.put(read(rb.obs, d, first * kObsDim, a.size * kObsDim));
      b.put(read(rb.actions, d, first, a.size));
      b.put(read(rb.rewards, d, first, a.size));
      b.put(read(rb.terminated, d, first, a.size));
      b.put(read(rb.next_obs, d, first * kObsDim, a.size * kObsDim));
      out.push_back(b.take());
    }
    return out;
  }

  void check_state(const std::vector<std::vector<unsigned char>>& agents) const override {
    (void)parse_state(agents);
  }

  void restore_state(const std::vector<std::vector<unsigned char>>& agents) override {
    const std::vector<SavedAgent> saved = parse_state(agents);
    const int64_t p = target_->parameter_count();

    // Everything read and checked: only now change the state.
    Device& d = *device_;
    ReplayBuffer& rb = *replay_;
    std::vector<float> target;
    target.reserve(static_cast<std::size_t>(agents_ * p));
    for (int64_t k = 0; k < agents_; ++k) {
      const SavedAgent& s = saved[k];
      const int64_t first = k * rb.capacity;
      target.insert(target.end(), s.target.begin(), s.target.end());
      write(rb.obs, d, first * kObsDim, s.obs);
      write(rb.actions, d, first, s.actions);
      write(rb.rewards, d, first, s.rewards);
      write(rb.terminated, d, first, s.terminated);
      write(rb.next_obs, d, first * kObsDim, s.next_obs);
      state_[k] = s.state;
    }
    target_->set_parameters(target);
  }

 private:
  // Every agent's bytes, read and checked against this configuration (no device needed, so
  // that the checkpoint reader can refuse a damaged state before anything is built): counts
  // within the buffer, actions among CartPole's, flags 0 or 1, every number finite.
  [[nodiscard]] std::vector<SavedAgent> parse_state(
      const std::vector<std::vector<unsigned char>>& agents) const {
    BP_CHECK_ARG(!agents.empty(),
                 "the checkpoint holds no DQN state (target network, replay "
                 "buffer): it was not written by dqn");
    BP_CHECK_ARG(static_cast<int64_t>(agents.size()) == c_.agents,
                 "the checkpoint holds the DQN state of " << agents.size() << " agents, this "
                                                          << "population has " << c_.agents);
    const int64_t p = model_config().parameter_count();
    const int64_t capacity = c_.buffer_size;
    const auto finite = [](const std::vector<float>& v) {
      return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
    };
    std::vector<SavedAgent> saved;
    for (const std::vector<unsigned char>& bytes : agents) {
      ByteReader in(bytes);
      BP_CHECK_ARG(in.get<uint32_t>() == kStateMagic, "the checkpoint's DQN state is not one");
      const auto cap = in.get<int64_t>();
      BP_CHECK_ARG(cap == capacity, "the checkpoint's replay buffer holds "
                                        << cap << " transitions, this one " << capacity);
      SavedAgent s;
      AgentState& a = s.state;
      a.position = in.get<int64_t>();
      a.size = in.get<int64_t>();
      a.stored = in.get<int64_t>();
      a.draws = in.get<uint64_t>();
      a.gradient_steps = in.get<int64_t>();
      BP_CHECK_ARG(a.size >= 0 && a.size <= capacity && a.position >= 0 && a.position < capacity &&
                       a.stored >= a.size && a.gradient_steps >= 0 &&
                       (a.size == capacity || a.position == a.size),
                   "the checkpoint's replay buffer is damaged");
      s.target = in.get_vec<float>(static_cast<uint64_t>(p));
      const auto us = static_cast<uint64_t>(a.size);
      s.obs = in.get_vec<float>(us * kObsDim);
      s.actions = in.get_vec<int32_t>(us);
      s.rewards = in.get_vec<float>(us);
      s.terminated = in.get_vec<uint8_t>(us);
      s.next_obs = in.get_vec<float>(us * kObsDim);
      BP_CHECK_ARG(in.at_end(), "the checkpoint's DQN state has trailing bytes");
      BP_CHECK_ARG(finite(s.target) && finite(s.obs) && finite(s.rewards) && finite(s.next_obs),
                   "the checkpoint's DQN state holds a value that is not finite");
      BP_CHECK_ARG(std::all_of(s.actions.begin(), s.actions.end(),
                               [](int32_t x) { return x >= 0 && x < kActions; }) &&
                       std::all_of(s.terminated.begin(), s.terminated.end(),
                                   [](uint8_t x) { return x <= 1; }),
                   "the checkpoint's replay buffer holds an action or flag out of range");
      saved.push_back(std::move(s));
    }
    return saved;
  }

  // The target networks of `agents` take their online networks' parameters (tau = 1) or move
  // towards them. All agents at once where they all follow; on the agents' own passes, where
  // each must be what it is alone, an average runs agent by agent (BLAS may round an element
  // differently at another offset in a longer vector; a copy is exact either way).
  void follow(PolicyValueModel& online, const std::vector<int64_t>& agents) {
    if (agents.empty()) return;
    const int64_t p = online.parameter_count();
    const bool copy = c_.tau >= 1.0F;
    const bool at_once =
        static_cast<int64_t>(agents.size()) == agents_ && (copy || online.batched());
    float* target = target_->parameters();
    const float* source = online.parameters();
    Blas& blas = device_->blas();
    const auto follow_range = [&](int64_t first, int64_t count) {
      const int64_t at = first * p;
      const int64_t n = count * p;
      if (copy) {
        device_->copy_on_device(target + at, source + at,
                                static_cast<std::size_t>(n) * sizeof(float));
      } else {
        blas.scal(n, 1.0F - c_.tau, target + at, 1);
        blas.axpy(n, c_.tau, source + at, 1, target + at, 1);
      }
    };
    if (at_once) {
      follow_range(0, agents_);
    } else {
      for (const int64_t k : agents) follow_range(k, 1);
    }
  }

  TrainConfig c_;
  Device* device_ = nullptr;
  int64_t agents_ = 1;
  std::unique_ptr<PolicyValueModel> target_;
  std::vector<uint8_t> target_active_;  // the agents the target model computes
  std::optional<ReplayBuffer> replay_;
  std::optional<Minibatch> batch_;
  std::vector<AgentState> state_;
  Buffer<ReplayCursor> cursors_;  // uploaded once per update (a population, or recorded updates)
};

}  // namespace

std::unique_ptr<Learner> make_dqn(const TrainConfig& config) {
  return std::make_unique<Dqn>(config);
}

}  // namespace batchpole
