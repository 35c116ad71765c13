// The Blas interface against a naive float64 reference, on each device (the CUDA instance
// checks the row-major to cuBLAS mapping), and its shape checks.
#include <cmath>
#include <random>

#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/blas.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

std::vector<float> random_vec(std::size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

Buffer<float> upload(Device& b, const std::vector<float>& v) {
  Buffer<float> buf(b, v.size());
  buf.from_host(v);
  return buf;
}

// Row-major element (r, c) of op(M) where M is stored with row stride ld.
double at(const std::vector<float>& m, int64_t ld, Trans t, int64_t r, int64_t c) {
  return t == Trans::kNo ? m[r * ld + c] : m[c * ld + r];
}

class BlasTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BlasTest, GemmAllTransposesWithPaddedLeadingDimensions) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  Blas* blas = &device->blas();
  const int64_t m = 37, n = 19, k = 23;
  for (const Trans ta : {Trans::kNo, Trans::kYes}) {
    for (const Trans tb : {Trans::kNo, Trans::kYes}) {
      // Stored shapes plus 3 columns of padding, to catch swapped leading dimensions.
      const int64_t a_rows = ta == Trans::kNo ? m : k, a_cols = ta == Trans::kNo ? k : m;
      const int64_t b_rows = tb == Trans::kNo ? k : n, b_cols = tb == Trans::kNo ? n : k;
      const int64_t lda = a_cols + 3, ldb = b_cols + 3, ldc = n + 3;
      const auto ha = random_vec(static_cast<std::size_t>(a_rows * lda), 1);
      const auto hb = random_vec(static_cast<std::size_t>(b_rows * ldb), 2);
      const auto hc = random_vec(static_cast<std::size_t>(m * ldc), 3);
      auto a = upload(*device, ha);
      auto b = upload(*device, hb);
      auto c = upload(*device, hc);
      const float alpha = 0.75f, beta = -0.5f;
      blas->gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
      const auto out = c.to_host();
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < ldc; ++j) {
          double want = hc[i * ldc + j];  // padding must be left alone
          if (j < n) {
            double s = 0;
            for (int64_t p = 0; p < k; ++p) s += at(ha, lda, ta, i, p) * at(hb, ldb, tb, p, j);
            want = alpha * s + beta * hc[i * ldc + j];
          }
          ASSERT_NEAR(out[i * ldc + j], want, 1e-4)
              << "op " << static_cast<int>(ta) << static_cast<int>(tb) << " at " << i << "," << j;
        }
      }
    }
  }
}

TEST_P(BlasTest, StridedBatchedGemmMatchesSeparateProducts) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  Blas* blas = &device->blas();
  const int64_t m = 5, n = 7, k = 3, batch = 4;
  const int64_t sa = m * k + 2, sb = n * k + 1, sc = m * n + 5;
  const auto ha = random_vec(static_cast<std::size_t>(sa * batch), 4);
  const auto hb = random_vec(static_cast<std::size_t>(sb * batch), 5);
  auto a = upload(*device, ha);
  auto b = upload(*device, hb);
  Buffer<float> c(*device, static_cast<std::size_t>(sc * batch));
  c.zero();
  // A^T stored k x m, B stored k x n: C_i = A_i B_i (with A_i = stored^T).
  blas->gemm_strided_batched(Trans::kYes, Trans::kNo, m, n, k, 1.0f, a.data(), m, sa, b.data(), n,
                             sb, 0.0f, c.data(), n, sc, batch);
  const auto out = c.to_host();
  for (int64_t q = 0; q < batch; ++q) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += ha[q * sa + p * m + i] * hb[q * sb + p * n + j];
        ASSERT_NEAR(out[q * sc + i * n + j], s, 1e-5) << "batch " << q;
      }
    }
  }
}

TEST_P(BlasTest, GemvBothWaysAndLevelOne) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  Blas* blas = &device->blas();
  const int64_t m = 300, n = 7, lda = 9;
  const auto ha = random_vec(static_cast<std::size_t>(m * lda), 6);
  const auto hx = random_vec(static_cast<std::size_t>(m), 7);
  const auto hy = random_vec(static_cast<std::size_t>(m), 8);
  auto a = upload(*device, ha);
  auto x = upload(*device, hx);
  auto y = upload(*device, hy);
  // y(n) = 2 A^T x + 1 y (the bias-gradient shape: a column sum over rows).
  Buffer<float> yn(*device, static_cast<std::size_t>(n));
  yn.from_host(std::vector<float>(hy.begin(), hy.begin() + n));
  blas->gemv(Trans::kYes, m, n, 2.0f, a.data(), lda, x.data(), 1, 1.0f, yn.data(), 1);
  auto out = yn.to_host();
  for (int64_t j = 0; j < n; ++j) {
    double s = 0;
    for (int64_t i = 0; i < m; ++i) s += ha[i * lda + j] * hx[i];
    EXPECT_NEAR(out[j], 2 * s + hy[j], 1e-4);
  }
  // y(m) = A x(n), the other way, with stride 2 on x.
  blas->gemv(Trans::kNo, m, n, 1.0f, a.data(), lda, x.data(), 2, 0.0f, y.data(), 1);
  out = y.to_host();
  for (int64_t i = 0; i < m; ++i) {
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += ha[i * lda + j] * hx[2 * j];
    EXPECT_NEAR(out[i], s, 1e-5);
  }

  // Level 1, results of dot and nrm2 in device memory.
  auto x2 = upload(*device, hx);
  auto y2 = upload(*device, hy);
  blas->axpy(m, -1.5f, x2.data(), 1, y2.data(), 1);
  blas->scal(m, 2.0f, x2.data(), 1);
  Buffer<float> res(*device, 2);
  blas->dot(m, x2.data(), 1, y2.data(), 1, res.data());
  blas->nrm2(m, y2.data(), 1, res.data() + 1);
  const auto hx2 = x2.to_host();
  const auto hy2 = y2.to_host();
  double dot = 0, sq = 0;
  for (int64_t i = 0; i < m; ++i) {
    EXPECT_NEAR(hy2[i], hy[i] - 1.5 * hx[i], 1e-6);
    EXPECT_NEAR(hx2[i], 2.0 * hx[i], 1e-6);
    dot += (2.0 * hx[i]) * (hy[i] - 1.5 * hx[i]);
    sq += (hy[i] - 1.5 * hx[i]) * (hy[i] - 1.5 * hx[i]);
  }
  const auto r = res.to_host();
  EXPECT_NEAR(r[0], dot, 1e-4 * std::abs(dot) + 1e-5);
  EXPECT_NEAR(r[1], std::sqrt(sq), 1e-5 * std::sqrt(sq));
}

INSTANTIATE_TEST_SUITE_P(Devices, BlasTest, ::testing::ValuesIn(test::devices()));

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "no batchpole::Error thrown";
  return "";
}

TEST(BlasShapes, BadLeadingDimensionsAndSizesNameTheShapes) {
  auto device = make_device({DeviceRequest::parse("cpu")});
  Blas* blas = &device->blas();
  Buffer<float> a(*device, 64), b(*device, 64), c(*device, 64);
  // A is 4 x 3 (m x k) but lda = 2.
  std::string msg = error_of([&] {
    blas->gemm(Trans::kNo, Trans::kNo, 4, 5, 3, 1.0f, a.data(), 2, b.data(), 5, 0.0f, c.data(), 5);
  });
  EXPECT_NE(msg.find("leading dimension of A is 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("4 x 3"), std::string::npos) << msg;
  // Transposed B is stored n x k = 5 x 3; ldb = 2 is too small.
  msg = error_of([&] {
    blas->gemm(Trans::kNo, Trans::kYes, 4, 5, 3, 1.0f, a.data(), 3, b.data(), 2, 0.0f, c.data(), 5);
  });
  EXPECT_NE(msg.find("5 x 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gemm(NT, m = 4, n = 5, k = 3)"), std::string::npos) << msg;
  msg = error_of([&] {
    blas->gemm(Trans::kNo, Trans::kNo, -1, 5, 3, 1.0f, a.data(), 3, b.data(), 5, 0.0f, c.data(), 5);
  });
  EXPECT_NE(msg.find("m = -1"), std::string::npos) << msg;
  msg = error_of(
      [&] { blas->gemv(Trans::kNo, 4, 6, 1.0f, a.data(), 5, b.data(), 1, 0.0f, c.data(), 1); });
  EXPECT_NE(msg.find("4 x 6"), std::string::npos) << msg;
  msg = error_of([&] { blas->nrm2(4, a.data(), 0, c.data()); });
  EXPECT_NE(msg.find("increment"), std::string::npos) << msg;
  msg = error_of([&] {
    blas->gemm(Trans::kNo, Trans::kNo, 4, 5, 3, 1.0f, nullptr, 3, b.data(), 5, 0.0f, c.data(), 5);
  });
  EXPECT_NE(msg.find("null"), std::string::npos) << msg;
  // Empty products are no-ops, not errors.
  EXPECT_NO_THROW(blas->gemm(Trans::kNo, Trans::kNo, 0, 5, 3, 1.0f, a.data(), 3, b.data(), 5, 0.0f,
                             c.data(), 5));
}

}  // namespace
}  // namespace batchpole
