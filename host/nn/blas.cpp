// The shape checks of the Blas interface, shared by both implementations.
#include "batchpole/nn/blas.hpp"

#include <climits>

namespace batchpole {

namespace {

const char* op_name(Trans t) { return t == Trans::kNo ? "N" : "T"; }

// BLAS takes int; chunked work keeps every dimension far below that.
int to_int(int64_t v, const char* what, const char* call) {
  BP_CHECK_ARG(v >= 0 && v <= INT_MAX,
               call << ": " << what << " = " << v << " is outside [0, " << INT_MAX << "]");
  return static_cast<int>(v);
}

void check_vector(const char* call, const char* name, const void* p, int64_t n, int64_t inc) {
  BP_CHECK_ARG(inc > 0, call << ": increment of " << name << " must be positive, got " << inc);
  BP_CHECK_ARG(p != nullptr || n == 0,
               call << ": " << name << " (" << n << " elements) is a null pointer");
}

// What a gemm call was, for messages: formatted only when a check fails (a gemm runs in
// microseconds at small batches, formatting a stream takes about one).
struct GemmCall {
  const char* name;
  Trans ta, tb;
  int64_t m, n, k;
};

std::ostream& operator<<(std::ostream& os, const GemmCall& g) {
  return os << g.name << "(" << op_name(g.ta) << op_name(g.tb) << ", m = " << g.m << ", n = " << g.n
            << ", k = " << g.k << ")";
}

// `call` is anything that streams: a name, or a GemmCall.
template <class Call>
void check_matrix(const Call& call, const char* name, const void* p, int64_t rows, int64_t cols,
                  int64_t ld) {
  BP_CHECK_ARG(ld >= (cols > 0 ? cols : 1), call << ": leading dimension of " << name << " is "
                                                 << ld << ", less than the " << cols
                                                 << " columns of the row-major " << rows << " x "
                                                 << cols << " matrix " << name);
  BP_CHECK_ARG(p != nullptr || rows == 0 || cols == 0,
               call << ": " << name << " (" << rows << " x " << cols << ") is a null pointer");
}

void check_gemm(const char* call, Trans ta, Trans tb, int64_t m, int64_t n, int64_t k,
                const float* a, int64_t lda, const float* b, int64_t ldb, const float* c,
                int64_t ldc) {
  BP_CHECK_ARG(m >= 0 && n >= 0 && k >= 0,
               call << ": negative size (m = " << m << ", n = " << n << ", k = " << k << ")");
  // Stored shapes: A is m x k, or k x m when transposed; B is k x n, or n x k.
  const bool at = ta == Trans::kYes;
  const bool bt = tb == Trans::kYes;
  const GemmCall g{call, ta, tb, m, n, k};
  check_matrix(g, "A", a, at ? k : m, at ? m : k, lda);
  check_matrix(g, "B", b, bt ? n : k, bt ? k : n, ldb);
  check_matrix(g, "C", c, m, n, ldc);
}

}  // namespace

void Blas::gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  check_gemm("gemm", ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
  if (m == 0 || n == 0) return;
  device_->enqueue(
      "gemm", [this](const auto&... op_args) { this->do_gemm(op_args...); }, ta, tb,
      to_int(m, "m", "gemm"), to_int(n, "n", "gemm"), to_int(k, "k", "gemm"), alpha, a,
      to_int(lda, "lda", "gemm"), b, to_int(ldb, "ldb", "gemm"), beta, c,
      to_int(ldc, "ldc", "gemm"));
}

void Blas::gemm_strided_batched(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha,
                                const float* a, int64_t lda, int64_t stride_a, const float* b,
                                int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc,
                                int64_t stride_c, int64_t batch) {
  const char* call = "gemm_strided_batched";
  check_gemm(call, ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
  BP_CHECK_ARG(batch >= 0, call << ": negative batch count " << batch);
  BP_CHECK_ARG(stride_a >= 0 && stride_b >= 0 && stride_c >= 0, call << ": negative stride ("
                                                                     << stride_a << ", " << stride_b
                                                                     << ", " << stride_c << ")");
  // Distinct outputs must not overlap, or the batch would race on the GPU.
  BP_CHECK_ARG(batch <= 1 || stride_c >= (m - 1) * ldc + n,
               call << ": stride_c = " << stride_c << " makes the " << m << " x " << n
                    << " outputs (ldc = " << ldc << ") overlap");
  if (m == 0 || n == 0 || batch == 0) return;
  device_->enqueue(
      "gemm_strided_batched",
      [this](const auto&... op_args) { this->do_gemm_strided_batched(op_args...); }, ta, tb,
      to_int(m, "m", call), to_int(n, "n", call), to_int(k, "k", call), alpha, a,
      to_int(lda, "lda", call), stride_a, b, to_int(ldb, "ldb", call), stride_b, beta, c,
      to_int(ldc, "ldc", call), stride_c, to_int(batch, "batch", call));
}

void Blas::gemv(Trans t, int64_t m, int64_t n, float alpha, const float* a, int64_t lda,
                const float* x, int64_t incx, float beta, float* y, int64_t incy) {
  BP_CHECK_ARG(m >= 0 && n >= 0, "gemv: negative size (m = " << m << ", n = " << n << ")");
  check_matrix("gemv", "A", a, m, n, lda);
  const bool tr = t == Trans::kYes;
  check_vector("gemv", "x", x, tr ? m : n, incx);
  check_vector("gemv", "y", y, tr ? n : m, incy);
  if ((tr ? n : m) == 0) return;
  device_->enqueue(
      "gemv", [this](const auto&... op_args) { this->do_gemv(op_args...); }, t,
      to_int(m, "m", "gemv"), to_int(n, "n", "gemv"), alpha, a, to_int(lda, "lda", "gemv"), x,
      to_int(incx, "incx", "gemv"), beta, y, to_int(incy, "incy", "gemv"));
}

void Blas::axpy(int64_t n, float alpha, const float* x, int64_t incx, float* y, int64_t incy) {
  BP_CHECK_ARG(n >= 0, "axpy: negative size n = " << n);
  check_vector("axpy", "x", x, n, incx);
  check_vector("axpy", "y", y, n, incy);
  if (n == 0) return;
  device_->enqueue(
      "axpy", [this](const auto&... op_args) { this->do_axpy(op_args...); }, to_int(n, "n", "axpy"),
      alpha, x, to_int(incx, "incx", "axpy"), y, to_int(incy, "incy", "axpy"));
}

void Blas::scal(int64_t n, float alpha, float* x, int64_t incx) {
  BP_CHECK_ARG(n >= 0, "scal: negative size n = " << n);
  check_vector("scal", "x", x, n, incx);
  if (n == 0) return;
  device_->enqueue(
      "scal", [this](const auto&... op_args) { this->do_scal(op_args...); }, to_int(n, "n", "scal"),
      alpha, x, to_int(incx, "incx", "scal"));
}

void Blas::dot(int64_t n, const float* x, int64_t incx, const float* y, int64_t incy,
               float* result) {
  BP_CHECK_ARG(n >= 0, "dot: negative size n = " << n);
  check_vector("dot", "x", x, n, incx);
  check_vector("dot", "y", y, n, incy);
  BP_CHECK_ARG(result != nullptr, "dot: result is a null pointer");
  device_->enqueue(
      "dot", [this](const auto&... op_args) { this->do_dot(op_args...); }, to_int(n, "n", "dot"), x,
      to_int(incx, "incx", "dot"), y, to_int(incy, "incy", "dot"), result);
}

void Blas::nrm2(int64_t n, const float* x, int64_t incx, float* result) {
  BP_CHECK_ARG(n >= 0, "nrm2: negative size n = " << n);
  check_vector("nrm2", "x", x, n, incx);
  BP_CHECK_ARG(result != nullptr, "nrm2: result is a null pointer");
  device_->enqueue(
      "nrm2", [this](const auto&... op_args) { this->do_nrm2(op_args...); }, to_int(n, "n", "nrm2"),
      x, to_int(incx, "incx", "nrm2"), result);
}

}  // namespace batchpole
