// The one small BLAS interface that the networks use: single precision, row-major, device
// pointers, asynchronous on the device's stream. Implemented with OpenBLAS through CBLAS
// (host/cpu/cpu_blas.cpp) and with cuBLAS (kernels/cublas_blas.cu); Device::blas() hands out
// the device's one. The public calls check shapes and leading dimensions once, here (host/nn/
// blas.cpp), throw Error(kInvalidArgument) naming them, and count one stream operation each;
// the implementations only translate.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "batchpole/device/device.hpp"

namespace batchpole {

enum class Trans : uint8_t { kNo, kYes };

class Blas {
 public:
  explicit Blas(Device& device) : device_(&device) {}
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  virtual ~Blas() = default;

  [[nodiscard]] virtual std::string description() const = 0;

  // C = alpha * op(A) * op(B) + beta * C with every matrix row-major: op(A) is m x k, op(B) is
  // k x n, C is m x n; lda, ldb, ldc are row strides (elements between rows). beta = 0 ignores
  // what C held (NaN included).
  void gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
  // `batch` independent gemms; matrix i starts at a + i * stride_a (likewise b, c).
  void gemm_strided_batched(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha,
                            const float* a, int64_t lda, int64_t stride_a, const float* b,
                            int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc,
                            int64_t stride_c, int64_t batch);
  // y = alpha * op(A) * x + beta * y, A row-major m x n (op(A) = A^T when t == kYes).
  void gemv(Trans t, int64_t m, int64_t n, float alpha, const float* a, int64_t lda, const float* x,
            int64_t incx, float beta, float* y, int64_t incy);
  void axpy(int64_t n, float alpha, const float* x, int64_t incx, float* y, int64_t incy);
  void scal(int64_t n, float alpha, float* x, int64_t incx);
  // The results land in device memory (`result` is one float on the device), so a
  // norm or dot product never forces a host synchronisation.
  void dot(int64_t n, const float* x, int64_t incx, const float* y, int64_t incy, float* result);
  void nrm2(int64_t n, const float* x, int64_t incx, float* result);

 protected:
  [[nodiscard]] Device& device() const { return *device_; }

  // Called with checked arguments that fit in int.
  virtual void do_gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* a,
                       int lda, const float* b, int ldb, float beta, float* c, int ldc) = 0;
  virtual void do_gemm_strided_batched(Trans ta, Trans tb, int m, int n, int k, float alpha,
                                       const float* a, int lda, int64_t stride_a, const float* b,
                                       int ldb, int64_t stride_b, float beta, float* c, int ldc,
                                       int64_t stride_c, int batch) = 0;
  virtual void do_gemv(Trans t, int m, int n, float alpha, const float* a, int lda, const float* x,
                       int incx, float beta, float* y, int incy) = 0;
  virtual void do_axpy(int n, float alpha, const float* x, int incx, float* y, int incy) = 0;
  virtual void do_scal(int n, float alpha, float* x, int incx) = 0;
  virtual void do_dot(int n, const float* x, int incx, const float* y, int incy, float* result) = 0;
  virtual void do_nrm2(int n, const float* x, int incx, float* result) = 0;

 private:
  Device* device_;
};

}  // namespace batchpole
