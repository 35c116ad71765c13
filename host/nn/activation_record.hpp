// The activations that acting computed, kept for the update so that it skips a forward pass:
// per network (trunk, policy, value) and layer, a (capacity x width) matrix. A recording starts
// at row 0, continues where the last act() ended, and is valid only for the parameters it was
// made with (the model's parameter version). A population's agents each have their own block of
// `capacity` rows and their own count of recorded rows.
#pragma once

#include <cstdint>
#include <vector>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/model_config.hpp"

namespace batchpole {

class ActivationRecord {
 public:
  ActivationRecord(Device& device, const ModelConfig& config)
      : device_(&device), config_(config), networks_(config.networks()) {}

  static std::size_t bytes_per_row(const ModelConfig& config, bool values);
  // Room for `rows` rows of each of `agents` agents (grows, never shrinks); values = false
  // leaves out the value network.
  void reserve(int64_t rows, bool values, int64_t agents = 1);
  [[nodiscard]] std::size_t bytes() const { return storage_.bytes(); }
  [[nodiscard]] int64_t capacity() const { return capacity_; }
  [[nodiscard]] bool has_values() const { return has_values_; }

  // Where rows [row, ...) of `agent`'s network `net` (0 trunk, 1 policy, 2 value) are
  // recorded.
  [[nodiscard]] LayerOutputs at(int net, int64_t row, int64_t agent = 0);

  // The state of the recording, kept by the model's act() and checked by its update.
  std::vector<int64_t> rows{0};  // rows [0, rows[k]) of agent k recorded ...
  bool values = false;   // ... the value network's too ...
  uint64_t version = 0;  // ... with the parameters of this version

 private:
  Device* device_;
  ModelConfig config_;
  std::vector<MlpConfig> networks_;
  Buffer<float> storage_;
  int64_t capacity_ = 0;
  int64_t agents_ = 1;
  bool has_values_ = false;
  std::vector<std::vector<int64_t>> offsets_;  // [net][layer], floats into storage_
};

}  // namespace batchpole
