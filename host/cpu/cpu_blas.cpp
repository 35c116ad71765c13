// Blas with OpenBLAS through CBLAS. Row-major is CBLAS's own layout, so no mapping is needed.
//
// batchpole owns the CPU threads: OpenBLAS runs single-threaded, inside the tasks that
// Device::run_tasks spreads over OpenMP threads (each task a shard of the batch, see
// host/nn/sharded_runner.cpp). With OpenBLAS's own pthreads between the OpenMP environment
// steps, a third of the time went to sched_yield and spin-waits (BENCHMARKS.md).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstddef>

#include "batchpole/nn/blas.hpp"
#include "cpu_device.hpp"

namespace batchpole {

namespace {

CBLAS_TRANSPOSE to_cblas(Trans t) { return t == Trans::kNo ? CblasNoTrans : CblasTrans; }

class CpuBlas final : public Blas {
 public:
  // One OpenBLAS thread per call, whichever build is loaded, so that results do not depend on
  // the thread count. The pthreads build (openblas_get_parallel() == 1) would start its own pool
  // inside calls made from OpenMP threads: set to one thread, process-wide. The OpenMP build
  // (2) takes its thread count from the caller's OpenMP setting, so calls made outside a
  // parallel region (a device with one thread) would be threaded and sum differently: each
  // call runs with the caller's OpenMP thread count at one (see one_thread).
  explicit CpuBlas(Device& device) : Blas(device), openmp_build_(openblas_get_parallel() == 2) {
    if (openblas_get_parallel() == 1) openblas_set_num_threads(1);
  }

  [[nodiscard]] std::string description() const override { return "OpenBLAS (CBLAS)"; }

 protected:
  void do_gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* a, int lda,
               const float* b, int ldb, float beta, float* c, int ldc) override {
    if (beta == 0.0f) {
      // OpenBLAS clears C for beta = 0 in a slow scalar loop (BENCHMARKS.md); a vectorised
      // clear and beta = 1 (for which OpenBLAS leaves C alone before adding) does the same
      // arithmetic.
      if (ldc == n) {
        std::fill_n(c, static_cast<std::ptrdiff_t>(m) * n, 0.0f);
      } else {
        for (int r = 0; r < m; ++r) std::fill_n(c + static_cast<std::ptrdiff_t>(r) * ldc, n, 0.0f);
      }
      beta = 1.0f;
    }
    one_thread([&] {
      cblas_sgemm(CblasRowMajor, to_cblas(ta), to_cblas(tb), m, n, k, alpha, a, lda, b, ldb, beta,
                  c, ldc);
    });
  }
  void do_gemm_strided_batched(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* a,
                               int lda, int64_t stride_a, const float* b, int ldb, int64_t stride_b,
                               float beta, float* c, int ldc, int64_t stride_c,
                               int batch) override {
    one_thread([&] {
      for (int i = 0; i < batch; ++i) {
        cblas_sgemm(CblasRowMajor, to_cblas(ta), to_cblas(tb), m, n, k, alpha, a + i * stride_a,
                    lda, b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
      }
    });
  }
  void do_gemv(Trans t, int m, int n, float alpha, const float* a, int lda, const float* x,
               int incx, float beta, float* y, int incy) override {
    one_thread([&] {
      cblas_sgemv(CblasRowMajor, to_cblas(t), m, n, alpha, a, lda, x, incx, beta, y, incy);
    });
  }
  void do_axpy(int n, float alpha, const float* x, int incx, float* y, int incy) override {
    one_thread([&] { cblas_saxpy(n, alpha, x, incx, y, incy); });
  }
  void do_scal(int n, float alpha, float* x, int incx) override {
    one_thread([&] { cblas_sscal(n, alpha, x, incx); });
  }
  void do_dot(int n, const float* x, int incx, const float* y, int incy, float* result) override {
    one_thread([&] { *result = cblas_sdot(n, x, incx, y, incy); });
  }
  void do_nrm2(int n, const float* x, int incx, float* result) override {
    one_thread([&] { *result = cblas_snrm2(n, x, incx); });
  }

 private:
  template <class F>
  void one_thread(F f) const {
    if (!openmp_build_) {
      f();
      return;
    }
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    f();
    omp_set_num_threads(saved);
  }

  bool openmp_build_;
};

}  // namespace

std::unique_ptr<Blas> make_cpu_blas(Device& device) { return std::make_unique<CpuBlas>(device); }

float cpu_nrm2(int n, const float* x) {
  // As CpuBlas::do_nrm2 (the same single-threaded call), for operations that take norms inside
  // themselves.
  if (openblas_get_parallel() != 2) return cblas_snrm2(n, x, 1);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const float r = cblas_snrm2(n, x, 1);
  omp_set_num_threads(saved);
  return r;
}

}  // namespace batchpole
