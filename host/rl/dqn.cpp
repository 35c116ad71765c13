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
// tau < 1). Nothing here synchronises with the device.
//
// The Q-network is PolicyValueModel's kQNetwork (its "policy" network's outputs are the
// Q-values), so it runs through the same Mlp, BLAS, Adam and sharded runner as the others.
#include <cstring>
#include <optional>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/blas.hpp"
#include "learner.hpp"

namespace batchpole {

namespace {

constexpr int32_t kObsDim = 4;
constexpr int32_t kActions = 2;
constexpr uint32_t kStateMagic = 0x314E5144U;  // "DQN1"

struct ReplayBuffer {
  ReplayBuffer(Device& d, int64_t slots)
      : obs(d, static_cast<std::size_t>(slots * kObsDim)),
        actions(d, static_cast<std::size_t>(slots)),
        rewards(d, static_cast<std::size_t>(slots)),
        terminated(d, static_cast<std::size_t>(slots)),
        next_obs(d, static_cast<std::size_t>(slots * kObsDim)),
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
  int64_t capacity;
  int64_t position = 0;  // the next slot to write
  int64_t size = 0;      // slots [0, size) hold transitions
};

// One minibatch and what its loss needs.
struct Minibatch {
  Minibatch(Device& d, int64_t n)
      : obs(d, static_cast<std::size_t>(n * kObsDim)),
        actions(d, static_cast<std::size_t>(n)),
        rewards(d, static_cast<std::size_t>(n)),
        terminated(d, static_cast<std::size_t>(n)),
        next_obs(d, static_cast<std::size_t>(n * kObsDim)),
        next_q_target(d, static_cast<std::size_t>(n * kActions)),
        next_q_online(d, static_cast<std::size_t>(n * kActions)),
        targets(d, static_cast<std::size_t>(n)),
        rows(n) {}
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
  int64_t rows;
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

template <class T>
std::vector<T> first(const Buffer<T>& b, Device& d, int64_t n) {
  std::vector<T> out(static_cast<std::size_t>(n));
  if (n > 0) d.copy_to_host(out.data(), b.data(), out.size() * sizeof(T));
  return out;
}

template <class T>
void put_first(Buffer<T>& b, Device& d, const std::vector<T>& v) {
  if (!v.empty()) d.copy_from_host(b.data(), v.data(), v.size() * sizeof(T));
}

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
  [[nodiscard]] ModelOptions model_options() const override {
    ModelOptions o;
    o.seed = c_.seed;
    o.chunk_rows = c_.chunk_rows;
    o.adam.lr = c_.lr;
    o.adam.max_grad_norm = c_.max_grad_norm;
    return o;
  }

  [[nodiscard]] std::size_t bytes_required(const Device& device, int64_t /*envs*/) const override {
    const DevicePlan& plan = device.plan();
    return ReplayBuffer::bytes(c_.buffer_size) + Minibatch::bytes(c_.batch_size) +
           PolicyValueModel::memory_required(model_config(),
                                             c_.chunk_rows > 0 ? c_.chunk_rows : plan.chunk_rows,
                                             device.threads(), plan.shards)
               .total();
  }

  void attach(Device& device, PolicyValueModel& model, int64_t /*envs*/) override {
    device_ = &device;
    target_ = std::make_unique<PolicyValueModel>(device, model.config(), model_options());
    copy_target(model);
    replay_.emplace(device, c_.buffer_size);
    batch_.emplace(device, c_.batch_size);
  }

  LearnReport learn(const LearnContext& ctx) override {
    Rollout& r = ctx.rollout;
    RlOps& rl = ctx.device.rl();
    ReplayBuffer& replay = *replay_;
    const int64_t rows = ctx.steps * r.envs;
    ReplayStoreArgs st;
    st.replay = replay.arrays();
    st.position = replay.position;
    st.rows = rows;
    st.envs = r.envs;
    st.obs = r.obs.data();
    st.actions = r.actions.data();
    st.rewards = r.rewards.data();
    st.terminated = r.terminated.data();
    st.truncated = r.truncated.data();
    st.final_obs = r.final_obs.data();
    rl.replay_store(st);
    replay.position = (replay.position + rows) % replay.capacity;
    replay.size = std::min(replay.size + rows, replay.capacity);
    stored_ += rows;

    LearnReport report;
    report.fit = false;
    report.epochs = 0;
    if (stored_ < c_.learning_starts) return report;
    Minibatch& mb = *batch_;
    const int64_t n = mb.rows;
    for (int32_t g = 0; g < c_.gradient_steps; ++g) {
      ReplaySampleArgs sa;
      sa.replay = replay.arrays();
      sa.size = replay.size;
      sa.seed = c_.seed;
      sa.draw = draws_++;
      sa.rows = n;
      sa.obs = mb.obs.data();
      sa.actions = mb.actions.data();
      sa.rewards = mb.rewards.data();
      sa.terminated = mb.terminated.data();
      sa.next_obs = mb.next_obs.data();
      rl.replay_sample(sa);

      const ConstMatrix next{mb.next_obs.data(), n, kObsDim};
      target_->logits(next, mb.next_q_target.data());
      if (c_.double_dqn) ctx.model.logits(next, mb.next_q_online.data());
      TdTargetArgs ta;
      ta.rewards = mb.rewards.data();
      ta.terminated = mb.terminated.data();
      ta.next_q_target = mb.next_q_target.data();
      ta.next_q_online = c_.double_dqn ? mb.next_q_online.data() : nullptr;
      ta.num_actions = kActions;
      ta.gamma = c_.gamma;
      ta.rows = n;
      ta.targets = mb.targets.data();
      rl.td_targets(ta);

      RolloutView view;
      view.obs = ConstMatrix{mb.obs.data(), n, kObsDim};
      view.actions = mb.actions.data();
      view.q_targets = mb.targets.data();
      view.huber_delta = c_.huber_delta;
      view.count = static_cast<float>(n);
      ctx.model.accumulate_gradients(view, LossConfig{0.0F, 1.0F});
      ctx.model.step();
      ++gradient_steps_;
      if (gradient_steps_ % c_.target_update == 0) follow(ctx.model);
      ++report.epochs;
    }
    return report;
  }

  [[nodiscard]] std::vector<unsigned char> save_state() const override {
    Device& d = *device_;
    const ReplayBuffer& rb = *replay_;
    Bytes b;
    b.put(kStateMagic);
    b.put(rb.capacity);
    b.put(rb.position);
    b.put(rb.size);
    b.put(stored_);
    b.put(draws_);
    b.put(gradient_steps_);
    b.put(target_->get_parameters());
    b.put(first(rb.obs, d, rb.size * kObsDim));
    b.put(first(rb.actions, d, rb.size));
    b.put(first(rb.rewards, d, rb.size));
    b.put(first(rb.terminated, d, rb.size));
    b.put(first(rb.next_obs, d, rb.size * kObsDim));
    return b.take();
  }

  void restore_state(const std::vector<unsigned char>& bytes) override {
    BP_CHECK_ARG(!bytes.empty(),
                 "the checkpoint holds no DQN state (target network, replay "
                 "buffer): it was not written by dqn");
    ByteReader in(bytes);
    BP_CHECK_ARG(in.get<uint32_t>() == kStateMagic, "the checkpoint's DQN state is not one");
    const auto capacity = in.get<int64_t>();
    BP_CHECK_ARG(capacity == replay_->capacity, "the checkpoint's replay buffer holds "
                                                    << capacity << " transitions, this one "
                                                    << replay_->capacity);
    const auto position = in.get<int64_t>();
    const auto size = in.get<int64_t>();
    BP_CHECK_ARG(size >= 0 && size <= capacity && position >= 0 && position < capacity,
                 "the checkpoint's replay buffer is damaged");
    const auto stored = in.get<int64_t>();
    const auto draws = in.get<uint64_t>();
    const auto steps = in.get<int64_t>();
    const auto target = in.get_vec<float>(static_cast<uint64_t>(target_->parameter_count()));
    const auto us = static_cast<uint64_t>(size);
    const auto obs = in.get_vec<float>(us * kObsDim);
    const auto actions = in.get_vec<int32_t>(us);
    const auto rewards = in.get_vec<float>(us);
    const auto terminated = in.get_vec<uint8_t>(us);
    const auto next_obs = in.get_vec<float>(us * kObsDim);
    BP_CHECK_ARG(in.at_end(), "the checkpoint's DQN state has trailing bytes");

    Device& d = *device_;
    ReplayBuffer& rb = *replay_;
    target_->set_parameters(target);
    put_first(rb.obs, d, obs);
    put_first(rb.actions, d, actions);
    put_first(rb.rewards, d, rewards);
    put_first(rb.terminated, d, terminated);
    put_first(rb.next_obs, d, next_obs);
    rb.position = position;
    rb.size = size;
    stored_ = stored;
    draws_ = draws;
    gradient_steps_ = steps;
  }

 private:
  // The target network takes the online one's parameters (tau = 1) or moves towards them.
  void follow(PolicyValueModel& online) {
    if (c_.tau >= 1.0F) {
      copy_target(online);
      return;
    }
    Blas& blas = device_->blas();
    const int64_t n = online.parameter_count();
    float* target = target_->parameters();
    blas.scal(n, 1.0F - c_.tau, target, 1);
    blas.axpy(n, c_.tau, online.parameters(), 1, target, 1);
  }
  void copy_target(PolicyValueModel& online) {
    device_->copy_on_device(target_->parameters(), online.parameters(),
                            static_cast<std::size_t>(online.parameter_count()) * sizeof(float));
  }

  TrainConfig c_;
  Device* device_ = nullptr;
  std::unique_ptr<PolicyValueModel> target_;
  std::optional<ReplayBuffer> replay_;
  std::optional<Minibatch> batch_;
  int64_t stored_ = 0;          // transitions stored so far (env steps)
  uint64_t draws_ = 0;          // minibatches drawn so far (Stream::kReplay's counter)
  int64_t gradient_steps_ = 0;  // since the start: the target's clock
};

}  // namespace

std::unique_ptr<Learner> make_dqn(const TrainConfig& config) {
  return std::make_unique<Dqn>(config);
}

}  // namespace batchpole
