// What the model's two source files share: the scratch of a worker's workspace and the
// workspace itself (one worker's networks over the model's parameters, with its own
// activations).
#pragma once

#include <memory>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/model.hpp"

namespace batchpole {

namespace model_detail {

struct ScratchLayout {
  int64_t d_logits = 0, d_values = 0, d_features = 0, stats = 0, ones = 0, total = 0;
};

inline ScratchLayout scratch_layout(const ModelConfig& c, int64_t rows) {
  ScratchLayout s;
  int64_t at = 0;
  s.d_logits = at;
  at += rows * c.policy_outputs();
  s.d_values = at;
  at += rows;
  s.d_features = at;
  at += c.has_trunk() ? rows * c.shared_hidden.back() : 0;
  s.stats = at;
  at += rows * kStatColumnsClipped;
  s.ones = at;
  s.total = at + rows;
  return s;
}

// The networks' names in the recording: LayerOutputs index of each.
constexpr int kTrunk = 0;
constexpr int kPolicy = 1;
constexpr int kValue = 2;

}  // namespace model_detail

// One worker's networks (sharing the model's parameters, each with its own activations) and
// the scratch of the losses.
struct PolicyValueModel::Workspace {
  std::unique_ptr<Mlp> trunk;  // actor-critic only
  std::unique_ptr<Mlp> policy;
  std::unique_ptr<Mlp> value;  // none for a Q-network
  Buffer<float> scratch;       // d_logits, d_values, d_features, per-sample stats, ones
  float* d_logits = nullptr;
  float* d_values = nullptr;
  float* d_features = nullptr;
  float* sample_stats = nullptr;
  float* ones = nullptr;

  static std::size_t bytes(const ModelConfig& c, int64_t rows) {
    std::size_t w = Mlp::workspace_bytes(c.policy_config(), rows);
    if (c.has_value()) w += Mlp::workspace_bytes(c.value_config(), rows);
    if (c.has_trunk()) w += Mlp::workspace_bytes(c.trunk_config(), rows);
    return w +
           static_cast<std::size_t>(model_detail::scratch_layout(c, rows).total) * sizeof(float);
  }
  [[nodiscard]] std::size_t bytes() const {
    return policy->workspace_bytes() + (value ? value->workspace_bytes() : 0) +
           (trunk ? trunk->workspace_bytes() : 0) + scratch.bytes();
  }
  void bind_gradients(float* grads, int64_t policy_offset, int64_t value_offset) {
    if (trunk) trunk->bind_gradients(grads);
    policy->bind_gradients(grads + policy_offset);
    if (value) value->bind_gradients(grads + value_offset);
  }
  void bind_parameters(float* params, int64_t policy_offset, int64_t value_offset) {
    if (trunk) trunk->bind_parameters(params);
    policy->bind_parameters(params + policy_offset);
    if (value) value->bind_parameters(params + value_offset);
  }
};

}  // namespace batchpole
