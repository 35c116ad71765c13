#include "activation_record.hpp"

#include <algorithm>

namespace batchpole {

std::size_t ActivationRecord::bytes_per_row(const ModelConfig& config, bool values) {
  std::size_t floats = 0;
  const auto nets = config.networks();
  for (std::size_t net = 0; net < (values ? 3U : 2U); ++net) {
    const MlpConfig& m = nets[net];
    for (std::size_t l = 1; l < m.sizes.size(); ++l) floats += static_cast<std::size_t>(m.sizes[l]);
  }
  return floats * sizeof(float);
}

void ActivationRecord::reserve(int64_t rows_wanted, bool with_values, int64_t agents) {
  BP_CHECK_ARG(rows_wanted >= 0, "reserve_record: rows must be >= 0, got " << rows_wanted);
  BP_CHECK_ARG(agents >= 1, "reserve_record: agents must be >= 1, got " << agents);
  if (rows_wanted <= capacity_ && agents == agents_ && (has_values_ || !with_values)) return;
  rows_wanted = std::max(rows_wanted, agents == agents_ ? capacity_ : 0);
  with_values = with_values || has_values_;
  agents_ = agents;
  const int64_t total = rows_wanted * agents;
  const std::size_t bytes = static_cast<std::size_t>(total) * bytes_per_row(config_, with_values);
  storage_ = Buffer<float>(*device_, bytes / sizeof(float));
  capacity_ = rows_wanted;
  has_values_ = with_values;
  offsets_.clear();
  int64_t at = 0;
  for (std::size_t net = 0; net < (with_values ? 3U : 2U); ++net) {
    std::vector<int64_t> offsets;
    for (std::size_t l = 1; l < networks_[net].sizes.size(); ++l) {
      offsets.push_back(at);
      at += total * networks_[net].sizes[l];
    }
    offsets_.push_back(std::move(offsets));
  }
  rows.assign(static_cast<std::size_t>(agents), 0);
}

LayerOutputs ActivationRecord::at(int net, int64_t row, int64_t agent) {
  row += agent * capacity_;
  const MlpConfig& m = networks_[static_cast<std::size_t>(net)];
  LayerOutputs o;
  const auto& offsets = offsets_[static_cast<std::size_t>(net)];
  for (std::size_t l = 0; l < offsets.size(); ++l) {
    o.layers.push_back(storage_.data() + offsets[l] + row * m.sizes[l + 1]);
  }
  return o;
}

}  // namespace batchpole
