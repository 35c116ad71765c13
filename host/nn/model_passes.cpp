// PolicyValueModel's passes over a batch: acting (with the recording of activations), values,
// logits, probabilities, and the loss gradients and optimiser step of an update.
#include <string>

#include "activation_record.hpp"
#include "batchpole/nn/blas.hpp"
#include "batchpole/nn/model.hpp"
#include "model_workspace.hpp"

namespace batchpole {

using model_detail::kPolicy;
using model_detail::kTrunk;
using model_detail::kValue;

void PolicyValueModel::check_obs(const char* call, const ConstMatrix& obs) const {
  BP_CHECK_ARG(obs.rows > 0,
               call << ": empty batch (observations are " << obs.rows << " x " << obs.cols << ")");
  BP_CHECK_ARG(obs.cols == config_.obs_dim, call << ": observations are " << obs.rows << " x "
                                                 << obs.cols << " but the model takes " << obs.rows
                                                 << " x " << config_.obs_dim);
  BP_CHECK_ARG(obs.data != nullptr, call << ": observations are a null pointer");
}

template <class Body>
void PolicyValueModel::for_each_chunk(const ConstMatrix& obs, Body body) {
  runner_.for_each_chunk(obs.rows, [&](int worker, int64_t shard, int64_t begin, int64_t rows,
                                       bool first_chunk) {
    Workspace& ws = *workspaces_.at(static_cast<std::size_t>(worker));
    body(ws, shard, ConstMatrix{obs.data + begin * obs.cols, rows, obs.cols}, begin, first_chunk);
  });
}

ConstMatrix PolicyValueModel::features(Workspace& w, const ConstMatrix& x,
                                       const LayerOutputs* into) {
  if (!w.trunk) return x;
  return {w.trunk->forward(x, into), x.rows, w.trunk->config().outputs()};
}

template <class Sample>
void PolicyValueModel::act_chunks(const char* call, const ConstMatrix& obs, float* values,
                                  int64_t record_row, Sample sample) {
  check_obs(call, obs);
  BP_CHECK_ARG(obs.rows <= (int64_t{1} << 32),
               call << ": " << obs.rows << " rows exceed the 2^32 environment indices of the draw");
  BP_CHECK_ARG(values == nullptr || config_.has_value(),
               call << ": values asked for, but the model has no value network");
  ActivationRecord& rec = *record_;
  const bool record = record_row >= 0;
  if (record) {
    BP_CHECK_ARG(record_row == 0 || record_row == rec.rows,
                 call << ": a recording continues at row " << rec.rows << ", not at row "
                      << record_row << " (or starts at 0)");
    BP_CHECK_ARG(record_row + obs.rows <= rec.capacity(),
                 call << ": rows [" << record_row << ", " << record_row + obs.rows
                      << ") exceed the recording's room for " << rec.capacity()
                      << " rows (reserve_record)");
    BP_CHECK_ARG(record_row == 0 || rec.version == params_version_,
                 call << ": the parameters changed during a recording; start again at row 0");
    rec.version = params_version_;
    rec.values = (record_row == 0 || rec.values) && values != nullptr && rec.has_values();
    rec.rows = record_row;  // until this call has finished
  }
  const bool record_values = record && rec.has_values();
  for_each_chunk(obs, [&](Workspace& w, int64_t, const ConstMatrix& x, int64_t begin, bool) {
    LayerOutputs to;
    LayerOutputs po;
    LayerOutputs vo;
    if (record) {
      if (w.trunk) to = rec.at(kTrunk, record_row + begin);
      po = rec.at(kPolicy, record_row + begin);
      if (record_values) vo = rec.at(kValue, record_row + begin);
    }
    const ConstMatrix f = features(w, x, record ? &to : nullptr);
    const float* head = w.policy->forward(f, record ? &po : nullptr);
    sample(head, x.rows, begin, SampleKey{options_.seed, 0, static_cast<uint32_t>(begin)});
    if (values != nullptr) {
      const float* v = w.value->forward(f, record_values ? &vo : nullptr);
      device_->copy_on_device(values + begin, v, static_cast<std::size_t>(x.rows) * sizeof(float));
    }
  });
  if (record) rec.rows = record_row + obs.rows;
}

void PolicyValueModel::act(const ConstMatrix& obs, uint64_t step, int32_t* actions, float* log_prob,
                           float* values, int64_t record_row) {
  BP_CHECK_ARG(actions != nullptr, "act: actions is a null pointer");
  BP_CHECK_ARG(!config_.gaussian(), "act: the Gaussian head takes act_continuous");
  act_chunks("act", obs, values, record_row,
             [&](const float* logits, int64_t rows, int64_t begin, SampleKey key) {
               key.step = step;
               ops_->sample_actions(logits, rows, config_.num_actions, key, actions + begin,
                                    log_prob != nullptr ? log_prob + begin : nullptr, nullptr);
             });
}

void PolicyValueModel::act_continuous(const ConstMatrix& obs, uint64_t step, float* actions,
                                      float* log_prob, float* values, int64_t record_row) {
  BP_CHECK_ARG(actions != nullptr, "act_continuous: actions is a null pointer");
  BP_CHECK_ARG(config_.gaussian(), "act_continuous: the model's head is categorical (act)");
  const int64_t d = config_.num_actions;
  act_chunks("act_continuous", obs, values, record_row,
             [&](const float* head, int64_t rows, int64_t begin, SampleKey key) {
               key.step = step;
               ops_->sample_gaussian(head, rows, config_.num_actions, key, actions + begin * d,
                                     log_prob != nullptr ? log_prob + begin : nullptr, nullptr);
             });
}

void PolicyValueModel::act_epsilon_greedy(const ConstMatrix& obs, uint64_t step, float epsilon,
                                          int32_t* actions) {
  BP_CHECK_ARG(actions != nullptr, "act_epsilon_greedy: actions is a null pointer");
  BP_CHECK_ARG(!config_.gaussian(), "act_epsilon_greedy: the Gaussian head has no greedy action");
  act_chunks("act_epsilon_greedy", obs, nullptr, -1,
             [&](const float* q, int64_t rows, int64_t begin, SampleKey key) {
               key.step = step;
               ops_->epsilon_greedy(q, rows, config_.num_actions, key, epsilon, actions + begin);
             });
}

void PolicyValueModel::values(const ConstMatrix& obs, float* out) {
  check_obs("values", obs);
  BP_CHECK_ARG(out != nullptr, "values: out is a null pointer");
  BP_CHECK_ARG(config_.has_value(), "values: the model has no value network");
  for_each_chunk(obs, [&](Workspace& w, int64_t, const ConstMatrix& x, int64_t begin, bool) {
    const float* v = w.value->forward(features(w, x));
    device_->copy_on_device(out + begin, v, static_cast<std::size_t>(x.rows) * sizeof(float));
  });
}

void PolicyValueModel::logits(const ConstMatrix& obs, float* out) {
  check_obs("logits", obs);
  BP_CHECK_ARG(out != nullptr, "logits: out is a null pointer");
  const int64_t na = config_.policy_outputs();
  for_each_chunk(obs, [&](Workspace& w, int64_t, const ConstMatrix& x, int64_t begin, bool) {
    const float* z = w.policy->forward(features(w, x));
    device_->copy_on_device(out + begin * na, z,
                            static_cast<std::size_t>(x.rows * na) * sizeof(float));
  });
}

void PolicyValueModel::probabilities(const ConstMatrix& obs, float* out) {
  check_obs("probabilities", obs);
  BP_CHECK_ARG(out != nullptr, "probabilities: out is a null pointer");
  BP_CHECK_ARG(!config_.gaussian(), "probabilities: the Gaussian head has densities, not these");
  const int64_t na = config_.num_actions;
  for_each_chunk(obs, [&](Workspace& w, int64_t, const ConstMatrix& x, int64_t begin, bool) {
    const float* z = w.policy->forward(features(w, x));
    ops_->softmax(z, x.rows, config_.num_actions, out + begin * na);
  });
}

void PolicyValueModel::accumulate_gradients(const RolloutView& batch, const LossConfig& loss,
                                            GradientMode mode) {
  check_obs("accumulate_gradients", batch.obs);
  const bool q_loss = batch.q_targets != nullptr;
  const bool gaussian = config_.gaussian();
  if (q_loss) {
    BP_CHECK_ARG(batch.actions != nullptr && !gaussian,
                 "accumulate_gradients: the Q loss needs discrete actions (samples = "
                     << batch.obs.rows << ")");
    BP_CHECK_ARG(batch.value_targets == nullptr && batch.old_log_prob == nullptr,
                 "accumulate_gradients: the Q loss takes no value targets and no clipping");
  } else if (gaussian) {
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
  ActivationRecord& record = *record_;
  const bool rec = batch.recorded;
  if (rec) {
    BP_CHECK_ARG(record.version == params_version_ && batch.obs.rows <= record.rows,
                 "accumulate_gradients: the rollout is marked recorded but "
                     << (record.version != params_version_
                             ? std::string("the parameters changed after the recording")
                             : "only " + std::to_string(record.rows) + " of its " +
                                   std::to_string(batch.obs.rows) + " rows were recorded"));
    BP_CHECK_ARG(batch.value_targets == nullptr || record.values,
                 "accumulate_gradients: the value loss needs the value network's activations, "
                 "which act() recorded without values");
  }
  float* stats = acc_.data() + parameter_count_;
  float* divisor = stats + kSlotDivisor;
  if (batch.count > 0.0f) {
    ops_->fill(divisor, 1, batch.count);
  } else if (batch.mask != nullptr) {
    ops_->count_nonzero(batch.mask, batch.obs.rows, divisor);
  } else {
    ops_->fill(divisor, 1, static_cast<float>(batch.obs.rows));
  }
  last_loss_ = loss;
  const bool clipped = batch.old_log_prob != nullptr;
  last_clipped_ = clipped;
  BP_CHECK_ARG(!clipped || !rec,
               "accumulate_gradients: the clipped surrogate runs on fresh activations (the "
               "parameters move between its minibatches), not on a recording");
  const int32_t stat_columns = clipped ? kStatColumnsClipped : kStatColumns;
  const bool with_value = batch.value_targets != nullptr;
  const int64_t value_params = parameter_count_ - value_offset_;
  // With one shard its accumulators are acc_ itself and `mode` applies to its first chunk;
  // with several, every shard starts afresh and the sum below applies `mode`.
  const GradientMode first_mode = runner_.shards() == 1 ? mode : GradientMode::kOverwrite;
  Blas& blas = device_->blas();

  for_each_chunk(batch.obs, [&](Workspace& w, int64_t shard, const ConstMatrix& x, int64_t begin,
                                bool first_chunk) {
    const GradientMode m = first_chunk ? first_mode : GradientMode::kAccumulate;
    float* grads = runner_.shard_block(shard, acc_.data());
    w.bind_gradients(grads, policy_offset_, value_offset_);
    const uint8_t* mask = batch.mask != nullptr ? batch.mask + begin : nullptr;
    // Recorded: the activations act() kept; otherwise a forward pass into the workspace.
    LayerOutputs to;
    LayerOutputs po;
    LayerOutputs vo;
    if (rec) {
      if (w.trunk) to = record.at(kTrunk, begin);
      po = record.at(kPolicy, begin);
      if (with_value) vo = record.at(kValue, begin);
    }
    const ConstMatrix f =
        !rec ? features(w, x)
             : (w.trunk ? ConstMatrix{to.layers.back(), x.rows, w.trunk->config().outputs()} : x);

    const float* head = rec ? po.layers.back() : w.policy->forward(f);
    if (q_loss) {
      QLossArgs qa;
      qa.q = head;
      qa.rows = x.rows;
      qa.num_actions = config_.num_actions;
      qa.actions = batch.actions + begin;
      qa.targets = batch.q_targets + begin;
      qa.mask = mask;
      qa.count = divisor;
      qa.huber_delta = batch.huber_delta;
      qa.d_q = w.d_logits;
      qa.stats = w.sample_stats;
      qa.stat_columns = stat_columns;
      ops_->q_loss_grad(qa);
    } else if (gaussian) {
      GaussianLossArgs ga;
      ga.head = head;
      ga.rows = x.rows;
      ga.action_dim = config_.num_actions;
      ga.actions = batch.continuous_actions + begin * config_.num_actions;
      ga.weights = batch.weights + begin;
      ga.mask = mask;
      ga.count = divisor;
      ga.entropy_coef = loss.entropy_coef;
      ga.d_head = w.d_logits;
      ga.stats = w.sample_stats;
      ga.stat_columns = stat_columns;
      if (clipped) {
        ga.old_log_prob = batch.old_log_prob + begin;
        ga.clip = batch.clip;
      }
      ops_->gaussian_loss_grad(ga);
    } else {
      PolicyLossArgs pa;
      pa.logits = head;
      pa.rows = x.rows;
      pa.num_actions = config_.num_actions;
      pa.actions = batch.actions + begin;
      pa.weights = batch.weights + begin;
      pa.mask = mask;
      pa.count = divisor;
      pa.entropy_coef = loss.entropy_coef;
      pa.d_logits = w.d_logits;
      pa.stats = w.sample_stats;
      pa.stat_columns = stat_columns;
      if (clipped) {
        pa.old_log_prob = batch.old_log_prob + begin;
        pa.clip = batch.clip;
      }
      ops_->policy_loss_grad(pa);
    }
    w.policy->backward(f, w.d_logits, m, w.d_features, GradientMode::kOverwrite,
                       rec ? &po : nullptr);

    if (with_value) {
      ValueLossArgs va;
      va.values = rec ? vo.layers.back() : w.value->forward(f);
      va.targets = batch.value_targets + begin;
      va.mask = mask;
      va.rows = x.rows;
      va.count = divisor;
      va.value_coef = loss.value_coef;
      va.d_values = w.d_values;
      va.stats = w.sample_stats;
      va.stat_columns = stat_columns;
      if (batch.old_values != nullptr) {
        va.old_values = batch.old_values + begin;
        va.clip = batch.value_clip;
      }
      ops_->value_loss_grad(va);
      w.value->backward(f, w.d_values, m, w.d_features, GradientMode::kAccumulate,
                        rec ? &vo : nullptr);
    } else if (m == GradientMode::kOverwrite) {
      // No value loss: its gradient is zero, which overwriting means writing.
      ops_->fill(grads + value_offset_, value_params, 0.0f);
    }
    if (w.trunk) {
      w.trunk->backward(x, w.d_features, m, nullptr, GradientMode::kOverwrite, rec ? &to : nullptr);
    }

    // Per-sample statistics summed into the shard's: stats = beta stats + S^T 1.
    blas.gemv(Trans::kYes, x.rows, stat_columns, 1.0f, w.sample_stats, stat_columns, w.ones, 1,
              m == GradientMode::kOverwrite ? 0.0f : 1.0f, grads + parameter_count_, 1);
  });
  // Shard 0 + shard 1 + ... in this order, whichever worker computed which.
  runner_.sum_shards(batch.obs.rows, acc_.data(), mode);
  if (gaussian && !config_.state_dependent_std) zero_pinned_gradients(acc_.data());
}

void PolicyValueModel::zero_pinned_gradients(float* grads) {
  const Mlp& policy = *workspaces_.front()->policy;
  const int32_t last = policy.config().layers() - 1;
  const int64_t d = config_.num_actions;
  const int64_t in = policy.config().sizes[static_cast<std::size_t>(last)];
  ops_->fill(grads + policy_offset_ + policy.weight_offset(last) + d * in, d * in, 0.0f);
}

void PolicyValueModel::step() {
  ++params_version_;
  float* stats = acc_.data() + parameter_count_;
  adam_[0]->step(params_.data(), acc_.data(), stats + kSlotGradNorm);
  if (adam_.size() > 1) {
    adam_[1]->step(params_.data() + value_offset_, acc_.data() + value_offset_,
                   stats + kSlotValueGradNorm);
  }
}

}  // namespace batchpole
