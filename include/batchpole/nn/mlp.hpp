// A multi-layer perceptron over a batch of rows: Linear layers (PyTorch's nn.Linear layout and
// initialisation) with an activation after every hidden layer, run through a device's Blas and
// NnOps.
//
// Parameters live in memory the caller owns (so that a model keeps all its networks in one flat
// buffer and clips and steps them in one pass); the activations that backward needs live in
// workspace the Mlp owns, sized by `max_rows`, a chunk of the batch rather than the batch: long
// rollouts go through forward/backward chunk by chunk with gradients accumulated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/blas.hpp"
#include "batchpole/nn/nn_ops.hpp"

namespace batchpole {

// Whether backward replaces what the gradient memory holds or adds to it.
enum class GradientMode : uint8_t { kOverwrite, kAccumulate };

// A row-major matrix in device memory, with its shape, so that calls can say which shapes do
// not match.
struct ConstMatrix {
  const float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// Where a forward pass keeps each layer's output (rows x out_l, row-major, one pointer per
// layer) when not in the Mlp's own workspace: a model that records the activations of acting
// and later runs backward from them, without a second forward pass.
struct LayerOutputs {
  std::vector<float*> layers;
};

struct MlpConfig {
  std::vector<int32_t> sizes;  // {inputs, hidden..., outputs}; at least two entries
  Activation hidden_activation = Activation::kRelu;
  Activation output_activation = Activation::kIdentity;

  [[nodiscard]] int32_t inputs() const { return sizes.front(); }
  [[nodiscard]] int32_t outputs() const { return sizes.back(); }
  [[nodiscard]] int32_t layers() const { return static_cast<int32_t>(sizes.size()) - 1; }
  [[nodiscard]] int64_t parameter_count() const;
  // Throws Error(kInvalidArgument) unless there are >= 2 sizes, all positive.
  void validate() const;
};

// A population's agents in one pass (the batched agents of a GPU plan): `agents` networks of
// the same shape whose parameters (and gradients) lie agent_stride floats apart (the Mlp's
// constructor), each run on its own `rows` rows: agent k's input rows start k * x_stride rows
// into x (0: packed, x_stride = rows), and outputs and gradients are packed agent after agent.
// Every layer is then one strided-batched gemm.
struct MlpAgents {
  int64_t agents = 1;
  int64_t x_stride = 0;
};

class Mlp {
 public:
  // params and grads: parameter_count() floats each on the device. Layer l's weight
  // is out_l x in_l row-major (as torch.nn.Linear's), followed by its bias of out_l. A
  // population's networks follow agent_stride floats apart (used by passes over MlpAgents).
  Mlp(Device& device, Blas& blas, NnOps& ops, MlpConfig config, int64_t max_rows, float* params,
      float* grads, int64_t agent_stride = 0);

  // Device memory the activations and scratch of `max_rows` rows take.
  static std::size_t workspace_bytes(const MlpConfig& config, int64_t max_rows);
  [[nodiscard]] std::size_t workspace_bytes() const;

  // PyTorch's nn.Linear default: weight and bias uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)),
  // drawn from philox_draw(seed, kInit, block, .) with block = first_block + 2l for layer l's
  // weight and first_block + 2l + 1 for its bias. Same seed, same parameters on every device.
  void init(uint64_t seed, uint32_t first_block);

  // Runs x (rows x inputs, 1 <= rows <= max_rows) through the network and returns the output
  // (rows x outputs): in the Mlp's workspace, valid until the next forward, or, with `into`,
  // in the caller's memory (then the output is into->layers.back()). With several agents x.rows
  // is each agent's (agents x rows <= max_rows) and `into` is not supported.
  const float* forward(const ConstMatrix& x, const LayerOutputs* into = nullptr,
                       const MlpAgents& agents = {});

  // Backward after forward on the same x. d_out (rows x outputs) is the loss gradient with
  // respect to the output; it is used as scratch and overwritten. Parameter gradients are
  // written or added (param_mode); if d_x is not null the gradient with respect to x (rows x
  // inputs) is written or added to it (dx_mode). `from`: the layer outputs a forward on x wrote
  // there (with these parameters), instead of the last forward's in the workspace.
  void backward(const ConstMatrix& x, float* d_out, GradientMode param_mode, float* d_x = nullptr,
                GradientMode dx_mode = GradientMode::kOverwrite,
                const LayerOutputs* from = nullptr, const MlpAgents& agents = {});

  // Where backward writes the parameter gradients from now on (parameter_count() floats on
  // the device): models that sum the gradients of several parts of a batch in a fixed order
  // give each part its own memory.
  void bind_gradients(float* grads);
  // Which parameters the passes use from now on: a population's workers run one agent's
  // networks, then another's.
  void bind_parameters(float* params);

  [[nodiscard]] const MlpConfig& config() const { return config_; }
  [[nodiscard]] int64_t max_rows() const { return max_rows_; }
  [[nodiscard]] int64_t parameter_count() const { return config_.parameter_count(); }
  [[nodiscard]] int64_t weight_offset(int32_t layer) const { return offsets_[layer]; }
  [[nodiscard]] int64_t bias_offset(int32_t layer) const;
  [[nodiscard]] const float* output() const { return acts_[config_.layers() - 1]; }

 private:
  [[nodiscard]] int32_t in(int32_t l) const { return config_.sizes[l]; }
  [[nodiscard]] int32_t out(int32_t l) const { return config_.sizes[l + 1]; }
  [[nodiscard]] Activation act(int32_t l) const {
    return l + 1 == config_.layers() ? config_.output_activation : config_.hidden_activation;
  }
  void check_input(const char* call, const ConstMatrix& x, const MlpAgents& agents) const;
  const float* forward_agents(const ConstMatrix& x, const MlpAgents& agents);
  void backward_agents(const ConstMatrix& x, float* d_out, GradientMode param_mode, float* d_x,
                       GradientMode dx_mode, const MlpAgents& agents);
  void check_outputs(const char* call, const LayerOutputs& o) const;

  Blas* blas_;
  NnOps* ops_;
  MlpConfig config_;
  int64_t max_rows_;
  float* params_;
  float* grads_;
  std::vector<int64_t> offsets_;  // weight offset of each layer
  Buffer<float> workspace_;
  std::vector<float*> acts_;                // output of each layer, max_rows x out_l
  float* scratch_[2] = {nullptr, nullptr};  // backward's ping-pong, max_rows x widest hidden
  float* ones_ = nullptr;                   // max_rows ones: bias gradients as one gemv
  int64_t agent_stride_ = 0;                // floats between agents' networks
  int64_t last_rows_ = 0;                   // rows (of each agent) of the last forward
  int64_t last_agents_ = 1;                 // agents of the last forward
};

}  // namespace batchpole
