#include "batchpole/nn/mlp.hpp"

#include <algorithm>
#include <cmath>

namespace batchpole {

namespace {

// Workspace layout, in floats: every layer's output, two scratch matrices as wide as the widest
// hidden layer (none for a single layer), then the ones vector.
struct WorkspaceLayout {
  std::vector<int64_t> act_offsets;
  int64_t scratch_offset = 0;
  int64_t scratch_size = 0;
  int64_t ones_offset = 0;
  int64_t total = 0;
};

WorkspaceLayout layout_for(const MlpConfig& c, int64_t rows) {
  WorkspaceLayout w;
  int64_t at = 0;
  for (int32_t l = 0; l < c.layers(); ++l) {
    w.act_offsets.push_back(at);
    at += rows * c.sizes[l + 1];
  }
  int32_t widest_hidden = 0;
  for (int32_t l = 1; l < c.layers(); ++l) widest_hidden = std::max(widest_hidden, c.sizes[l]);
  w.scratch_offset = at;
  w.scratch_size = rows * widest_hidden;
  at += 2 * w.scratch_size;
  w.ones_offset = at;
  w.total = at + rows;
  return w;
}

float beta_for(GradientMode mode) { return mode == GradientMode::kOverwrite ? 0.0f : 1.0f; }

}  // namespace

int64_t MlpConfig::parameter_count() const {
  int64_t n = 0;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    n += static_cast<int64_t>(sizes[l]) * sizes[l + 1] + sizes[l + 1];
  }
  return n;
}

void MlpConfig::validate() const {
  BP_CHECK_ARG(sizes.size() >= 2, "an MLP needs at least an input and an output size, got "
                                      << sizes.size() << " sizes");
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    BP_CHECK_ARG(sizes[i] > 0,
                 "MLP layer size " << i << " is " << sizes[i] << "; sizes must be positive");
  }
}

Mlp::Mlp(Device& device, Blas& blas, NnOps& ops, MlpConfig config, int64_t max_rows, float* params,
         float* grads, int64_t agent_stride)
    : blas_(&blas),
      ops_(&ops),
      config_(std::move(config)),
      max_rows_(max_rows),
      params_(params),
      grads_(grads),
      agent_stride_(agent_stride) {
  config_.validate();
  BP_CHECK_ARG(max_rows_ >= 1, "Mlp: max_rows must be at least 1, got " << max_rows_);
  BP_CHECK_ARG(params_ != nullptr && grads_ != nullptr, "Mlp: parameter memory is null");
  int64_t at = 0;
  for (int32_t l = 0; l < config_.layers(); ++l) {
    offsets_.push_back(at);
    at += static_cast<int64_t>(in(l)) * out(l) + out(l);
  }
  const WorkspaceLayout w = layout_for(config_, max_rows_);
  workspace_ = Buffer<float>(device, static_cast<std::size_t>(w.total));
  workspace_.zero();
  for (const int64_t off : w.act_offsets) acts_.push_back(workspace_.data() + off);
  scratch_[0] = workspace_.data() + w.scratch_offset;
  scratch_[1] = scratch_[0] + w.scratch_size;
  ones_ = workspace_.data() + w.ones_offset;
  ops_->fill(ones_, max_rows_, 1.0f);
}

std::size_t Mlp::workspace_bytes(const MlpConfig& config, int64_t max_rows) {
  return static_cast<std::size_t>(layout_for(config, max_rows).total) * sizeof(float);
}

std::size_t Mlp::workspace_bytes() const { return workspace_.bytes(); }

void Mlp::bind_gradients(float* grads) {
  BP_CHECK_ARG(grads != nullptr, "Mlp::bind_gradients: gradient memory is null");
  grads_ = grads;
}

void Mlp::bind_parameters(float* params) {
  BP_CHECK_ARG(params != nullptr, "Mlp::bind_parameters: parameter memory is null");
  params_ = params;
}

int64_t Mlp::bias_offset(int32_t layer) const {
  return offsets_[layer] + static_cast<int64_t>(in(layer)) * out(layer);
}

void Mlp::init(uint64_t seed, uint32_t first_block) {
  for (int32_t l = 0; l < config_.layers(); ++l) {
    const auto bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(in(l))));
    const auto block = first_block + 2U * static_cast<uint32_t>(l);
    ops_->init_uniform(params_ + weight_offset(l), static_cast<int64_t>(in(l)) * out(l), bound,
                       seed, block);
    ops_->init_uniform(params_ + bias_offset(l), out(l), bound, seed, block + 1U);
  }
}

void Mlp::check_input(const char* call, const ConstMatrix& x, const MlpAgents& agents) const {
  BP_CHECK_ARG(x.rows > 0, call << ": empty batch (input is " << x.rows << " x " << x.cols << ")");
  BP_CHECK_ARG(x.cols == config_.inputs(), call << ": input is " << x.rows << " x " << x.cols
                                                << " but the network takes " << config_.inputs()
                                                << " columns (rows x " << config_.inputs() << ")");
  BP_CHECK_ARG(agents.agents >= 1 && x.rows * agents.agents <= max_rows_,
               call << ": " << agents.agents << " x " << x.rows
                    << " rows exceed the workspace of " << max_rows_
                    << " rows; pass the batch in chunks");
  BP_CHECK_ARG(agents.agents == 1 ||
                   (agent_stride_ >= parameter_count() &&
                    (agents.x_stride == 0 || agents.x_stride >= x.rows)),
               call << ": " << agents.agents << " agents need networks at least "
                    << parameter_count() << " floats apart (agent_stride " << agent_stride_
                    << ") and inputs at least " << x.rows << " rows apart (x_stride "
                    << agents.x_stride << ")");
  BP_CHECK_ARG(x.data != nullptr, call << ": input data is a null pointer");
}

void Mlp::check_outputs(const char* call, const LayerOutputs& o) const {
  BP_CHECK_ARG(static_cast<int32_t>(o.layers.size()) == config_.layers(),
               call << ": " << o.layers.size() << " layer outputs given for a network of "
                    << config_.layers() << " layers");
  for (const float* p : o.layers) {
    BP_CHECK_ARG(p != nullptr, call << ": a layer output is a null pointer");
  }
}

const float* Mlp::forward(const ConstMatrix& x, const LayerOutputs* into, const MlpAgents& agents) {
  check_input("Mlp::forward", x, agents);
  if (agents.agents > 1) {
    BP_CHECK_ARG(into == nullptr, "Mlp::forward: several agents' outputs stay in the workspace");
    return forward_agents(x, agents);
  }
  if (into != nullptr) check_outputs("Mlp::forward", *into);
  const std::vector<float*>& acts = into != nullptr ? into->layers : acts_;
  const int64_t rows = x.rows;
  const float* input = x.data;
  for (int32_t l = 0; l < config_.layers(); ++l) {
    // Y = X W^T, then Y = act(Y + b).
    blas_->gemm(Trans::kNo, Trans::kYes, rows, out(l), in(l), 1.0f, input, in(l),
                params_ + weight_offset(l), in(l), 0.0f, acts[l], out(l));
    ops_->bias_activation(acts[l], params_ + bias_offset(l), rows, out(l), act(l));
    input = acts[l];
  }
  if (into == nullptr) {
    last_rows_ = rows;
    last_agents_ = 1;
  }
  return acts.back();
}

const float* Mlp::forward_agents(const ConstMatrix& x, const MlpAgents& agents) {
  const int64_t rows = x.rows;
  const int64_t k = agents.agents;
  const int64_t x_stride = agents.x_stride > 0 ? agents.x_stride : rows;
  const float* input = x.data;
  int64_t input_stride = x_stride * in(0);
  for (int32_t l = 0; l < config_.layers(); ++l) {
    blas_->gemm_strided_batched(Trans::kNo, Trans::kYes, rows, out(l), in(l), 1.0f, input, in(l),
                                input_stride, params_ + weight_offset(l), in(l), agent_stride_,
                                0.0f, acts_[l], out(l), rows * out(l), k);
    ops_->bias_activation(acts_[l], params_ + bias_offset(l), k * rows, out(l), act(l), rows,
                          agent_stride_);
    input = acts_[l];
    input_stride = rows * out(l);
  }
  last_rows_ = rows;
  last_agents_ = k;
  return acts_.back();
}

void Mlp::backward(const ConstMatrix& x, float* d_out, GradientMode param_mode, float* d_x,
                   GradientMode dx_mode, const LayerOutputs* from, const MlpAgents& agents) {
  check_input("Mlp::backward", x, agents);
  if (agents.agents > 1 || last_agents_ > 1) {
    BP_CHECK_ARG(from == nullptr && agents.agents == last_agents_ && x.rows == last_rows_,
                 "Mlp::backward: " << agents.agents << " agents of " << x.rows
                                   << " rows, but the last forward ran " << last_agents_
                                   << " agents of " << last_rows_ << " rows");
    BP_CHECK_ARG(d_out != nullptr, "Mlp::backward: d_out is a null pointer");
    backward_agents(x, d_out, param_mode, d_x, dx_mode, agents);
    return;
  }
  if (from != nullptr) {
    check_outputs("Mlp::backward", *from);
  } else {
    BP_CHECK_ARG(x.rows == last_rows_, "Mlp::backward: input is "
                                           << x.rows << " x " << x.cols
                                           << " but the last forward ran on " << last_rows_
                                           << " rows; call forward on the same input first");
  }
  BP_CHECK_ARG(d_out != nullptr, "Mlp::backward: d_out is a null pointer");
  const std::vector<float*>& acts = from != nullptr ? from->layers : acts_;
  const int64_t rows = x.rows;
  const float beta_p = beta_for(param_mode);
  // delta: the loss gradient with respect to layer l's pre-activation output.
  float* delta = d_out;
  ops_->activation_backward(delta, acts[config_.layers() - 1], rows * config_.outputs(),
                            config_.output_activation);
  for (int32_t l = config_.layers() - 1; l >= 0; --l) {
    const float* input = l == 0 ? x.data : acts[l - 1];
    // dW (out x in) = delta^T X; db = delta^T 1.
    blas_->gemm(Trans::kYes, Trans::kNo, out(l), in(l), rows, 1.0f, delta, out(l), input, in(l),
                beta_p, grads_ + weight_offset(l), in(l));
    blas_->gemv(Trans::kYes, rows, out(l), 1.0f, delta, out(l), ones_, 1, beta_p,
                grads_ + bias_offset(l), 1);
    if (l > 0) {
      // delta_{l-1} = (delta W) * act'(Y_{l-1}).
      float* next = scratch_[l & 1];
      blas_->gemm(Trans::kNo, Trans::kNo, rows, in(l), out(l), 1.0f, delta, out(l),
                  params_ + weight_offset(l), in(l), 0.0f, next, in(l));
      ops_->activation_backward(next, acts[l - 1], rows * in(l), config_.hidden_activation);
      delta = next;
    } else if (d_x != nullptr) {
      blas_->gemm(Trans::kNo, Trans::kNo, rows, in(0), out(0), 1.0f, delta, out(0),
                  params_ + weight_offset(0), in(0), beta_for(dx_mode), d_x, in(0));
    }
  }
}

void Mlp::backward_agents(const ConstMatrix& x, float* d_out, GradientMode param_mode, float* d_x,
                          GradientMode dx_mode, const MlpAgents& agents) {
  const int64_t rows = x.rows;
  const int64_t k = agents.agents;
  const int64_t x_stride = (agents.x_stride > 0 ? agents.x_stride : rows) * in(0);
  const float beta_p = beta_for(param_mode);
  float* delta = d_out;
  ops_->activation_backward(delta, acts_[config_.layers() - 1], k * rows * config_.outputs(),
                            config_.output_activation);
  for (int32_t l = config_.layers() - 1; l >= 0; --l) {
    const float* input = l == 0 ? x.data : acts_[l - 1];
    const int64_t input_stride = l == 0 ? x_stride : rows * in(l);
    const int64_t delta_stride = rows * out(l);
    // dW_k = delta_k^T X_k, db_k = delta_k^T 1 (the ones shared by every agent).
    blas_->gemm_strided_batched(Trans::kYes, Trans::kNo, out(l), in(l), rows, 1.0f, delta, out(l),
                                delta_stride, input, in(l), input_stride, beta_p,
                                grads_ + weight_offset(l), in(l), agent_stride_, k);
    blas_->gemm_strided_batched(Trans::kYes, Trans::kNo, out(l), 1, rows, 1.0f, delta, out(l),
                                delta_stride, ones_, 1, 0, beta_p, grads_ + bias_offset(l), 1,
                                agent_stride_, k);
    if (l > 0) {
      float* next = scratch_[l & 1];
      blas_->gemm_strided_batched(Trans::kNo, Trans::kNo, rows, in(l), out(l), 1.0f, delta, out(l),
                                  delta_stride, params_ + weight_offset(l), in(l), agent_stride_,
                                  0.0f, next, in(l), rows * in(l), k);
      ops_->activation_backward(next, acts_[l - 1], k * rows * in(l), config_.hidden_activation);
      delta = next;
    } else if (d_x != nullptr) {
      blas_->gemm_strided_batched(Trans::kNo, Trans::kNo, rows, in(0), out(0), 1.0f, delta, out(0),
                                  delta_stride, params_ + weight_offset(0), in(0), agent_stride_,
                                  beta_for(dx_mode), d_x, in(0), rows * in(0), k);
    }
  }
}

}  // namespace batchpole
