// Blas with OpenBLAS through CBLAS. Row-major is CBLAS's own layout, so no mapping is needed.
// OpenBLAS runs its own threads inside each call; callers must never call in here from inside
// an OpenMP parallel region (the two pools would fight over the same cores).
#include <cblas.h>

#include "nn_impl.hpp"

namespace batchpole {

namespace {

CBLAS_TRANSPOSE to_cblas(Trans t) { return t == Trans::kNo ? CblasNoTrans : CblasTrans; }

class CpuBlas final : public Blas {
 public:
  [[nodiscard]] std::string description() const override { return "OpenBLAS (CBLAS)"; }

 protected:
  void do_gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* a, int lda,
               const float* b, int ldb, float beta, float* c, int ldc) override {
    cblas_sgemm(CblasRowMajor, to_cblas(ta), to_cblas(tb), m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
  }
  void do_gemm_strided_batched(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* a,
                               int lda, int64_t stride_a, const float* b, int ldb, int64_t stride_b,
                               float beta, float* c, int ldc, int64_t stride_c,
                               int batch) override {
    for (int i = 0; i < batch; ++i) {
      cblas_sgemm(CblasRowMajor, to_cblas(ta), to_cblas(tb), m, n, k, alpha, a + i * stride_a, lda,
                  b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
    }
  }
  void do_gemv(Trans t, int m, int n, float alpha, const float* a, int lda, const float* x,
               int incx, float beta, float* y, int incy) override {
    cblas_sgemv(CblasRowMajor, to_cblas(t), m, n, alpha, a, lda, x, incx, beta, y, incy);
  }
  void do_axpy(int n, float alpha, const float* x, int incx, float* y, int incy) override {
    cblas_saxpy(n, alpha, x, incx, y, incy);
  }
  void do_scal(int n, float alpha, float* x, int incx) override { cblas_sscal(n, alpha, x, incx); }
  void do_dot(int n, const float* x, int incx, const float* y, int incy, float* result) override {
    *result = cblas_sdot(n, x, incx, y, incy);
  }
  void do_nrm2(int n, const float* x, int incx, float* result) override {
    *result = cblas_snrm2(n, x, incx);
  }
};

}  // namespace

std::unique_ptr<Blas> make_cpu_blas() { return std::make_unique<CpuBlas>(); }

}  // namespace batchpole
