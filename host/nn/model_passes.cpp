// PolicyValueModel's passes over a batch: acting (with the recording of activations), values,
// logits, probabilities, and the loss gradients and optimiser step of an update. Each pass has
// two shapes: every active agent's rows as tasks of their own (one agent, or a population whose
// agents must each compute exactly what they would alone), and batched agents (one pass of
// strided-batched gemms over all of them).
#include <algorithm>
#include <string>

#include "activation_record.hpp"
#include "batchpole/nn/blas.hpp"
#include "batchpole/nn/model.hpp"
#include "model_workspace.hpp"

namespace batchpole {

using model_detail::kPolicy;
using model_detail::kTrunk;
using model_detail::kValue;

namespace {

// Rows of each agent per batched pass: the chunk shared among the agents.
int64_t agent_chunk(int64_t chunk_rows, int64_t agents) {
  return std::max<int64_t>(1, chunk_rows / agents);
}

}  // namespace

void PolicyValueModel::check_obs(const char* call, const ConstMatrix& obs) const {
  BP_CHECK_ARG(obs.rows > 0,
               call << ": empty batch (observations are " << obs.rows << " x " << obs.cols << ")");
  BP_CHECK_ARG(obs.cols == config_.obs_dim, call << ": observations are " << obs.rows << " x "
                                                 << obs.cols << " but the model takes " << obs.rows
                                                 << " x " << config_.obs_dim);
  BP_CHECK_ARG(obs.data != nullptr, call << ": observations are a null pointer");
}

template <class RowsOf, class Body>
void PolicyValueModel::for_each_chunk(RowsOf rows_of, Body body) {
  runner_.for_each_chunk(
      active_list_, rows_of,
      [&](int worker, int64_t agent, int64_t shard, int64_t begin, int64_t rows, bool first_chunk) {
        Workspace& ws = *workspaces_.at(static_cast<std::size_t>(worker));
        ws.bind_parameters(params_.data() + agent * parameter_count_, policy_offset_,
                           value_offset_);
        body(ws, agent, shard, begin, rows, first_chunk);
      });
}

PolicyValueModel::Acc PolicyValueModel::acc_for(int64_t agent, int64_t shard) {
  if (runner_.shards() == 1) {
    return {grads_.data() + agent * parameter_count_, stats_.data() + agent * kStatSlots};
  }
  float* block = runner_.shard_block(agent, shard);
  return {block, block + parameter_count_};
}

ConstMatrix PolicyValueModel::features(Workspace& w, const ConstMatrix& x,
                                       const LayerOutputs* into) {
  if (!w.trunk) return x;
  return {w.trunk->forward(x, into), x.rows, w.trunk->config().outputs()};
}

template <class Sample>
void PolicyValueModel::act_chunks(const char* call, const ConstMatrix& obs, uint64_t step,
                                  float* values, int64_t record_row, int64_t agent_stride,
                                  Sample sample) {
  check_obs(call, obs);
  BP_CHECK_ARG(obs.rows <= (int64_t{1} << 32),
               call << ": " << obs.rows << " rows exceed the 2^32 environment indices of the draw");
  BP_CHECK_ARG(agents_ == 1 || agent_stride >= obs.rows,
               call << ": " << agents_ << " agents of " << obs.rows
                    << " rows need an agent stride of at least " << obs.rows << ", got "
                    << agent_stride);
  BP_CHECK_ARG(values == nullptr || config_.has_value(),
               call << ": values asked for, but the model has no value network");
  if (batched_) {
    BP_CHECK_ARG(record_row < 0, call << ": batched agents do not record their activations");
    Workspace& w = *workspaces_.front();
    const int64_t chunk = agent_chunk(runner_.chunk_rows(), agents_);
    const MlpAgents strided{agents_, agent_stride};
    const MlpAgents heads = w.trunk ? MlpAgents{agents_, 0} : strided;
    for (int64_t begin = 0; begin < obs.rows; begin += chunk) {
      const int64_t rows = std::min(chunk, obs.rows - begin);
      const ConstMatrix x{obs.data + begin * obs.cols, rows, obs.cols};
      const ConstMatrix f = w.trunk ? ConstMatrix{w.trunk->forward(x, nullptr, strided), rows,
                                                  w.trunk->config().outputs()}
                                    : x;
      const float* head = w.policy->forward(f, nullptr, heads);
      SampleKey key;
      key.step = step;
      key.first_env =
          static_cast<uint32_t>(begin + (options_.global_envs ? options_.first_env : 0));
      key.agent_envs = options_.global_envs ? static_cast<uint32_t>(obs.rows) : 0;
      key.seeds = seeds_device_.data();
      key.steps = steps_device_.data();
      sample(head, agents_ * rows, begin, key, AgentRows{agents_, rows, agent_stride}, -1);
      if (values != nullptr) {
        const float* v = w.value->forward(f, nullptr, heads);
        const std::size_t width = static_cast<std::size_t>(rows) * sizeof(float);
        device_->copy_rows_on_device(values + begin,
                                     static_cast<std::size_t>(agent_stride) * sizeof(float), v,
                                     width, width, static_cast<std::size_t>(agents_));
      }
    }
    return;
  }
  ActivationRecord& rec = *record_;
  const bool record = record_row >= 0;
  if (record) {
    for (const int64_t k : active_list_) {
      const int64_t recorded = rec.rows.at(static_cast<std::size_t>(k));
      BP_CHECK_ARG(record_row == 0 || record_row == recorded,
                   call << ": a recording continues at row " << recorded << ", not at row "
                        << record_row << " (or starts at 0)");
    }
    BP_CHECK_ARG(record_row + obs.rows <= rec.capacity(),
                 call << ": rows [" << record_row << ", " << record_row + obs.rows
                      << ") exceed the recording's room for " << rec.capacity()
                      << " rows (reserve_record)");
    BP_CHECK_ARG(record_row == 0 || rec.version == params_version_,
                 call << ": the parameters changed during a recording; start again at row 0");
    rec.version = params_version_;
    rec.values = (record_row == 0 || rec.values) && values != nullptr && rec.has_values();
    for (const int64_t k : active_list_) rec.rows[static_cast<std::size_t>(k)] = record_row;
  }
  const bool record_values = record && rec.has_values();
  for_each_chunk(
      [&](int64_t) { return obs.rows; },
      [&](Workspace& w, int64_t k, int64_t, int64_t begin, int64_t rows, bool) {
        const int64_t at = k * agent_stride + begin;
        const ConstMatrix x{obs.data + at * obs.cols, rows, obs.cols};
        LayerOutputs to;
        LayerOutputs po;
        LayerOutputs vo;
        if (record) {
          if (w.trunk) to = rec.at(kTrunk, record_row + begin, k);
          po = rec.at(kPolicy, record_row + begin, k);
          if (record_values) vo = rec.at(kValue, record_row + begin, k);
        }
        const ConstMatrix f = features(w, x, record ? &to : nullptr);
        const float* head = w.policy->forward(f, record ? &po : nullptr);
        const auto agent = static_cast<std::size_t>(k);
        // Data-parallel parts draw by the global env index.
        const int64_t first_env = options_.global_envs ? options_.first_env + k * obs.rows : 0;
        SampleKey key{seeds_[agent], steps_[agent] + step,
                      static_cast<uint32_t>(first_env + begin)};
        if (steps_device_.size() > 0) {
          // Recorded updates: the agent's step read on the device.
          key.step = step;
          key.steps = steps_device_.data() + k;
        }
        sample(head, rows, at, key, AgentRows{}, k);
        if (values != nullptr) {
          const float* v = w.value->forward(f, record_values ? &vo : nullptr);
          device_->copy_on_device(values + at, v, static_cast<std::size_t>(rows) * sizeof(float));
        }
      });
  if (record) {
    for (const int64_t k : active_list_) {
      rec.rows[static_cast<std::size_t>(k)] = record_row + obs.rows;
    }
  }
}

void PolicyValueModel::act(const ConstMatrix& obs, uint64_t step, int32_t* actions, float* log_prob,
                           float* values, int64_t record_row, int64_t agent_stride) {
  BP_CHECK_ARG(actions != nullptr, "act: actions is a null pointer");
  BP_CHECK_ARG(!config_.gaussian(), "act: the Gaussian head takes act_continuous");
  act_chunks("act", obs, step, values, record_row, agent_stride,
             [&](const float* logits, int64_t rows, int64_t at, const SampleKey& key,
                 const AgentRows& out, int64_t) {
               ops_->sample_actions(logits, rows, config_.num_actions, key, actions + at,
                                    log_prob != nullptr ? log_prob + at : nullptr, nullptr, out);
             });
}

void PolicyValueModel::act_continuous(const ConstMatrix& obs, uint64_t step, float* actions,
                                      float* log_prob, float* values, int64_t record_row,
                                      int64_t agent_stride) {
  BP_CHECK_ARG(actions != nullptr, "act_continuous: actions is a null pointer");
  BP_CHECK_ARG(config_.gaussian(), "act_continuous: the model's head is categorical (act)");
  const int64_t d = config_.num_actions;
  act_chunks("act_continuous", obs, step, values, record_row, agent_stride,
             [&](const float* head, int64_t rows, int64_t at, const SampleKey& key,
                 const AgentRows& out, int64_t) {
               ops_->sample_gaussian(head, rows, config_.num_actions, key, actions + at * d,
                                     log_prob != nullptr ? log_prob + at : nullptr, nullptr, out);
             });
}

void PolicyValueModel::act_epsilon_greedy(const ConstMatrix& obs, uint64_t step,
                                          std::span<const float> epsilons, int32_t* actions,
                                          int64_t agent_stride) {
  BP_CHECK_ARG(actions != nullptr, "act_epsilon_greedy: actions is a null pointer");
  BP_CHECK_ARG(!config_.gaussian(), "act_epsilon_greedy: the Gaussian head has no greedy action");
  BP_CHECK_ARG(
      static_cast<int64_t>(epsilons.size()) == agents_,
      "act_epsilon_greedy: " << epsilons.size() << " epsilons for " << agents_ << " agents");
  for (const float e : epsilons) {
    BP_CHECK_ARG(e >= 0.0f && e <= 1.0f,
                 "act_epsilon_greedy: epsilon must be in [0, 1], got " << e);
  }
  // In device memory for a population, and for a recorded update (its arguments must not
  // change from update to update): each step's block of its own there.
  float* on_device = nullptr;
  if (!epsilons_device_.empty()) {
    on_device = epsilons_device_.next();
    device_->copy_parameters(on_device, epsilons.data(), epsilons.size() * sizeof(float));
  }
  act_chunks("act_epsilon_greedy", obs, step, nullptr, -1, agent_stride,
             [&](const float* q, int64_t rows, int64_t at, const SampleKey& key,
                 const AgentRows& out, int64_t agent) {
               if (agent < 0) {
                 ops_->epsilon_greedy(q, rows, config_.num_actions, key, 0.0f, actions + at, out,
                                      on_device);
               } else if (on_device != nullptr) {
                 ops_->epsilon_greedy(q, rows, config_.num_actions, key, 0.0f, actions + at,
                                      AgentRows{}, on_device + agent);
               } else {
                 ops_->epsilon_greedy(q, rows, config_.num_actions, key,
                                      epsilons[static_cast<std::size_t>(agent)], actions + at);
               }
             });
}

void PolicyValueModel::values(const ConstMatrix& obs, float* out, int64_t in_stride,
                              int64_t out_stride, std::span<const int64_t> agent_rows) {
  check_obs("values", obs);
  BP_CHECK_ARG(out != nullptr, "values: out is a null pointer");
  BP_CHECK_ARG(config_.has_value(), "values: the model has no value network");
  BP_CHECK_ARG(agents_ == 1 || (in_stride >= obs.rows && out_stride >= obs.rows),
               "values: " << agents_ << " agents of " << obs.rows << " rows with strides "
                          << in_stride << " and " << out_stride);
  if (batched_) {
    Workspace& w = *workspaces_.front();
    const int64_t chunk = agent_chunk(runner_.chunk_rows(), agents_);
    const MlpAgents strided{agents_, in_stride};
    const MlpAgents heads = w.trunk ? MlpAgents{agents_, 0} : strided;
    for (int64_t begin = 0; begin < obs.rows; begin += chunk) {
      const int64_t rows = std::min(chunk, obs.rows - begin);
      const ConstMatrix x{obs.data + begin * obs.cols, rows, obs.cols};
      const ConstMatrix f = w.trunk ? ConstMatrix{w.trunk->forward(x, nullptr, strided), rows,
                                                  w.trunk->config().outputs()}
                                    : x;
      const float* v = w.value->forward(f, nullptr, heads);
      const std::size_t width = static_cast<std::size_t>(rows) * sizeof(float);
      device_->copy_rows_on_device(out + begin,
                                   static_cast<std::size_t>(out_stride) * sizeof(float), v, width,
                                   width, static_cast<std::size_t>(agents_));
    }
    return;
  }
  BP_CHECK_ARG(agent_rows.empty() || static_cast<int64_t>(agent_rows.size()) == agents_,
               "values: " << agent_rows.size() << " row counts for " << agents_ << " agents");
  const auto rows_of = [&](int64_t k) {
    return agent_rows.empty() ? obs.rows
                              : std::min(obs.rows, agent_rows[static_cast<std::size_t>(k)]);
  };
  for_each_chunk(rows_of, [&](Workspace& w, int64_t k, int64_t, int64_t begin, int64_t rows, bool) {
    const ConstMatrix x{obs.data + (k * in_stride + begin) * obs.cols, rows, obs.cols};
    const float* v = w.value->forward(features(w, x));
    device_->copy_on_device(out + k * out_stride + begin, v,
                            static_cast<std::size_t>(rows) * sizeof(float));
  });
}

void PolicyValueModel::logits(const ConstMatrix& obs, float* out, int64_t in_stride,
                              int64_t out_stride) {
  check_obs("logits", obs);
  BP_CHECK_ARG(out != nullptr, "logits: out is a null pointer");
  BP_CHECK_ARG(agents_ == 1 || (in_stride >= obs.rows && out_stride >= obs.rows),
               "logits: " << agents_ << " agents of " << obs.rows << " rows with strides "
                          << in_stride << " and " << out_stride);
  const int64_t na = config_.policy_outputs();
  if (batched_) {
    Workspace& w = *workspaces_.front();
    const int64_t chunk = agent_chunk(runner_.chunk_rows(), agents_);
    const MlpAgents strided{agents_, in_stride};
    const MlpAgents heads = w.trunk ? MlpAgents{agents_, 0} : strided;
    for (int64_t begin = 0; begin < obs.rows; begin += chunk) {
      const int64_t rows = std::min(chunk, obs.rows - begin);
      const ConstMatrix x{obs.data + begin * obs.cols, rows, obs.cols};
      const ConstMatrix f = w.trunk ? ConstMatrix{w.trunk->forward(x, nullptr, strided), rows,
                                                  w.trunk->config().outputs()}
                                    : x;
      const float* z = w.policy->forward(f, nullptr, heads);
      const std::size_t width = static_cast<std::size_t>(rows * na) * sizeof(float);
      device_->copy_rows_on_device(out + begin * na,
                                   static_cast<std::size_t>(out_stride * na) * sizeof(float), z,
                                   width, width, static_cast<std::size_t>(agents_));
    }
    return;
  }
  for_each_chunk(
      [&](int64_t) { return obs.rows; },
      [&](Workspace& w, int64_t k, int64_t, int64_t begin, int64_t rows, bool) {
        const ConstMatrix x{obs.data + (k * in_stride + begin) * obs.cols, rows, obs.cols};
        const float* z = w.policy->forward(features(w, x));
        device_->copy_on_device(out + (k * out_stride + begin) * na, z,
                                static_cast<std::size_t>(rows * na) * sizeof(float));
      });
}

void PolicyValueModel::probabilities(const ConstMatrix& obs, float* out) {
  check_obs("probabilities", obs);
  BP_CHECK_ARG(out != nullptr, "probabilities: out is a null pointer");
  BP_CHECK_ARG(agents_ == 1,
               "probabilities: one agent's model only (this one has " << agents_ << ")");
  BP_CHECK_ARG(!config_.gaussian(), "probabilities: the Gaussian head has densities, not these");
  const int64_t na = config_.num_actions;
  for_each_chunk([&](int64_t) { return obs.rows; },
                 [&](Workspace& w, int64_t, int64_t, int64_t begin, int64_t rows, bool) {
                   const ConstMatrix x{obs.data + begin * obs.cols, rows, obs.cols};
                   const float* z = w.policy->forward(features(w, x));
                   ops_->softmax(z, rows, config_.num_actions, out + begin * na);
                 });
}

void PolicyValueModel::head_loss_grad(Workspace& w, const RolloutView& batch,
                                      const LossConfig& loss, const float* head, int64_t rows,
                                      int64_t at, const AgentRows& in, const float* count,
                                      int32_t stat_columns) {
  const uint8_t* mask = batch.mask != nullptr ? batch.mask + at : nullptr;
  const bool clipped = batch.old_log_prob != nullptr;
  if (batch.q_targets != nullptr) {
    QLossArgs qa;
    qa.q = head;
    qa.rows = rows;
    qa.num_actions = config_.num_actions;
    qa.actions = batch.actions + at;
    qa.targets = batch.q_targets + at;
    qa.mask = mask;
    qa.count = count;
    qa.in = in;
    qa.huber_delta = batch.huber_delta;
    qa.d_q = w.d_logits;
    qa.stats = w.sample_stats;
    qa.stat_columns = stat_columns;
    ops_->q_loss_grad(qa);
  } else if (config_.gaussian()) {
    GaussianLossArgs ga;
    ga.head = head;
    ga.rows = rows;
    ga.action_dim = config_.num_actions;
    ga.actions = batch.continuous_actions + at * config_.num_actions;
    ga.weights = batch.weights + at;
    ga.mask = mask;
    ga.count = count;
    ga.in = in;
    ga.entropy_coef = loss.entropy_coef;
    ga.d_head = w.d_logits;
    ga.stats = w.sample_stats;
    ga.stat_columns = stat_columns;
    if (clipped) {
      ga.old_log_prob = batch.old_log_prob + at;
      ga.clip = batch.clip;
    }
    ops_->gaussian_loss_grad(ga);
  } else {
    PolicyLossArgs pa;
    pa.logits = head;
    pa.rows = rows;
    pa.num_actions = config_.num_actions;
    pa.actions = batch.actions + at;
    pa.weights = batch.weights + at;
    pa.mask = mask;
    pa.count = count;
    pa.in = in;
    pa.entropy_coef = loss.entropy_coef;
    pa.d_logits = w.d_logits;
    pa.stats = w.sample_stats;
    pa.stat_columns = stat_columns;
    if (clipped) {
      pa.old_log_prob = batch.old_log_prob + at;
      pa.clip = batch.clip;
    }
    ops_->policy_loss_grad(pa);
  }
}

void PolicyValueModel::accumulate_gradients(const RolloutView& batch, const LossConfig& loss,
                                            GradientMode mode) {
  check_obs("accumulate_gradients", batch.obs);
  const bool q_loss = batch.q_targets != nullptr;
  if (q_loss) {
    BP_CHECK_ARG(batch.actions != nullptr && !config_.gaussian(),
                 "accumulate_gradients: the Q loss needs discrete actions (samples = "
                     << batch.obs.rows << ")");
    BP_CHECK_ARG(batch.value_targets == nullptr && batch.old_log_prob == nullptr,
                 "accumulate_gradients: the Q loss takes no value targets and no clipping");
  } else if (config_.gaussian()) {
    BP_CHECK_ARG(batch.continuous_actions != nullptr && batch.weights != nullptr,
                 "accumulate_gradients: the Gaussian head needs continuous actions and weights "
                 "(samples = "
                     << batch.obs.rows << ")");
  } else {
    BP_CHECK_ARG(batch.actions != nullptr && batch.weights != nullptr,
                 "accumulate_gradients: the rollout needs actions and weights (samples = "
                     << batch.obs.rows << ")");
  }
  BP_CHECK_ARG(batch.value_targets == nullptr || config_.has_value(),
               "accumulate_gradients: value targets given, but the model has no value network");
  BP_CHECK_ARG(agents_ == 1 || batch.agent_stride >= batch.obs.rows,
               "accumulate_gradients: " << agents_ << " agents of " << batch.obs.rows
                                        << " rows need an agent stride of at least "
                                        << batch.obs.rows << ", got " << batch.agent_stride);
  BP_CHECK_ARG(batch.agent_rows.empty() || static_cast<int64_t>(batch.agent_rows.size()) == agents_,
               "accumulate_gradients: " << batch.agent_rows.size() << " row counts for " << agents_
                                        << " agents");
  BP_CHECK_ARG(
      batch.value_coefs.empty() || static_cast<int64_t>(batch.value_coefs.size()) == agents_,
      "accumulate_gradients: " << batch.value_coefs.size() << " value coefficients for " << agents_
                               << " agents");
  const auto rows_of = [&](int64_t k) {
    return batch.agent_rows.empty() ? batch.obs.rows
                                    : batch.agent_rows[static_cast<std::size_t>(k)];
  };
  for (const int64_t k : active_list_) {
    BP_CHECK_ARG(rows_of(k) >= 1 && rows_of(k) <= batch.obs.rows,
                 "accumulate_gradients: agent " << k << " has " << rows_of(k)
                                                << " rows, outside [1, " << batch.obs.rows << "]");
  }
  ActivationRecord& record = *record_;
  const bool rec = batch.recorded;
  if (rec) {
    BP_CHECK_ARG(!batched_, "accumulate_gradients: batched agents record no activations");
    for (const int64_t k : active_list_) {
      const int64_t recorded = record.rows.at(static_cast<std::size_t>(k));
      BP_CHECK_ARG(record.version == params_version_ && rows_of(k) <= recorded,
                   "accumulate_gradients: the rollout is marked recorded but "
                       << (record.version != params_version_
                               ? std::string("the parameters changed after the recording")
                               : "only " + std::to_string(recorded) + " of its " +
                                     std::to_string(rows_of(k)) + " rows were recorded"));
    }
    BP_CHECK_ARG(batch.value_targets == nullptr || record.values,
                 "accumulate_gradients: the value loss needs the value network's activations, "
                 "which act() recorded without values");
  }
  last_loss_ = loss;
  last_value_coefs_.assign(batch.value_coefs.begin(), batch.value_coefs.end());
  const bool clipped = batch.old_log_prob != nullptr;
  last_clipped_ = clipped;
  BP_CHECK_ARG(!clipped || !rec,
               "accumulate_gradients: the clipped surrogate runs on fresh activations (the "
               "parameters move between its minibatches), not on a recording");
  if (batch.value_targets != nullptr) value_grads_written_ = true;
  if (batched_) {
    accumulate_batched(batch, loss, mode);
    if (config_.gaussian() && !config_.state_dependent_std) zero_pinned_gradients();
    return;
  }
  const int64_t stride = batch.agent_stride;
  for (const int64_t k : active_list_) {
    float* divisor = divisors() + k;
    if (batch.count > 0.0f) {
      ops_->fill(divisor, 1, batch.count);
    } else if (batch.mask != nullptr) {
      ops_->count_nonzero(batch.mask + k * stride, rows_of(k), divisor);
    } else {
      ops_->fill(divisor, 1, static_cast<float>(rows_of(k)));
    }
  }
  const int32_t stat_columns = clipped ? kStatColumnsClipped : kStatColumns;
  const bool with_value = batch.value_targets != nullptr;
  const int64_t value_params = parameter_count_ - value_offset_;
  // With one shard its accumulators are the agent's own and `mode` applies to its first chunk;
  // with several, every shard starts afresh and the sum below applies `mode`.
  const GradientMode first_mode = runner_.shards() == 1 ? mode : GradientMode::kOverwrite;
  Blas& blas = device_->blas();

  for_each_chunk(rows_of, [&](Workspace& w, int64_t k, int64_t shard, int64_t begin, int64_t rows,
                              bool first_chunk) {
    const GradientMode m = first_chunk ? first_mode : GradientMode::kAccumulate;
    const Acc acc = acc_for(k, shard);
    w.bind_gradients(acc.grads, policy_offset_, value_offset_);
    const int64_t at = k * stride + begin;
    const ConstMatrix x{batch.obs.data + at * batch.obs.cols, rows, batch.obs.cols};
    const uint8_t* mask = batch.mask != nullptr ? batch.mask + at : nullptr;
    float* divisor = divisors() + k;
    // Recorded: the activations act() kept; otherwise a forward pass into the workspace.
    LayerOutputs to;
    LayerOutputs po;
    LayerOutputs vo;
    if (rec) {
      if (w.trunk) to = record.at(kTrunk, begin, k);
      po = record.at(kPolicy, begin, k);
      if (with_value) vo = record.at(kValue, begin, k);
    }
    const ConstMatrix f =
        !rec ? features(w, x)
             : (w.trunk ? ConstMatrix{to.layers.back(), x.rows, w.trunk->config().outputs()} : x);

    const float* head = rec ? po.layers.back() : w.policy->forward(f);
    head_loss_grad(w, batch, loss, head, x.rows, at, AgentRows{}, divisor, stat_columns);
    w.policy->backward(f, w.d_logits, m, w.d_features, GradientMode::kOverwrite,
                       rec ? &po : nullptr);

    if (with_value) {
      ValueLossArgs va;
      va.values = rec ? vo.layers.back() : w.value->forward(f);
      va.targets = batch.value_targets + at;
      va.mask = mask;
      va.rows = x.rows;
      va.count = divisor;
      va.value_coef = batch.value_coefs.empty() ? loss.value_coef
                                                : batch.value_coefs[static_cast<std::size_t>(k)];
      va.d_values = w.d_values;
      va.stats = w.sample_stats;
      va.stat_columns = stat_columns;
      if (batch.old_values != nullptr) {
        va.old_values = batch.old_values + at;
        va.clip = batch.value_clip;
      }
      ops_->value_loss_grad(va);
      w.value->backward(f, w.d_values, m, w.d_features, GradientMode::kAccumulate,
                        rec ? &vo : nullptr);
    } else if (m == GradientMode::kOverwrite) {
      // No value loss: its gradient is zero, which overwriting means writing (nothing to write
      // for a Q-network, which has no value network).
      ops_->fill(acc.grads + value_offset_, value_params, 0.0f);
    }
    if (w.trunk) {
      w.trunk->backward(x, w.d_features, m, nullptr, GradientMode::kOverwrite, rec ? &to : nullptr);
    }

    // Per-sample statistics summed into the shard's: stats = beta stats + S^T 1.
    blas.gemv(Trans::kYes, x.rows, stat_columns, 1.0f, w.sample_stats, stat_columns, w.ones, 1,
              m == GradientMode::kOverwrite ? 0.0f : 1.0f, acc.stats, 1);
  });
  // Shard 0 + shard 1 + ... in this order, whichever worker computed which.
  for (const int64_t k : active_list_) {
    runner_.sum_shards(k, rows_of(k), grads_.data() + k * parameter_count_, parameter_count_,
                       stats_.data() + k * kStatSlots, mode);
  }
  if (config_.gaussian() && !config_.state_dependent_std) zero_pinned_gradients();
}

void PolicyValueModel::accumulate_batched(const RolloutView& batch, const LossConfig& loss,
                                          GradientMode mode) {
  const int64_t n = batch.obs.rows;
  const int64_t stride = batch.agent_stride;
  float* divisor = divisors();
  if (batch.count > 0.0f) {
    ops_->fill(divisor, agents_, batch.count);
  } else if (batch.mask != nullptr) {
    ops_->count_nonzero(batch.mask, n, divisor, agents_, stride);
  } else {
    ops_->fill(divisor, agents_, static_cast<float>(n));
  }
  const float* value_coefs = nullptr;
  if (!batch.value_coefs.empty()) {
    value_coefs_device_.from_host(batch.value_coefs);
    value_coefs = value_coefs_device_.data();
  }
  const bool clipped = batch.old_log_prob != nullptr;
  const int32_t stat_columns = clipped ? kStatColumnsClipped : kStatColumns;
  const bool with_value = batch.value_targets != nullptr;
  Workspace& w = *workspaces_.front();
  w.bind_gradients(grads_.data(), policy_offset_, value_offset_);
  const int64_t chunk = agent_chunk(runner_.chunk_rows(), agents_);
  const MlpAgents strided{agents_, stride};
  const MlpAgents heads = w.trunk ? MlpAgents{agents_, 0} : strided;
  Blas& blas = device_->blas();
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const GradientMode m = begin == 0 ? mode : GradientMode::kAccumulate;
    const int64_t rows = std::min(chunk, n - begin);
    const ConstMatrix x{batch.obs.data + begin * batch.obs.cols, rows, batch.obs.cols};
    const ConstMatrix f = w.trunk ? ConstMatrix{w.trunk->forward(x, nullptr, strided), rows,
                                                w.trunk->config().outputs()}
                                  : x;
    const AgentRows in{agents_, rows, stride};
    const uint8_t* mask = batch.mask != nullptr ? batch.mask + begin : nullptr;

    const float* head = w.policy->forward(f, nullptr, heads);
    head_loss_grad(w, batch, loss, head, agents_ * rows, begin, in, divisor, stat_columns);
    w.policy->backward(f, w.d_logits, m, w.d_features, GradientMode::kOverwrite, nullptr, heads);

    if (with_value) {
      ValueLossArgs va;
      va.values = w.value->forward(f, nullptr, heads);
      va.targets = batch.value_targets + begin;
      va.mask = mask;
      va.rows = agents_ * rows;
      va.count = divisor;
      va.value_coef = loss.value_coef;
      va.value_coefs = value_coefs;
      va.in = in;
      va.d_values = w.d_values;
      va.stats = w.sample_stats;
      va.stat_columns = stat_columns;
      if (batch.old_values != nullptr) {
        va.old_values = batch.old_values + begin;
        va.clip = batch.value_clip;
      }
      ops_->value_loss_grad(va);
      w.value->backward(f, w.d_values, m, w.d_features, GradientMode::kAccumulate, nullptr, heads);
    } else if (m == GradientMode::kOverwrite && value_grads_written_) {
      // No value loss where one was taken before: its gradient is zero again.
      ops_->fill(grads_.data() + value_offset_, parameter_count_ - value_offset_, 0.0f, agents_,
                 parameter_count_);
    }
    if (w.trunk) {
      w.trunk->backward(x, w.d_features, m, nullptr, GradientMode::kOverwrite, nullptr, strided);
    }
    // Each agent's per-sample statistics summed into its slots: stats_k = beta stats_k + S_k^T 1.
    blas.gemm_strided_batched(Trans::kYes, Trans::kNo, stat_columns, 1, rows, 1.0f, w.sample_stats,
                              stat_columns, rows * stat_columns, w.ones, 1, 0,
                              m == GradientMode::kOverwrite ? 0.0f : 1.0f, stats_.data(), 1,
                              kStatSlots, agents_);
  }
}

void PolicyValueModel::zero_pinned_gradients() {
  const Mlp& policy = *workspaces_.front()->policy;
  const int32_t last = policy.config().layers() - 1;
  const int64_t d = config_.num_actions;
  const int64_t in = policy.config().sizes[static_cast<std::size_t>(last)];
  ops_->fill(grads_.data() + policy_offset_ + policy.weight_offset(last) + d * in, d * in, 0.0f,
             agents_, parameter_count_);
}

void PolicyValueModel::step() {
  ++params_version_;
  Adam::Agents a;
  a.stride = parameter_count_;
  a.grad_norm_out = stats_.data() + kSlotGradNorm;
  a.norm_stride = kStatSlots;
  a.active = active_;
  a.active_device = batched_ ? active_device_.data() : nullptr;
  adam_[0]->step(params_.data(), grads_.data(), a);
  if (adam_.size() > 1) {
    a.grad_norm_out = stats_.data() + kSlotValueGradNorm;
    adam_[1]->step(params_.data() + value_offset_, grads_.data() + value_offset_, a);
  }
}

}  // namespace batchpole
