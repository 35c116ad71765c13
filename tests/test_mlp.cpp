// The MLP: forward against the float64 reference, parameter and input gradients against float64
// finite differences for every layer and activation, gradient modes, initialisation, and the
// shape checks.
#include <cmath>
#include <random>

#include "batchpole/nn/mlp.hpp"
#include "nn_reference.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

using test::random_vec;

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Everything one MLP test needs on one device.
struct Fixture {
  Blas* blas;
  NnOps* ops;
  Buffer<float> params, grads;
  std::unique_ptr<Mlp> mlp;
  Fixture(Device& b, const MlpConfig& c, int64_t max_rows, uint64_t seed = 3)
      : blas(&b.blas()), ops(&b.nn()) {
    params = Buffer<float>(b, static_cast<std::size_t>(c.parameter_count()));
    grads = Buffer<float>(b, static_cast<std::size_t>(c.parameter_count()));
    mlp = std::make_unique<Mlp>(b, *blas, *ops, c, max_rows, params.data(), grads.data());
    mlp->init(seed, 0);
  }
};

struct Case {
  const char* name;
  MlpConfig config;
};

std::vector<Case> cases() {
  return {
      {"single linear layer", {{3, 5}, Activation::kRelu, Activation::kIdentity}},
      {"relu 4-8-8-3", {{4, 8, 8, 3}, Activation::kRelu, Activation::kIdentity}},
      {"tanh 5-7-2 tanh out", {{5, 7, 2}, Activation::kTanh, Activation::kTanh}},
      {"relu 4-6 relu out (a trunk)", {{4, 6}, Activation::kRelu, Activation::kRelu}},
      {"tanh 2-9-9-9-1", {{2, 9, 9, 9, 1}, Activation::kTanh, Activation::kIdentity}},
  };
}

class MlpTest : public ::testing::TestWithParam<std::string> {};

// Loss L = sum_ij c_ij y_ij with random c (never zeros): its gradient is backward(d_out = c).
// Compared with central differences of the float64 reference at the same parameters.
TEST_P(MlpTest, GradientsMatchFloat64FiniteDifferences) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const int64_t rows = 13;
  uint32_t seed = 100;
  for (const Case& k : cases()) {
    SCOPED_TRACE(k.name);
    const MlpConfig& c = k.config;
    Fixture f(*device, c, 16);
    const auto hx = random_vec(static_cast<std::size_t>(rows * c.inputs()), ++seed, -2.0f, 2.0f);
    const auto hc = random_vec(static_cast<std::size_t>(rows * c.outputs()), ++seed);
    Buffer<float> x(*device, hx.size()), d_out(*device, hc.size()), d_x(*device, hx.size());
    x.from_host(hx);
    d_out.from_host(hc);
    const ConstMatrix xm{x.data(), rows, c.inputs()};
    const float* y = f.mlp->forward(xm);
    std::vector<float> hy(static_cast<std::size_t>(rows * c.outputs()));
    device->copy_to_host(hy.data(), y, hy.size() * sizeof(float));
    f.mlp->backward(xm, d_out.data(), GradientMode::kOverwrite, d_x.data());

    const auto p = to_double(f.params.to_host());
    const auto xd = to_double(hx);
    const auto want_y = ref::mlp_forward(c, p.data(), xd, rows);
    for (std::size_t i = 0; i < hy.size(); ++i) ASSERT_NEAR(hy[i], want_y[i], 1e-5);

    const auto loss_of_params = [&](const std::vector<double>& pp) {
      const auto yy = ref::mlp_forward(c, pp.data(), xd, rows);
      double s = 0;
      for (std::size_t i = 0; i < yy.size(); ++i) s += hc[i] * yy[i];
      return s;
    };
    const auto loss_of_x = [&](const std::vector<double>& xx) {
      const auto yy = ref::mlp_forward(c, p.data(), xx, rows);
      double s = 0;
      for (std::size_t i = 0; i < yy.size(); ++i) s += hc[i] * yy[i];
      return s;
    };
    std::vector<int64_t> all_p(p.size()), all_x(xd.size());
    for (std::size_t i = 0; i < p.size(); ++i) all_p[i] = static_cast<int64_t>(i);
    for (std::size_t i = 0; i < xd.size(); ++i) all_x[i] = static_cast<int64_t>(i);
    const auto fd_p = ref::finite_difference(loss_of_params, p, all_p);
    const auto fd_x = ref::finite_difference(loss_of_x, xd, all_x);
    const auto g = f.grads.to_host();
    const auto gx = d_x.to_host();
    double scale = 1e-3;
    for (const double v : fd_p) scale = std::max(scale, std::abs(v));
    for (std::size_t i = 0; i < g.size(); ++i) {
      ASSERT_NEAR(g[i], fd_p[i], 1e-4 * scale) << "parameter " << i;
    }
    for (std::size_t i = 0; i < gx.size(); ++i)
      ASSERT_NEAR(gx[i], fd_x[i], 1e-4 * scale) << "x " << i;

    // The reference's own analytic gradient agrees with its finite differences (so the
    // reference used by the model tests is itself checked).
    std::vector<double> g_ref(p.size(), 0.0);
    ref::Tape tape;
    (void)ref::mlp_forward(c, p.data(), xd, rows, &tape);
    (void)ref::mlp_backward(c, p.data(), xd, rows, tape, to_double(hc), g_ref.data());
    for (std::size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g_ref[i], fd_p[i], 1e-6 * scale);
  }
}

TEST_P(MlpTest, GradientModesOverwriteAndAccumulate) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const MlpConfig c{{4, 8, 3}, Activation::kRelu, Activation::kIdentity};
  const int64_t rows = 10;
  Fixture f(*device, c, rows);
  const auto hx = random_vec(static_cast<std::size_t>(rows * 4), 7);
  const auto hc = random_vec(static_cast<std::size_t>(rows * 3), 8);
  Buffer<float> x(*device, hx.size()), d(*device, hc.size()), dx(*device, hx.size());
  x.from_host(hx);
  const ConstMatrix xm{x.data(), rows, 4};
  const auto run = [&](GradientMode pm, GradientMode xm_mode) {
    (void)f.mlp->forward(xm);
    d.from_host(hc);  // backward uses d_out as scratch
    f.mlp->backward(xm, d.data(), pm, dx.data(), xm_mode);
  };
  run(GradientMode::kOverwrite, GradientMode::kOverwrite);
  const auto g1 = f.grads.to_host();
  const auto x1 = dx.to_host();
  run(GradientMode::kAccumulate, GradientMode::kAccumulate);
  const auto g2 = f.grads.to_host();
  const auto x2 = dx.to_host();
  for (std::size_t i = 0; i < g1.size(); ++i)
    EXPECT_NEAR(g2[i], 2 * g1[i], 1e-6 * (1 + std::abs(g1[i])));
  for (std::size_t i = 0; i < x1.size(); ++i)
    EXPECT_NEAR(x2[i], 2 * x1[i], 1e-6 * (1 + std::abs(x1[i])));
  run(GradientMode::kOverwrite, GradientMode::kOverwrite);
  EXPECT_EQ(f.grads.to_host(), g1);
  EXPECT_EQ(dx.to_host(), x1);
}

// Chunks of a batch, accumulated, give the gradient of the whole batch.
TEST_P(MlpTest, ChunkedBackwardEqualsWholeBatch) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const MlpConfig c{{4, 16, 16, 2}, Activation::kTanh, Activation::kIdentity};
  const int64_t rows = 50, chunk = 16;
  Fixture whole(*device, c, rows), part(*device, c, chunk);
  const auto hx = random_vec(static_cast<std::size_t>(rows * 4), 9);
  const auto hc = random_vec(static_cast<std::size_t>(rows * 2), 10);
  Buffer<float> x(*device, hx.size()), d(*device, hc.size());
  x.from_host(hx);
  d.from_host(hc);
  (void)whole.mlp->forward({x.data(), rows, 4});
  whole.mlp->backward({x.data(), rows, 4}, d.data(), GradientMode::kOverwrite);
  d.from_host(hc);
  for (int64_t b = 0; b < rows; b += chunk) {
    const int64_t r = std::min(chunk, rows - b);
    const ConstMatrix xm{x.data() + b * 4, r, 4};
    (void)part.mlp->forward(xm);
    part.mlp->backward(xm, d.data() + b * 2,
                       b == 0 ? GradientMode::kOverwrite : GradientMode::kAccumulate);
  }
  const auto gw = whole.grads.to_host();
  const auto gp = part.grads.to_host();
  for (std::size_t i = 0; i < gw.size(); ++i)
    EXPECT_NEAR(gp[i], gw[i], 1e-5 * (1 + std::abs(gw[i])));
  EXPECT_LT(part.mlp->workspace_bytes(), whole.mlp->workspace_bytes());
  EXPECT_EQ(part.mlp->workspace_bytes(), Mlp::workspace_bytes(c, chunk));
}

TEST_P(MlpTest, InitIsNnLinearDefaultAndSeeded) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  const MlpConfig c{{4, 64, 64, 2}, Activation::kRelu, Activation::kIdentity};
  Fixture a(*device, c, 1, 5), b(*device, c, 1, 5), other(*device, c, 1, 6);
  const auto pa = a.params.to_host();
  EXPECT_EQ(pa, b.params.to_host());
  EXPECT_NE(pa, other.params.to_host());
  for (int32_t l = 0; l < c.layers(); ++l) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(c.sizes[l]));
    double hi = 0;
    const int64_t end = l + 1 < c.layers() ? a.mlp->weight_offset(l + 1) : c.parameter_count();
    for (int64_t i = a.mlp->weight_offset(l); i < end; ++i) {
      ASSERT_LE(std::abs(pa[i]), bound);
      hi = std::max(hi, static_cast<double>(std::abs(pa[i])));
    }
    EXPECT_GT(hi, 0.9 * bound) << "layer " << l << " does not span its range";
    // Bias drawn too (PyTorch's nn.Linear does not zero it).
    EXPECT_NE(pa[a.mlp->bias_offset(l)], 0.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, MlpTest, ::testing::ValuesIn(test::devices()));

template <class F>
std::string invalid_argument(F f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no batchpole::Error thrown";
  return "";
}

TEST(MlpShapes, MismatchesAndEmptyBatchesSayWhichShapes) {
  auto device = make_device({DeviceRequest::parse("cpu")});
  const MlpConfig c{{4, 8, 2}, Activation::kRelu, Activation::kIdentity};
  Fixture f(*device, c, 32);
  Buffer<float> x(*device, 200), d(*device, 200);
  std::string msg = invalid_argument([&] { (void)f.mlp->forward({x.data(), 10, 3}); });
  EXPECT_NE(msg.find("10 x 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("takes 4 columns"), std::string::npos) << msg;
  msg = invalid_argument([&] { (void)f.mlp->forward({x.data(), 0, 4}); });
  EXPECT_NE(msg.find("empty batch"), std::string::npos) << msg;
  msg = invalid_argument([&] { (void)f.mlp->forward({x.data(), 33, 4}); });
  EXPECT_NE(msg.find("33 rows exceed the workspace of 32 rows"), std::string::npos) << msg;
  (void)f.mlp->forward({x.data(), 10, 4});
  msg = invalid_argument([&] {
    f.mlp->backward({x.data(), 12, 4}, d.data(), GradientMode::kOverwrite);
  });
  EXPECT_NE(msg.find("12 x 4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("10 rows"), std::string::npos) << msg;
  msg = invalid_argument([&] {
    MlpConfig{{4}, Activation::kRelu, Activation::kIdentity}.validate();
  });
  EXPECT_NE(msg.find("at least an input and an output"), std::string::npos) << msg;
  msg = invalid_argument([&] {
    MlpConfig{{4, 0, 2}, Activation::kRelu, Activation::kIdentity}.validate();
  });
  EXPECT_NE(msg.find("size 1 is 0"), std::string::npos) << msg;
}

}  // namespace
}  // namespace batchpole
