// The implementations behind make_blas and make_nn_ops (host/nn_factory.cpp, the one place
// that looks at the device), and the argument checks both NnOps implementations share.
#pragma once

#include <memory>

#include "batchpole/blas.hpp"
#include "batchpole/nn_ops.hpp"

namespace batchpole {

std::unique_ptr<Blas> make_cpu_blas();
std::unique_ptr<NnOps> make_cpu_nn_ops();
// Defined in kernels/ when CUDA is compiled in, by host/nn_no_cuda.cpp otherwise (throwing
// Error(kUnavailable)).
std::unique_ptr<Blas> make_cuda_blas(Backend& backend, const BlasOptions& options);
std::unique_ptr<NnOps> make_cuda_nn_ops(Backend& backend);

namespace nn_check {

inline void rows(const char* op, int64_t rows) {
  BP_CHECK_ARG(rows >= 0, op << ": negative row count " << rows);
}

inline void actions(const char* op, int32_t num_actions) {
  BP_CHECK_ARG(num_actions >= 1 && num_actions <= kMaxActions,
               op << ": " << num_actions << " actions, supported are 1 to " << kMaxActions);
}

inline void not_null(const char* op, const char* name, const void* p) {
  BP_CHECK_ARG(p != nullptr, op << ": " << name << " is a null pointer");
}

inline void policy_loss(const PolicyLossArgs& a) {
  const char* op = "policy_loss_grad";
  rows(op, a.rows);
  actions(op, a.num_actions);
  if (a.rows == 0) return;
  not_null(op, "logits", a.logits);
  not_null(op, "actions", a.actions);
  not_null(op, "weights", a.weights);
  not_null(op, "count", a.count);
  not_null(op, "d_logits", a.d_logits);
}

inline void value_loss(const ValueLossArgs& a) {
  const char* op = "value_loss_grad";
  rows(op, a.rows);
  if (a.rows == 0) return;
  not_null(op, "values", a.values);
  not_null(op, "targets", a.targets);
  not_null(op, "count", a.count);
  not_null(op, "d_values", a.d_values);
}

}  // namespace nn_check

}  // namespace batchpole
