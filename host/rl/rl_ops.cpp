// The checks and the counting of RlOps, shared by both devices.
#include "batchpole/rl/rl_ops.hpp"

namespace batchpole {

namespace {

void check_size(const char* op, const char* what, int64_t n) {
  BP_CHECK_ARG(n >= 0, op << ": negative " << what << " " << n);
}

void check_not_null(const char* op, const char* name, const void* p) {
  BP_CHECK_ARG(p != nullptr, op << ": " << name << " is a null pointer");
}

// A population's layout: returns the stride to pass on (n for one agent).
int64_t check_agents(const char* op, int64_t agents, int64_t stride, int64_t n) {
  BP_CHECK_ARG(agents >= 1 && (agents == 1 || stride >= n),
               op << ": " << agents << " agents of " << n << " rows with stride " << stride);
  return agents > 1 ? stride : n;
}

}  // namespace

void RlOps::returns(const ReturnsArgs& a) {
  check_size("returns", "step count", a.steps);
  check_size("returns", "env count", a.envs);
  if (a.steps == 0 || a.envs == 0) return;
  check_not_null("returns", "rewards", a.rewards);
  check_not_null("returns", "terminated", a.terminated);
  check_not_null("returns", "truncated", a.truncated);
  check_not_null("returns", "returns", a.returns);
  check_agents("returns", a.agents, a.agent_stride, a.steps * a.envs);
  device_->enqueue(
      "returns", [this](const auto&... op_args) { this->do_returns(op_args...); }, a);
}

void RlOps::gae(const GaeArgs& a) {
  check_size("gae", "step count", a.steps);
  check_size("gae", "env count", a.envs);
  if (a.steps == 0 || a.envs == 0) return;
  for (const void* p :
       {static_cast<const void*>(a.rewards), static_cast<const void*>(a.terminated),
        static_cast<const void*>(a.truncated), static_cast<const void*>(a.values),
        static_cast<const void*>(a.last_value), static_cast<const void*>(a.advantages),
        static_cast<const void*>(a.returns)}) {
    check_not_null("gae", "an input or output", p);
  }
  BP_CHECK_ARG(a.lambda >= 0.0f && a.lambda <= 1.0f,
               "gae: lambda must be in [0, 1], got " << a.lambda);
  check_agents("gae", a.agents, a.agent_stride, a.steps * a.envs);
  device_->enqueue(
      "gae", [this](const auto&... op_args) { this->do_gae(op_args...); }, a);
}

void RlOps::gather_minibatch(const MinibatchArgs& a) {
  check_size("gather_minibatch", "row count", a.rows);
  if (a.rows == 0) return;
  BP_CHECK_ARG(a.first >= 0 && static_cast<uint64_t>(a.first + a.rows) <= a.key.rows,
               "gather_minibatch: rows [" << a.first << ", " << a.first + a.rows << ") outside the "
                                          << a.key.rows << " shuffled rows");
  BP_CHECK_ARG((uint64_t{1} << (2 * a.key.half_bits)) >= a.key.rows && a.key.half_bits <= 31,
               "gather_minibatch: the shuffle key does not cover " << a.key.rows << " rows");
  check_agents("gather_minibatch", a.agents, a.agent_stride, static_cast<int64_t>(a.key.rows));
  if (a.agents > 1) check_not_null("gather_minibatch", "per-agent seeds", a.seeds);
  device_->enqueue(
      "gather_minibatch", [this](const auto&... op_args) { this->do_gather_minibatch(op_args...); },
      a);
}

namespace {
void check_replay(const char* op, const ReplayArrays& r) {
  BP_CHECK_ARG(r.capacity >= 1, op << ": the replay buffer has capacity " << r.capacity);
  BP_CHECK_ARG(r.obs_dim >= 1, op << ": observations of " << r.obs_dim << " values");
  for (const void* p : {static_cast<const void*>(r.obs), static_cast<const void*>(r.actions),
                        static_cast<const void*>(r.rewards), static_cast<const void*>(r.terminated),
                        static_cast<const void*>(r.next_obs)}) {
    check_not_null(op, "a replay array", p);
  }
}
}  // namespace

void RlOps::replay_store(const ReplayStoreArgs& a) {
  const char* op = "replay_store";
  check_size(op, "row count", a.rows);
  if (a.rows == 0) return;
  check_replay(op, a.replay);
  BP_CHECK_ARG(a.rows <= a.replay.capacity, op << ": " << a.rows << " rows do not fit a buffer of "
                                               << a.replay.capacity << " transitions at once");
  BP_CHECK_ARG(a.position >= 0 && a.position < a.replay.capacity,
               op << ": position " << a.position << " outside [0, " << a.replay.capacity << ")");
  BP_CHECK_ARG(a.envs >= 1 && a.rows % a.envs == 0,
               op << ": " << a.rows << " rows are not whole steps of " << a.envs << " envs");
  // A population's next observations (row k + N of each block) stay in the agent's block.
  check_agents(op, a.agents, a.agent_stride, a.rows + a.envs);
  if (a.agents > 1) check_not_null(op, "per-agent cursors", a.cursors);
  for (const void* p :
       {static_cast<const void*>(a.obs), static_cast<const void*>(a.actions),
        static_cast<const void*>(a.rewards), static_cast<const void*>(a.terminated),
        static_cast<const void*>(a.truncated), static_cast<const void*>(a.final_obs)}) {
    check_not_null(op, "a rollout array", p);
  }
  device_->enqueue(
      "replay_store", [this](const auto&... op_args) { this->do_replay_store(op_args...); }, a);
}

void RlOps::replay_sample(const ReplaySampleArgs& a) {
  const char* op = "replay_sample";
  check_size(op, "row count", a.rows);
  if (a.rows == 0) return;
  check_replay(op, a.replay);
  BP_CHECK_ARG(a.agents >= 1, op << ": " << a.agents << " agents");
  if (a.agents > 1) {
    check_not_null(op, "per-agent cursors", a.cursors);
  } else if (a.cursors == nullptr) {
    BP_CHECK_ARG(a.size >= 1 && a.size <= a.replay.capacity,
                 op << ": " << a.size << " filled slots of " << a.replay.capacity);
  }
  BP_CHECK_ARG(a.rows <= (int64_t{1} << 32),
               op << ": " << a.rows << " rows exceed the draw's 2^32");
  for (const void* p : {static_cast<const void*>(a.obs), static_cast<const void*>(a.actions),
                        static_cast<const void*>(a.rewards), static_cast<const void*>(a.terminated),
                        static_cast<const void*>(a.next_obs)}) {
    check_not_null(op, "a minibatch array", p);
  }
  device_->enqueue(
      "replay_sample", [this](const auto&... op_args) { this->do_replay_sample(op_args...); }, a);
}

void RlOps::td_targets(const TdTargetArgs& a) {
  const char* op = "td_targets";
  check_size(op, "row count", a.rows);
  if (a.rows == 0) return;
  BP_CHECK_ARG(a.num_actions >= 1 && a.num_actions <= kMaxActions,
               op << ": " << a.num_actions << " actions");
  check_not_null(op, "rewards", a.rewards);
  check_not_null(op, "terminated", a.terminated);
  check_not_null(op, "next_q_target", a.next_q_target);
  check_not_null(op, "targets", a.targets);
  device_->enqueue(
      "td_targets", [this](const auto&... op_args) { this->do_td_targets(op_args...); }, a);
}

void RlOps::first_episode_mask(const uint8_t* terminated, const uint8_t* truncated, int64_t steps,
                               int64_t envs, uint8_t* mask, int64_t agents, int64_t stride) {
  check_size("first_episode_mask", "step count", steps);
  check_size("first_episode_mask", "env count", envs);
  stride = check_agents("first_episode_mask", agents, stride, steps * envs);
  if (steps == 0 || envs == 0) return;
  device_->enqueue(
      "first_episode_mask",
      [this](const auto&... op_args) { this->do_first_episode_mask(op_args...); }, terminated,
      truncated, steps, envs, mask, agents, stride);
}

void RlOps::mark_ended(uint8_t* ended, const uint8_t* terminated, const uint8_t* truncated,
                       int64_t n, int64_t* ended_count, int64_t agents, int64_t stride) {
  check_size("mark_ended", "env count", n);
  stride = check_agents("mark_ended", agents, stride, n);
  if (n == 0) return;
  check_not_null("mark_ended", "ended_count", ended_count);
  device_->enqueue(
      "mark_ended", [this](const auto&... op_args) { this->do_mark_ended(op_args...); }, ended,
      terminated, truncated, n, ended_count, agents, stride);
}

void RlOps::subtract(const float* a, const float* b, int64_t n, float* out) {
  check_size("subtract", "size", n);
  if (n == 0) return;
  device_->enqueue(
      "subtract", [this](const auto&... op_args) { this->do_subtract(op_args...); }, a, b, n, out);
}

void RlOps::moments(const float* x, const uint8_t* mask, int64_t n, Moments* out, int64_t agents,
                    int64_t stride) {
  check_size("moments", "size", n);
  check_not_null("moments", "out", out);
  stride = check_agents("moments", agents, stride, n);
  device_->enqueue(
      "moments", [this](const auto&... op_args) { this->do_moments(op_args...); }, x, mask, n, out,
      agents, stride);
}

void RlOps::normalize(float* x, const uint8_t* mask, int64_t n, const Moments* m, float eps,
                      int64_t agents, int64_t stride) {
  check_size("normalize", "size", n);
  stride = check_agents("normalize", agents, stride, n);
  if (n == 0) return;
  check_not_null("normalize", "moments", m);
  device_->enqueue(
      "normalize", [this](const auto&... op_args) { this->do_normalize(op_args...); }, x, mask, n,
      m, eps, agents, stride);
}

void RlOps::episode_tally(const EpisodeRows& rows, int64_t n, EpisodeTally* out, int64_t agents,
                          int64_t stride) {
  check_size("episode_tally", "row count", n);
  check_not_null("episode_tally", "out", out);
  stride = check_agents("episode_tally", agents, stride, n);
  device_->enqueue(
      "episode_tally", [this](const auto&... op_args) { this->do_episode_tally(op_args...); }, rows,
      n, out, agents, stride);
}

}  // namespace batchpole
