// Blas with cuBLAS, bound to the device's stream. cuBLAS is column-major; the interface is
// row-major. The mapping, derived once for all the calls below:
//
//   A row-major m x k matrix with row stride lda occupies memory exactly as the column-major
//   k x m matrix A^T with leading dimension lda. So a row-major C = op(A) op(B) (m x n) is, in
//   cuBLAS's eyes, C^T = op(B)^T op(A)^T (n x m): call cublasSgemm with the operands swapped,
//   the same transpose flags, the dimensions (n, m, k) and the same leading dimensions:
//
//     gemm_rowmajor(ta, tb, m, n, k, A, lda, B, ldb, C, ldc)
//       == cublasSgemm(tb, ta, n, m, k, B, ldb, A, lda, C, ldc)
//
//   For gemv the row-major m x n matrix A is the column-major n x m matrix A^T, so y = A x is
//   cuBLAS's y = (A^T)^T x: the transpose flag flips and the dimensions swap to (n, m).
//
// Pointer mode is host for alpha and beta, device for the results of dot and nrm2 (so they
// never synchronise). Math mode: plain FP32 unless TF32 was asked for.
#include <cublas_v2.h>

#include <memory>

#include "batchpole/nn/blas.hpp"
#include "cuda_check.cuh"
#include "cuda_ops.cuh"

namespace batchpole {

namespace {

cublasOperation_t to_cublas(Trans t) { return t == Trans::kNo ? CUBLAS_OP_N : CUBLAS_OP_T; }
cublasOperation_t flipped(Trans t) { return t == Trans::kNo ? CUBLAS_OP_T : CUBLAS_OP_N; }

class CudaBlas final : public Blas {
 public:
  CudaBlas(Device& device, cudaStream_t stream, bool allow_tf32) : Blas(device), tf32_(allow_tf32) {
    BP_CUBLAS_CHECK(cublasCreate(&handle_));
    BP_CUBLAS_CHECK(cublasSetStream(handle_, stream));
    BP_CUBLAS_CHECK(
        cublasSetMathMode(handle_, tf32_ ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    BP_CUBLAS_CHECK(cublasSetPointerMode(handle_, CUBLAS_POINTER_MODE_HOST));
    // A workspace of its own, so that cuBLAS allocates nothing while an update is captured as a
    // graph and picks the same kernels captured as launched (NVIDIA's advice for graphs; 32 MiB
    // is what it recommends for Hopper).
    BP_CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
    BP_CUBLAS_CHECK(cublasSetWorkspace(handle_, workspace_, kWorkspaceBytes));
  }
  CudaBlas(const CudaBlas&) = delete;
  CudaBlas& operator=(const CudaBlas&) = delete;
  ~CudaBlas() override {
    const cublasStatus_t st = cublasDestroy(handle_);
    if (st != CUBLAS_STATUS_SUCCESS) {
      std::fprintf(stderr, "batchpole: cublasDestroy failed: %s\n", cublasGetStatusString(st));
    }
    BP_CUDA_LOG(cudaFree(workspace_));
  }

  [[nodiscard]] std::string description() const override {
    return tf32_ ? "cuBLAS (TF32 tensor-op math)" : "cuBLAS (FP32 math)";
  }

 protected:
  void do_gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* a, int lda,
               const float* b, int ldb, float beta, float* c, int ldc) override {
    BP_CUBLAS_CHECK(cublasSgemm(handle_, to_cublas(tb), to_cublas(ta), n, m, k, &alpha, b, ldb, a,
                                lda, &beta, c, ldc));
  }
  void do_gemm_strided_batched(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* a,
                               int lda, int64_t stride_a, const float* b, int ldb, int64_t stride_b,
                               float beta, float* c, int ldc, int64_t stride_c,
                               int batch) override {
    BP_CUBLAS_CHECK(cublasSgemmStridedBatched(handle_, to_cublas(tb), to_cublas(ta), n, m, k,
                                              &alpha, b, ldb, stride_b, a, lda, stride_a, &beta, c,
                                              ldc, stride_c, batch));
  }
  void do_gemv(Trans t, int m, int n, float alpha, const float* a, int lda, const float* x,
               int incx, float beta, float* y, int incy) override {
    BP_CUBLAS_CHECK(
        cublasSgemv(handle_, flipped(t), n, m, &alpha, a, lda, x, incx, &beta, y, incy));
  }
  void do_axpy(int n, float alpha, const float* x, int incx, float* y, int incy) override {
    BP_CUBLAS_CHECK(cublasSaxpy(handle_, n, &alpha, x, incx, y, incy));
  }
  void do_scal(int n, float alpha, float* x, int incx) override {
    BP_CUBLAS_CHECK(cublasSscal(handle_, n, &alpha, x, incx));
  }
  void do_dot(int n, const float* x, int incx, const float* y, int incy, float* result) override {
    DevicePointerMode mode(handle_);
    BP_CUBLAS_CHECK(cublasSdot(handle_, n, x, incx, y, incy, result));
  }
  void do_nrm2(int n, const float* x, int incx, float* result) override {
    DevicePointerMode mode(handle_);
    BP_CUBLAS_CHECK(cublasSnrm2(handle_, n, x, incx, result));
  }

 private:
  static constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20U;
  void* workspace_ = nullptr;

  // Results written to device memory for the scope of one call, then back to host scalars.
  class DevicePointerMode {
   public:
    explicit DevicePointerMode(cublasHandle_t h) : h_(h) {
      BP_CUBLAS_CHECK(cublasSetPointerMode(h_, CUBLAS_POINTER_MODE_DEVICE));
    }
    DevicePointerMode(const DevicePointerMode&) = delete;
    DevicePointerMode& operator=(const DevicePointerMode&) = delete;
    ~DevicePointerMode() { (void)cublasSetPointerMode(h_, CUBLAS_POINTER_MODE_HOST); }

   private:
    cublasHandle_t h_;
  };

  cublasHandle_t handle_ = nullptr;
  bool tf32_;
};

}  // namespace

}  // namespace batchpole

namespace batchpole::cuda {

std::unique_ptr<Blas> make_blas(Device& device, cudaStream_t stream, bool allow_tf32) {
  return std::make_unique<CudaBlas>(device, stream, allow_tf32);
}

}  // namespace batchpole::cuda
