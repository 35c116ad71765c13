// The project's CUDA code on the emulated GPU (tests/emulation), for what the device-
// parameterised tests leave out: the row-major to cuBLAS mapping over every transpose and
// leading-dimension case the library uses, against CBLAS row-major, with deliberately wrong
// mappings that the comparison must catch; empty launches; the reductions and counts at block
// boundaries against the CPU twins; the environment at partial blocks and warps, restarts and
// several invalid actions; a trainer on the GPU path, resumed from a checkpoint.
#include <cblas.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "../../kernels/cuda_check.cuh"
#include "../test_util.hpp"
#include "batchpole/nn/blas.hpp"
#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "batchpole/rl/rl_ops.hpp"
#include "batchpole/rl/trainer.hpp"
#include "batchpole/env/env_ops.hpp"
#include "batchpole/env/vec_env.hpp"

namespace batchpole {
namespace {

using test::random_vec;

std::unique_ptr<Device> cpu_device() { return make_device({DeviceRequest::parse("cpu")}); }

template <class T>
Buffer<T> upload(Device& b, const std::vector<T>& v) {
  Buffer<T> buf(b, v.size());
  buf.from_host(v);
  return buf;
}

cublasOperation_t op(Trans t) { return t == Trans::kNo ? CUBLAS_OP_N : CUBLAS_OP_T; }
cublasOperation_t flip(Trans t) { return t == Trans::kNo ? CUBLAS_OP_T : CUBLAS_OP_N; }
CBLAS_TRANSPOSE cblas_op(Trans t) { return t == Trans::kNo ? CblasNoTrans : CblasTrans; }

// A cuBLAS handle on the backend's stream, for the wrong mappings that call cuBLAS directly.
class Handle {
 public:
  explicit Handle(Device& b) {
    EXPECT_EQ(cublasCreate(&h_), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasSetStream(h_, static_cast<cudaStream_t>(b.native_stream())),
              CUBLAS_STATUS_SUCCESS);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { (void)cublasDestroy(h_); }
  cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_ = nullptr;
};

// Elements of `got` that differ from `want`: within float rounding of a k-term sum where C is
// computed, exactly elsewhere (padding and gaps must be left alone).
int64_t mismatches(const std::vector<float>& got, const std::vector<float>& want,
                   const std::function<bool(std::size_t)>& computed) {
  int64_t bad = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double tol = computed(i) ? 1e-4 + 1e-5 * std::abs(want[i]) : 0.0;
    if (!(std::abs(static_cast<double>(got[i]) - want[i]) <= tol)) ++bad;
  }
  return bad;
}

// ---- gemm ---------------------------------------------------------------------------------------

struct GemmCase {
  const char* what;
  Trans ta, tb;
  int m, n, k, lda, ldb, ldc;
  float alpha, beta;
};

// The calls of host/nn/mlp.cpp for a layer of 6 inputs and 5 outputs over 37 rows, then every
// transpose pair with padded leading dimensions, and an empty inner dimension.
std::vector<GemmCase> gemm_cases() {
  const Trans N = Trans::kNo, T = Trans::kYes;
  return {
      {"forward Y = X W^T", N, T, 37, 5, 6, 6, 6, 5, 1.0f, 0.0f},
      {"weight gradient dW = delta^T X", T, N, 5, 6, 37, 5, 6, 6, 1.0f, 0.0f},
      {"weight gradient accumulated", T, N, 5, 6, 37, 5, 6, 6, 1.0f, 1.0f},
      {"input gradient dX = delta W", N, N, 37, 6, 5, 5, 6, 6, 1.0f, 0.0f},
      {"input gradient accumulated", N, N, 37, 6, 5, 5, 6, 6, 1.0f, 1.0f},
      {"NN padded", N, N, 11, 7, 9, 12, 10, 13, 0.75f, -0.5f},
      {"NT padded", N, T, 11, 7, 9, 12, 12, 10, 0.75f, -0.5f},
      {"TN padded", T, N, 11, 7, 9, 14, 10, 10, 0.75f, -0.5f},
      {"TT padded", T, T, 11, 7, 9, 14, 12, 10, 0.75f, -0.5f},
      {"k = 0 scales C", N, T, 4, 3, 0, 1, 1, 5, 1.0f, 0.5f},
      // Square, the same leading dimensions: most wrong mappings pass every argument and
      // memory check here, and only the numbers can show them.
      {"NT square", N, T, 8, 8, 8, 8, 8, 8, 1.0f, 0.0f},
      {"TN square", T, N, 8, 8, 8, 8, 8, 8, 1.0f, 0.0f},
  };
}

struct GemmArgs {
  cublasOperation_t ta, tb;
  int m, n;
  const float* a;
  int lda;
  const float* b;
  int ldb;
  bool operator==(const GemmArgs& o) const {
    return ta == o.ta && tb == o.tb && m == o.m && n == o.n && a == o.a && lda == o.lda &&
           b == o.b && ldb == o.ldb;
  }
};

// A row-major gemm expressed as a cuBLAS call: the library's mapping (kernels/cublas_blas.cu)
// and wrong ones a refactoring could plausibly produce.
using GemmMapping = std::function<GemmArgs(const GemmCase&, const float* a, const float* b)>;

GemmArgs right_mapping(const GemmCase& g, const float* a, const float* b) {
  return {op(g.tb), op(g.ta), g.n, g.m, b, g.ldb, a, g.lda};
}

struct WrongMapping {
  const char* name;
  GemmMapping mapping;
  // Whether some case passes every check so that only the numbers can show it (a swapped
  // leading dimension never does: it reads past an operand or changes nothing).
  bool numbers_must_show = true;
};

const std::vector<WrongMapping>& wrong_gemm_mappings() {
  static const std::vector<WrongMapping> v = {
      {"operands not swapped",
       [](const GemmCase& g, const float* a, const float* b) {
         return GemmArgs{op(g.ta), op(g.tb), g.m, g.n, a, g.lda, b, g.ldb};
       }},
      {"transpose flags not swapped",
       [](const GemmCase& g, const float* a, const float* b) {
         return GemmArgs{op(g.ta), op(g.tb), g.n, g.m, b, g.ldb, a, g.lda};
       }},
      {"m and n not swapped",
       [](const GemmCase& g, const float* a, const float* b) {
         return GemmArgs{op(g.tb), op(g.ta), g.m, g.n, b, g.ldb, a, g.lda};
       }},
      {"transposes flipped (the gemv rule)",
       [](const GemmCase& g, const float* a, const float* b) {
         return GemmArgs{flip(g.tb), flip(g.ta), g.n, g.m, b, g.ldb, a, g.lda};
       }},
      {"leading dimensions left with their operands' old places",
       [](const GemmCase& g, const float* a, const float* b) {
         return GemmArgs{op(g.tb), op(g.ta), g.n, g.m, b, g.lda, a, g.ldb};
       },
       false},
  };
  return v;
}

// Runs one case on device copies of fixed random operands, through `run` (which returns false
// on an error), and counts the elements of the whole C buffer that differ from CBLAS row-major;
// -1 when `run` failed.
int64_t gemm_mismatches(Device& gpu, const GemmCase& g,
                        const std::function<bool(const float*, const float*, float*)>& run) {
  const int a_rows = g.ta == Trans::kNo ? g.m : g.k;
  const int b_rows = g.tb == Trans::kNo ? g.k : g.n;
  // Exactly the stored rows: a read past the last one leaves the allocation.
  const auto ha = random_vec(static_cast<std::size_t>(std::max(a_rows, 1) * g.lda), 11);
  const auto hb = random_vec(static_cast<std::size_t>(std::max(b_rows, 1) * g.ldb), 12);
  const auto hc = random_vec(static_cast<std::size_t>(g.m * g.ldc), 13);
  std::vector<float> want = hc;
  cblas_sgemm(CblasRowMajor, cblas_op(g.ta), cblas_op(g.tb), g.m, g.n, g.k, g.alpha, ha.data(),
              g.lda, hb.data(), g.ldb, g.beta, want.data(), g.ldc);
  auto a = upload(gpu, ha);
  auto b = upload(gpu, hb);
  auto c = upload(gpu, hc);
  if (!run(a.data(), b.data(), c.data())) return -1;
  const int ldc = g.ldc;
  const int n = g.n;
  return mismatches(c.to_host(), want,
                    [ldc, n](std::size_t i) { return static_cast<int>(i % ldc) < n; });
}

TEST(EmulatedCublas, RowMajorGemmMappingMatchesCblasAndWrongMappingsAreCaught) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto* blas = &gpu->blas();
  Handle h(*gpu);
  // Per wrong mapping: cases caught by the numbers, and by an argument or memory check.
  std::vector<int> by_numbers(wrong_gemm_mappings().size(), 0);
  std::vector<int> by_checks(wrong_gemm_mappings().size(), 0);
  for (const GemmCase& g : gemm_cases()) {
    SCOPED_TRACE(g.what);
    // The library's wrapper, through the Blas interface.
    EXPECT_EQ(gemm_mismatches(*gpu, g,
                              [&](const float* a, const float* b, float* c) {
                                blas->gemm(g.ta, g.tb, g.m, g.n, g.k, g.alpha, a, g.lda, b, g.ldb,
                                           g.beta, c, g.ldc);
                                return true;
                              }),
              0);
    for (std::size_t w = 0; w < wrong_gemm_mappings().size(); ++w) {
      const std::string name = wrong_gemm_mappings()[w].name;
      const GemmMapping& mapping = wrong_gemm_mappings()[w].mapping;
      const float* tag_a = reinterpret_cast<const float*>(0x1000);
      const float* tag_b = reinterpret_cast<const float*>(0x2000);
      if (mapping(g, tag_a, tag_b) == right_mapping(g, tag_a, tag_b)) continue;  // same call
      const int64_t bad = gemm_mismatches(*gpu, g, [&](const float* a, const float* b, float* c) {
        const GemmArgs x = mapping(g, a, b);
        return cublasSgemm(h.get(), x.ta, x.tb, x.m, x.n, g.k, &g.alpha, x.a, x.lda, x.b, x.ldb,
                           &g.beta, c, g.ldc) == CUBLAS_STATUS_SUCCESS;
      });
      EXPECT_NE(bad, 0) << "the wrong mapping '" << name << "' went unnoticed";
      by_numbers[w] += bad > 0 ? 1 : 0;
      by_checks[w] += bad < 0 ? 1 : 0;
    }
  }
  for (std::size_t w = 0; w < by_numbers.size(); ++w) {
    const WrongMapping& m = wrong_gemm_mappings()[w];
    EXPECT_GT(by_numbers[w] + by_checks[w], 0) << m.name << " was never tried";
    if (m.numbers_must_show) {
      EXPECT_GT(by_numbers[w], 0) << m.name << ": the comparison itself never caught it";
    }
    std::printf("wrong mapping '%s': %d cases caught by the numbers, %d by checks\n", m.name,
                by_numbers[w], by_checks[w]);
  }
}

// ---- gemv and strided batches ------------------------------------------------------------------

struct GemvCase {
  const char* what;
  Trans t;
  int m, n, lda, incx, incy;
  float alpha, beta;
};

TEST(EmulatedCublas, RowMajorGemvMappingMatchesCblasAndWrongMappingsAreCaught) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto* blas = &gpu->blas();
  Handle h(*gpu);
  const Trans N = Trans::kNo, T = Trans::kYes;
  // The bias gradient and statistics sums of host/nn/mlp.cpp and host/nn/model_passes.cpp (a column
  // sum of a rows x cols matrix, overwritten or accumulated), then strided and padded cases.
  const std::vector<GemvCase> cases = {
      {"bias gradient db = delta^T 1", T, 37, 5, 5, 1, 1, 1.0f, 0.0f},
      {"bias gradient accumulated", T, 37, 5, 5, 1, 1, 1.0f, 1.0f},
      {"T padded, strided", T, 13, 6, 9, 2, 3, 0.5f, -1.0f},
      {"N padded, strided", N, 13, 6, 9, 2, 3, 0.5f, -1.0f},
      // Square and unpadded: a wrong mapping passes every argument check here, and only the
      // numbers can show it.
      {"T square", T, 6, 6, 6, 1, 1, 1.0f, 0.0f},
  };
  using Run = std::function<bool(const GemvCase&, const float*, const float*, float*)>;
  const std::vector<std::pair<const char*, Run>> runs = {
      {"the library's",
       [&](const GemvCase& g, const float* a, const float* x, float* y) {
         blas->gemv(g.t, g.m, g.n, g.alpha, a, g.lda, x, g.incx, g.beta, y, g.incy);
         return true;
       }},
      {"transpose not flipped",
       [&](const GemvCase& g, const float* a, const float* x, float* y) {
         return cublasSgemv(h.get(), op(g.t), g.n, g.m, &g.alpha, a, g.lda, x, g.incx, &g.beta, y,
                            g.incy) == CUBLAS_STATUS_SUCCESS;
       }},
      {"m and n not swapped",
       [&](const GemvCase& g, const float* a, const float* x, float* y) {
         return cublasSgemv(h.get(), flip(g.t), g.m, g.n, &g.alpha, a, g.lda, x, g.incx, &g.beta, y,
                            g.incy) == CUBLAS_STATUS_SUCCESS;
       }},
  };
  for (const GemvCase& g : cases) {
    SCOPED_TRACE(g.what);
    const int len_x = g.t == N ? g.n : g.m;
    const int len_y = g.t == N ? g.m : g.n;
    const auto ha = random_vec(static_cast<std::size_t>(g.m * g.lda), 21);
    const auto hx = random_vec(static_cast<std::size_t>((len_x - 1) * g.incx + 1), 22);
    const auto hy = random_vec(static_cast<std::size_t>((len_y - 1) * g.incy + 1), 23);
    std::vector<float> want = hy;
    cblas_sgemv(CblasRowMajor, cblas_op(g.t), g.m, g.n, g.alpha, ha.data(), g.lda, hx.data(),
                g.incx, g.beta, want.data(), g.incy);
    for (std::size_t r = 0; r < runs.size(); ++r) {
      if (r == 2 && g.m == g.n) continue;  // the same call as the library's
      auto a = upload(*gpu, ha);
      auto x = upload(*gpu, hx);
      auto y = upload(*gpu, hy);
      const bool ok = runs[r].second(g, a.data(), x.data(), y.data());
      const int incy = g.incy;
      const int64_t bad =
          ok ? mismatches(y.to_host(), want,
                          [incy](std::size_t i) { return static_cast<int>(i) % incy == 0; })
             : -1;
      if (r == 0) {
        EXPECT_EQ(bad, 0);
      } else {
        EXPECT_NE(bad, 0) << "the wrong mapping '" << runs[r].first << "' went unnoticed";
      }
    }
  }
}

TEST(EmulatedCublas, StridedBatchedMappingMatchesCblasAndSwappedStridesAreCaught) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto* blas = &gpu->blas();
  Handle h(*gpu);
  const int m = 5, n = 7, k = 3, batch = 4;
  for (const Trans ta : {Trans::kNo, Trans::kYes}) {
    for (const Trans tb : {Trans::kNo, Trans::kYes}) {
      const int lda = (ta == Trans::kNo ? k : m) + 1;
      const int ldb = (tb == Trans::kNo ? n : k) + 2;
      const int ldc = n + 1;
      const int a_rows = ta == Trans::kNo ? m : k;
      const int b_rows = tb == Trans::kNo ? k : n;
      const int64_t sa = a_rows * lda + 3, sb = b_rows * ldb + 1, sc = m * ldc + 2;
      const auto ha = random_vec(static_cast<std::size_t>(sa * batch), 31);
      const auto hb = random_vec(static_cast<std::size_t>(sb * batch), 32);
      const auto hc = random_vec(static_cast<std::size_t>(sc * batch), 33);
      std::vector<float> want = hc;
      for (int q = 0; q < batch; ++q) {
        cblas_sgemm(CblasRowMajor, cblas_op(ta), cblas_op(tb), m, n, k, 1.5f, ha.data() + q * sa,
                    lda, hb.data() + q * sb, ldb, 0.25f, want.data() + q * sc, ldc);
      }
      const auto computed = [&](std::size_t i) {
        const auto in_c = static_cast<int64_t>(i) % sc;
        return in_c < m * ldc && in_c % ldc < n;
      };
      for (const bool right : {true, false}) {
        auto a = upload(*gpu, ha);
        auto b = upload(*gpu, hb);
        auto c = upload(*gpu, hc);
        bool ok = true;
        if (right) {
          blas->gemm_strided_batched(ta, tb, m, n, k, 1.5f, a.data(), lda, sa, b.data(), ldb, sb,
                                     0.25f, c.data(), ldc, sc, batch);
        } else {
          const float alpha = 1.5f, beta = 0.25f;
          ok = cublasSgemmStridedBatched(h.get(), op(tb), op(ta), n, m, k, &alpha, b.data(), ldb,
                                         sa, a.data(), lda, sb, &beta, c.data(), ldc, sc,
                                         batch) == CUBLAS_STATUS_SUCCESS;
        }
        const int64_t bad = ok ? mismatches(c.to_host(), want, computed) : -1;
        if (right) {
          EXPECT_EQ(bad, 0) << static_cast<int>(ta) << static_cast<int>(tb);
        } else {
          EXPECT_NE(bad, 0) << "swapped strides went unnoticed";
        }
      }
    }
  }
}

// ---- Empty launches ----------------------------------------------------------------------------

__global__ void never_kernel(int* out) { out[threadIdx.x] = 1; }

TEST(EmulatedKernels, EmptyLaunchesAreNoOps) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto* nn = &gpu->nn();
  auto* rl = &gpu->rl();
  const auto stream = static_cast<cudaStream_t>(gpu->native_stream());
  Buffer<Moments> moments(*gpu, 1);
  Buffer<EpisodeTally> tally(*gpu, 1);
  Buffer<float> count(*gpu, 1);
  const uint64_t before = cuda_emu::stats().launches;

  // An empty grid is skipped before it reaches the GPU (which would refuse it).
  cuda::launch(never_kernel, 0, cuda::kBlock, stream, static_cast<int*>(nullptr));
  // Environments: nothing to step, no pointer touched.
  const EnvArrays<float> a{};
  const EnvConfig<float> c{};
  gpu->env().reset(c, a, 0);
  gpu->env().restart(c, a, 0);
  gpu->env().step(c, a, 0, nullptr);
  EXPECT_EQ(gpu->env().run_random(c, a, 0, 0, 10), 0U);
  gpu->env().bench_actions(1, 0, 0, nullptr);
  // The trainer's element-wise operations.
  ReturnsArgs ra;
  ra.steps = 5;
  rl->returns(ra);
  rl->first_episode_mask(nullptr, nullptr, 5, 0, nullptr);
  int64_t* no_count = nullptr;
  rl->mark_ended(nullptr, nullptr, nullptr, 0, no_count);
  rl->subtract(nullptr, nullptr, 0, nullptr);
  rl->normalize(nullptr, nullptr, 0, nullptr, 1e-8f);
  // The network's.
  nn->fill(nullptr, 0, 1.0f);
  nn->init_uniform(nullptr, 0, 0.1f, 1, 0);
  nn->bias_activation(nullptr, nullptr, 0, 5, Activation::kRelu);
  nn->bias_activation(nullptr, nullptr, 5, 0, Activation::kTanh);
  nn->activation_backward(nullptr, nullptr, 0, Activation::kTanh);
  nn->sample_actions(nullptr, 0, 2, SampleKey{}, nullptr, nullptr, nullptr);
  nn->log_prob_entropy(nullptr, 0, 2, nullptr, nullptr, nullptr);
  nn->softmax(nullptr, 0, 2, nullptr);
  PolicyLossArgs pl;
  pl.num_actions = 2;
  nn->policy_loss_grad(pl);
  nn->value_loss_grad(ValueLossArgs{});
  nn->adam_step(nullptr, nullptr, nullptr, nullptr, 0, AdamScalars{}, nullptr, 1.0f);
  EXPECT_EQ(cuda_emu::stats().launches, before) << "an empty operation launched a kernel";

  // Reductions and counts over nothing still write their (zero) result: one launch each.
  rl->moments(nullptr, nullptr, 0, moments.data());
  rl->episode_tally(EpisodeRows{}, 0, tally.data());
  nn->count_nonzero(nullptr, 0, count.data());
  EXPECT_EQ(cuda_emu::stats().launches, before + 3);
  const Moments m = moments.to_host()[0];
  EXPECT_EQ(m.count, 0.0);
  EXPECT_EQ(m.sum, 0.0);
  EXPECT_EQ(m.sum_sq, 0.0);
  const EpisodeTally t = tally.to_host()[0];
  const EpisodeTally empty;
  EXPECT_EQ(t.episodes, 0.0);
  EXPECT_EQ(t.return_min, empty.return_min);
  EXPECT_EQ(t.length_max, empty.length_max);
  EXPECT_EQ(count.to_host()[0], 0.0f);
  EXPECT_NO_THROW(gpu->check_errors());
  EXPECT_EQ(cudaPeekAtLastError(), cudaSuccess);
}

// ---- Reductions and counts
// -----------------------------------------------------------------------

// Sizes around the reduction's blocks (4096 elements), the launch's blocks (256 threads) and
// warps (32).
const std::vector<int64_t>& reduction_sizes() {
  static const std::vector<int64_t> v = {1,   31,   32,   33,   255,  256,
                                         257, 4095, 4096, 4097, 8195, 12288 + 17};
  return v;
}

TEST(EmulatedKernels, ReductionsAndCountsMatchTheCpuTwinsAtBlockBoundaries) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto cpu = cpu_device();
  auto* rg = &gpu->rl();
  auto* rc = &cpu->rl();
  auto* ng = &gpu->nn();
  for (const int64_t n : reduction_sizes()) {
    SCOPED_TRACE(n);
    const auto un = static_cast<std::size_t>(n);
    // Quarters: every partial sum is exact, so any order gives the same bits.
    std::vector<float> x(un);
    std::vector<uint8_t> mask(un), term(un), trunc(un);
    std::vector<float> ret(un);
    std::vector<int32_t> len(un);
    int64_t nonzero = 0;
    for (std::size_t i = 0; i < un; ++i) {
      x[i] = static_cast<float>(static_cast<int>(i * 7 % 17) - 8) * 0.25f;
      mask[i] = static_cast<uint8_t>(i % 5 == 3 ? 0 : 1 + i % 3);
      term[i] = static_cast<uint8_t>(i % 7 == 2 ? 1 : 0);
      trunc[i] = static_cast<uint8_t>(i % 11 == 4 ? 1 : 0);
      ret[i] = static_cast<float>(i % 500 + 1);
      len[i] = static_cast<int32_t>(i % 499 + 1);
      nonzero += mask[i] != 0 ? 1 : 0;
    }
    struct Side {
      Buffer<float> x, ret;
      Buffer<uint8_t> mask, term, trunc;
      Buffer<int32_t> len;
      Buffer<Moments> m;
      Buffer<EpisodeTally> t;
    };
    const auto side = [&](Device& b) {
      return Side{
          upload(b, x),     upload(b, ret), upload(b, mask),       upload(b, term),
          upload(b, trunc), upload(b, len), Buffer<Moments>(b, 2), Buffer<EpisodeTally>(b, 2)};
    };
    Side g = side(*gpu), c = side(*cpu);
    for (auto [ops, s] : {std::pair{rg, &g}, std::pair{rc, &c}}) {
      ops->moments(s->x.data(), nullptr, n, s->m.data());
      ops->moments(s->x.data(), s->mask.data(), n, s->m.data() + 1);
      const EpisodeRows rows{s->term.data(), s->trunc.data(), s->ret.data(), s->len.data(),
                             nullptr};
      ops->episode_tally(rows, n, s->t.data());
      EpisodeRows masked = rows;
      masked.mask = s->mask.data();
      ops->episode_tally(masked, n, s->t.data() + 1);
    }
    const auto mg = g.m.to_host(), mc = c.m.to_host();
    for (std::size_t k = 0; k < 2; ++k) {
      EXPECT_EQ(mg[k].count, mc[k].count);
      EXPECT_EQ(mg[k].sum, mc[k].sum);
      EXPECT_EQ(mg[k].sum_sq, mc[k].sum_sq);
    }
    EXPECT_EQ(mg[0].count, static_cast<double>(n));
    EXPECT_EQ(mg[1].count, static_cast<double>(nonzero));
    const auto tg = g.t.to_host(), tc = c.t.to_host();
    for (std::size_t k = 0; k < 2; ++k) {
      EXPECT_EQ(tg[k].episodes, tc[k].episodes);
      EXPECT_EQ(tg[k].return_sum, tc[k].return_sum);
      EXPECT_EQ(tg[k].return_sq, tc[k].return_sq);
      EXPECT_EQ(tg[k].length_sum, tc[k].length_sum);
      EXPECT_EQ(tg[k].return_min, tc[k].return_min);
      EXPECT_EQ(tg[k].return_max, tc[k].return_max);
      EXPECT_EQ(tg[k].length_min, tc[k].length_min);
      EXPECT_EQ(tg[k].length_max, tc[k].length_max);
      EXPECT_EQ(tg[k].truncations, tc[k].truncations);
    }
    Buffer<float> cnt(*gpu, 1);
    ng->count_nonzero(g.mask.data(), n, cnt.data());
    EXPECT_EQ(cnt.to_host()[0], static_cast<float>(nonzero));

    // Inexact data: the two-pass tree gives the same bits every time, and the CPU's sum to
    // rounding.
    const auto r = random_vec(un, 41, -3.0f, 5.0f);
    auto rgb = upload(*gpu, r);
    auto rcb = upload(*cpu, r);
    Buffer<Moments> m1(*gpu, 2), m2(*cpu, 1);
    rg->moments(rgb.data(), nullptr, n, m1.data());
    rg->moments(rgb.data(), nullptr, n, m1.data() + 1);
    rc->moments(rcb.data(), nullptr, n, m2.data());
    const auto h1 = m1.to_host();
    const Moments h2 = m2.to_host()[0];
    EXPECT_EQ(h1[0].sum, h1[1].sum);
    EXPECT_EQ(h1[0].sum_sq, h1[1].sum_sq);
    EXPECT_NEAR(h1[0].sum, h2.sum, 1e-9 * (1 + h2.sum_sq));
    EXPECT_NEAR(h1[0].sum_sq, h2.sum_sq, 1e-9 * (1 + h2.sum_sq));
  }
}

// The trainer's element-wise operations over several blocks, bit for bit with the CPU (the same
// element functions; the device tests elsewhere use a few elements, within one block).
TEST(EmulatedKernels, TrainerOperationsMatchTheCpuTwinsOverSeveralBlocks) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto cpu = cpu_device();
  auto* rg = &gpu->rl();
  auto* rc = &cpu->rl();
  const int64_t steps = 5, envs = 600, n = steps * envs;
  const auto un = static_cast<std::size_t>(n);
  const auto rewards = random_vec(un, 51, 0.0f, 2.0f);
  const auto values = random_vec(un, 52);
  const auto last = random_vec(static_cast<std::size_t>(envs), 53);
  std::vector<uint8_t> term(un), trunc(un), ended(un), mask(un);
  for (std::size_t i = 0; i < un; ++i) {
    term[i] = static_cast<uint8_t>(i * 2654435761U % 23 == 0 ? 1 : 0);
    trunc[i] = static_cast<uint8_t>(i * 40503U % 31 == 0 ? 1 : 0);
    ended[i] = static_cast<uint8_t>(i % 9 == 0 ? 1 : 0);
    mask[i] = static_cast<uint8_t>(i % 4 == 1 ? 0 : 1);
  }
  struct Out {
    std::vector<float> returns, diff, normalized;
    std::vector<uint8_t> first, ended;
  };
  const auto run = [&](Device& b, RlOps& ops) {
    auto r = upload(b, rewards);
    auto te = upload(b, term);
    auto tr = upload(b, trunc);
    auto lv = upload(b, last);
    auto tv = upload(b, values);
    auto v = upload(b, values);
    auto en = upload(b, ended);
    auto mk = upload(b, mask);
    Buffer<float> ret(b, un), diff(b, un);
    Buffer<uint8_t> first(b, un);
    ReturnsArgs a;
    a.rewards = r.data();
    a.terminated = te.data();
    a.truncated = tr.data();
    a.last_value = lv.data();
    a.truncation_value = tv.data();
    a.gamma = 0.97f;
    a.steps = steps;
    a.envs = envs;
    a.returns = ret.data();
    ops.returns(a);
    ops.first_episode_mask(te.data(), tr.data(), steps, envs, first.data());
    auto ended_count = upload(b, std::vector<int64_t>{0});
    ops.mark_ended(en.data(), te.data(), tr.data(), n, ended_count.data());
    ops.subtract(ret.data(), v.data(), n, diff.data());
    // The same moments on both sides (their sums may round differently), so that normalize
    // itself is compared.
    Moments m;
    m.count = 2000;
    m.sum = 1234.5;
    m.sum_sq = 5678.25;
    auto mb = upload(b, std::vector<Moments>{m});
    auto x = upload(b, values);
    ops.normalize(x.data(), mk.data(), n, mb.data(), 1e-8f);
    return Out{ret.to_host(), diff.to_host(), x.to_host(), first.to_host(), en.to_host()};
  };
  const Out g = run(*gpu, *rg);
  const Out c = run(*cpu, *rc);
  EXPECT_EQ(g.returns, c.returns);
  EXPECT_EQ(g.first, c.first);
  EXPECT_EQ(g.ended, c.ended);
  EXPECT_EQ(g.diff, c.diff);
  EXPECT_EQ(g.normalized, c.normalized);
}

// ---- Environments ------------------------------------------------------------------------------

void expect_same_state(const EnvState& a, const EnvState& b) {
  EXPECT_EQ(a.x, b.x);
  EXPECT_EQ(a.x_dot, b.x_dot);
  EXPECT_EQ(a.theta, b.theta);
  EXPECT_EQ(a.theta_dot, b.theta_dot);
  EXPECT_EQ(a.length, b.length);
  EXPECT_EQ(a.ret, b.ret);
  EXPECT_EQ(a.episode, b.episode);
}

// Partial warps and blocks, both precisions: the fused random run (its episode count and
// states), restarts and single steps, bit for bit with the CPU.
TEST(EmulatedKernels, EnvironmentsAtPartialBlocksMatchTheCpuBitForBit) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto cpu = cpu_device();
  for (const Precision p : {Precision::kF32, Precision::kF64}) {
    for (const int64_t n : {int64_t{1}, int64_t{31}, int64_t{257}}) {
      SCOPED_TRACE(to_string(p) + " n = " + std::to_string(n));
      VecEnv ec(*cpu, n, {}, p), eg(*gpu, n, {}, p);
      ec.reset(7);
      eg.reset(7);
      expect_same_state(ec.get_state(), eg.get_state());
      EXPECT_EQ(ec.run_random(700), eg.run_random(700));
      expect_same_state(ec.get_state(), eg.get_state());
      ec.restart_episodes();
      eg.restart_episodes();
      expect_same_state(ec.get_state(), eg.get_state());
      std::vector<int32_t> actions(static_cast<std::size_t>(n));
      for (int s = 0; s < 30; ++s) {
        for (int64_t i = 0; i < n; ++i) {
          actions[static_cast<std::size_t>(i)] =
              bench_action(3, static_cast<uint32_t>(i), ec.steps_taken());
        }
        ec.step_host(actions);
        eg.step_host(actions);
      }
      const HostStep hc = ec.fetch(), hg = eg.fetch();
      EXPECT_EQ(hc.obs, hg.obs);
      EXPECT_EQ(hc.terminated, hg.terminated);
      EXPECT_EQ(hc.final_obs, hg.final_obs);
      expect_same_state(ec.get_state(), eg.get_state());
      // The benchmark's actions on the device are the host function's.
      Buffer<int32_t> da(*gpu, static_cast<std::size_t>(n));
      eg.random_actions(da.data());
      const auto ha = da.to_host();
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(ha[static_cast<std::size_t>(i)],
                  bench_action(eg.seed(), static_cast<uint32_t>(i), eg.steps_taken()));
      }
    }
  }
}

// Several invalid actions: the lowest env is reported with its action (negative ones too), the
// GPU stepped them as action 0 and the rest as asked, and the report is cleared once read.
TEST(EmulatedKernels, InvalidActionsReportTheLowestEnvAndStepAsZero) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto cpu = cpu_device();
  const int64_t n = 300;
  VecEnv ec(*cpu, n), eg(*gpu, n);
  ec.reset(5);
  eg.reset(5);
  std::vector<int32_t> actions(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < actions.size(); ++i) actions[i] = static_cast<int32_t>(i % 2);
  std::vector<int32_t> bad = actions;
  bad[290] = 2;
  bad[260] = -1;
  bad[261] = 7;
  eg.step_host(bad);
  try {
    (void)eg.fetch();
    FAIL() << "invalid actions not reported";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument);
    const std::string what = e.what();
    EXPECT_NE(what.find("invalid action -1 for env 260"), std::string::npos) << what;
  }
  for (const std::size_t i : {290U, 260U, 261U}) actions[i] = 0;
  ec.step_host(actions);
  expect_same_state(ec.get_state(), eg.get_state());
  EXPECT_NO_THROW(gpu->check_errors());
  EXPECT_NO_THROW((void)eg.fetch());
}

// ---- A trainer on the GPU path ----------------------------------------------------------------

std::vector<std::string> trace(Trainer& t, int updates) {
  std::vector<std::string> out;
  for (int i = 0; i < updates; ++i) {
    const UpdateRecord r = t.update();
    EXPECT_TRUE(r.finite) << "update " << r.update;
    char line[256];
    std::snprintf(line, sizeof(line), "%lld %lld %lld %.17g %.17g %.17g",
                  static_cast<long long>(r.update), static_cast<long long>(r.env_steps),
                  static_cast<long long>(r.episodes), r.recent.return_sum, r.loss.policy_loss,
                  r.value_loss);
    out.emplace_back(line);
  }
  return out;
}

// Each algorithm on the GPU path: the first update sees the CPU's rollout (same parameters,
// same draws) and losses within float rounding; a run resumed from a checkpoint continues
// exactly as an uninterrupted one.
TEST(EmulatedKernels, TrainerOnTheGpuPathMatchesTheCpuAndResumesExactly) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto cpu = cpu_device();
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "batchpole_emulated_resume";
  fs::create_directories(dir);
  const std::string ckpt = (dir / "ckpt.bin").string();
  for (const Algorithm a : {Algorithm::kReinforce, Algorithm::kBaseline, Algorithm::kA2C}) {
    SCOPED_TRACE(to_string(a));
    TrainConfig c;
    c.algorithm = a;
    c.envs = 16;
    c.n_steps = 8;
    c.seed = 3;
    c.chunk_rows = 256;  // the GPU default would allocate for 262144 rows
    Trainer tc(*cpu, c), tg(*gpu, c);
    EXPECT_TRUE(tg.reuses_activations());
    const UpdateRecord rc = tc.update(), rg = tg.update();
    EXPECT_EQ(rg.env_steps, rc.env_steps);
    EXPECT_EQ(rg.episodes, rc.episodes);
    EXPECT_EQ(rg.recent.return_sum, rc.recent.return_sum);
    EXPECT_NEAR(rg.loss.policy_loss, rc.loss.policy_loss,
                1e-4 * (1 + std::abs(rc.loss.policy_loss)));
    EXPECT_NEAR(rg.value_loss, rc.value_loss, 1e-4 * (1 + std::abs(rc.value_loss)));
    EXPECT_NEAR(rg.loss.grad_norm, rc.loss.grad_norm, 1e-4 * (1 + rc.loss.grad_norm));

    Trainer straight(*gpu, c);
    const auto want = trace(straight, 4);
    Trainer first(*gpu, c);
    auto got = trace(first, 2);
    first.save_checkpoint(ckpt);
    Trainer second(*gpu, Trainer::read_checkpoint_config(ckpt));
    second.restore_checkpoint(ckpt);
    const auto rest = trace(second, 2);
    got.insert(got.end(), rest.begin(), rest.end());
    EXPECT_EQ(got, want);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace batchpole
