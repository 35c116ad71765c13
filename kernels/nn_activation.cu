// Bias plus activation after a layer's gemm, and the activation's backward pass.
#include <cstdint>

#include "cuda_check.cuh"
#include "nn_launch.cuh"

namespace batchpole::cuda {

namespace {

// Index is uint32_t for every chunk the model runs (a 64-bit modulo per element costs several
// times a 32-bit one), int64_t beyond 2^32 elements.
template <Activation A, class Index>
__global__ void bias_activation_kernel(float* __restrict__ y, const float* __restrict__ bias,
                                       Index n, Index cols) {
  const Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = activate(A, y[i] + bias[i % cols]);
}

// A population's rows: agent (row / rows_per_agent) adds its own bias, bias_stride apart.
template <Activation A, class Index>
__global__ void agent_bias_activation_kernel(float* __restrict__ y, const float* __restrict__ bias,
                                             Index n, Index cols, Index rows_per_agent,
                                             int64_t bias_stride) {
  const Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const Index row = i / cols;
  const Index agent = row / rows_per_agent;
  y[i] = activate(A, y[i] + bias[static_cast<int64_t>(agent) * bias_stride + (i - row * cols)]);
}

template <Activation A>
void launch_bias_activation_as(cudaStream_t stream, float* y, const float* bias, int64_t n,
                               int64_t cols, int64_t rows_per_agent, int64_t bias_stride) {
  const bool small = n <= static_cast<int64_t>(UINT32_MAX) - kBlock;
  if (bias_stride > 0 && rows_per_agent * cols < n) {
    if (small) {
      launch(agent_bias_activation_kernel<A, uint32_t>, grid_for(n), kBlock, stream, y, bias,
             static_cast<uint32_t>(n), static_cast<uint32_t>(cols),
             static_cast<uint32_t>(rows_per_agent), bias_stride);
    } else {
      launch(agent_bias_activation_kernel<A, int64_t>, grid_for(n), kBlock, stream, y, bias, n,
             cols, rows_per_agent, bias_stride);
    }
  } else if (small) {
    launch(bias_activation_kernel<A, uint32_t>, grid_for(n), kBlock, stream, y, bias,
           static_cast<uint32_t>(n), static_cast<uint32_t>(cols));
  } else {
    launch(bias_activation_kernel<A, int64_t>, grid_for(n), kBlock, stream, y, bias, n, cols);
  }
}

template <Activation A>
__global__ void activation_backward_kernel(float* __restrict__ dy, const float* __restrict__ y,
                                           int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dy[i] = activation_backward_value(A, dy[i], y[i]);
}

}  // namespace

void launch_bias_activation(cudaStream_t stream, float* y, const float* bias, int64_t rows,
                            int64_t cols, Activation act, int64_t rows_per_agent,
                            int64_t bias_stride) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  switch (act) {
    case Activation::kRelu:
      launch_bias_activation_as<Activation::kRelu>(stream, y, bias, n, cols, rows_per_agent, bias_stride);
      break;
    case Activation::kTanh:
      launch_bias_activation_as<Activation::kTanh>(stream, y, bias, n, cols, rows_per_agent, bias_stride);
      break;
    case Activation::kIdentity:
      launch_bias_activation_as<Activation::kIdentity>(stream, y, bias, n, cols, rows_per_agent, bias_stride);
      break;
  }
}

void launch_activation_backward(cudaStream_t stream, float* dy, const float* y, int64_t n,
                                Activation act) {
  if (n == 0 || act == Activation::kIdentity) return;
  if (act == Activation::kRelu) {
    launch(activation_backward_kernel<Activation::kRelu>, grid_for(n), kBlock, stream, dy, y, n);
  } else {
    launch(activation_backward_kernel<Activation::kTanh>, grid_for(n), kBlock, stream, dy, y, n);
  }
}

}  // namespace batchpole::cuda
