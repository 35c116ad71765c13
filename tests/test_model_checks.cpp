// The models' other promises: CPU-vs-GPU parity, recorded activations, clear errors for bad
// shapes, memory reported and refused when too large.
#include "batchpole/run/parity.hpp"
#include "model_fixtures.hpp"

namespace batchpole {
namespace {

using test::DeviceRollout;
using test::error_of;
using test::HostRollout;
using test::random_vec;
using test::small;

// CPU against GPU on the same seed: identical initial parameters (the draw is integer and +-*
// arithmetic), forward outputs and gradients within float rounding of two BLAS libraries,
// sampled actions identical except where a draw falls within rounding of a category boundary,
// one optimiser step within tolerance.
TEST(ModelParity, CpuAndGpuAgree) {
  BP_DEVICE_OR_SKIP(gpu, "cuda");
  auto cpu = make_device({DeviceRequest::parse("cpu")});
  for (const Architecture arch : {Architecture::kSeparate, Architecture::kActorCritic}) {
    const ModelConfig c =
        arch == Architecture::kSeparate ? ModelConfig::separate() : ModelConfig::actor_critic();
    ModelOptions o;
    o.seed = 2024;
    o.adam.max_grad_norm = 0.5;
    PolicyValueModel mc(*cpu, c, o), mg(*gpu, c, o);
    ASSERT_EQ(mc.get_parameters(), mg.get_parameters()) << "initial parameters differ";
    const int64_t n = 4096;
    const HostRollout h = HostRollout::make(n, 4, 2, 55, true, true);
    DeviceRollout dc(*cpu, h), dg(*gpu, h);
    Buffer<float> zc(*cpu, n * 2), zg(*gpu, n * 2), vc(*cpu, n), vg(*gpu, n);
    Buffer<int32_t> ac(*cpu, n), ag(*gpu, n);
    mc.act(dc.view.obs, 3, ac.data(), nullptr, vc.data());
    mg.act(dg.view.obs, 3, ag.data(), nullptr, vg.data());
    mc.logits(dc.view.obs, zc.data());
    mg.logits(dg.view.obs, zg.data());
    const auto hzc = zc.to_host(), hzg = zg.to_host(), hvc = vc.to_host(), hvg = vg.to_host();
    for (std::size_t i = 0; i < hzc.size(); ++i)
      ASSERT_NEAR(hzg[i], hzc[i], ParityTolerance::kForward * (1 + std::abs(hzc[i])));
    for (std::size_t i = 0; i < hvc.size(); ++i)
      ASSERT_NEAR(hvg[i], hvc[i], ParityTolerance::kForward * (1 + std::abs(hvc[i])));
    const auto hac = ac.to_host(), hag = ag.to_host();
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i) differ += hac[i] != hag[i] ? 1 : 0;
    EXPECT_LE(differ, ParityTolerance::kActionsDiffering)
        << "sampled actions differ in " << differ << " of " << n << " envs";

    mc.accumulate_gradients(dc.view, {0.01f, 0.5f});
    mg.accumulate_gradients(dg.view, {0.01f, 0.5f});
    const auto gc = mc.get_gradients(), gg = mg.get_gradients();
    double scale = 0;
    for (const float v : gc) scale = std::max(scale, static_cast<double>(std::abs(v)));
    for (std::size_t i = 0; i < gc.size(); ++i)
      ASSERT_NEAR(gg[i], gc[i], ParityTolerance::kGradient * scale) << i;
    mc.step();
    mg.step();
    const auto pc = mc.get_parameters(), pg = mg.get_parameters();
    // Adam moves each parameter by about lr; where a gradient is near zero its direction is
    // rounding, so allow lr-sized differences only there (counted) and tight agreement elsewhere.
    int64_t loose = 0;
    for (std::size_t i = 0; i < pc.size(); ++i) {
      const double diff = std::abs(static_cast<double>(pg[i]) - pc[i]);
      if (diff > ParityTolerance::kStep) ++loose;
      ASSERT_LE(diff, ParityTolerance::kStepMaxLrs * o.adam.lr) << i;
    }
    EXPECT_LE(static_cast<double>(loose),
              ParityTolerance::kStepLooseFraction * static_cast<double>(pc.size()))
        << "parameters off after one step";
    const UpdateStats sc = mc.stats(), sg = mg.stats();
    EXPECT_NEAR(sg.policy_loss, sc.policy_loss,
                ParityTolerance::kLoss * (1 + std::abs(sc.policy_loss)));
    EXPECT_NEAR(sg.value_loss, sc.value_loss,
                ParityTolerance::kLoss * (1 + std::abs(sc.value_loss)));
    EXPECT_NEAR(sg.grad_norm, sc.grad_norm, ParityTolerance::kLoss * sc.grad_norm);
  }
}

// Recording: act() in three calls keeps every layer's output, and accumulate_gradients on the
// recorded rollout (no forward pass) gives the gradients and statistics of the plain one;
// misuse (parameters changed, rows not recorded, values not recorded, gaps) is refused.
class RecordTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RecordTest, RecordedActivationsGiveTheSameGradients) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  for (const Architecture arch : {Architecture::kSeparate, Architecture::kActorCritic}) {
    const ModelConfig c =
        arch == Architecture::kSeparate ? ModelConfig::separate() : ModelConfig::actor_critic();
    ModelOptions o;
    o.seed = 12;
    o.chunk_rows = 50;  // several chunks per act() and per shard
    const int64_t n = 230;
    const HostRollout h = HostRollout::make(3 * n, 4, 2, 5, true, true);
    DeviceRollout d(*device, h);
    PolicyValueModel plain(*device, c, o), rec(*device, c, o);
    rec.reserve_record(3 * n);
    EXPECT_EQ(rec.memory().record,
              static_cast<std::size_t>(3 * n) * PolicyValueModel::record_bytes_per_row(c));
    Buffer<int32_t> actions(*device, static_cast<std::size_t>(3 * n));
    Buffer<float> values(*device, static_cast<std::size_t>(3 * n));
    for (int64_t t = 0; t < 3; ++t) {
      const ConstMatrix obs{d.view.obs.data + t * n * 4, n, 4};
      rec.act(obs, static_cast<uint64_t>(t), actions.data() + t * n, nullptr, values.data() + t * n,
              t * n);
    }
    RolloutView view = d.view;
    plain.accumulate_gradients(view, {0.01f, 0.5f});
    view.recorded = true;
    rec.accumulate_gradients(view, {0.01f, 0.5f});
    const auto ga = plain.get_gradients();
    const auto gb = rec.get_gradients();
    double scale = 0;
    for (const float v : ga) scale = std::max(scale, static_cast<double>(std::abs(v)));
    ASSERT_GT(scale, 0.0);
    for (std::size_t i = 0; i < ga.size(); ++i) ASSERT_NEAR(gb[i], ga[i], 1e-5 * scale) << i;
    const UpdateStats sa = plain.stats(), sb = rec.stats();
    EXPECT_NEAR(sb.total_loss, sa.total_loss, 1e-5 * (1 + std::abs(sa.total_loss)));
    EXPECT_EQ(sb.valid_samples, sa.valid_samples);

    // More rows than were recorded.
    RolloutView longer = view;
    longer.obs.rows = 3 * n + 1;
    std::string msg = error_of([&] { rec.accumulate_gradients(longer, {0.01f, 0.5f}); });
    EXPECT_NE(msg.find("rows were recorded"), std::string::npos) << msg;
    // After a step the recording is stale.
    rec.step();
    msg = error_of([&] { rec.accumulate_gradients(view, {0.01f, 0.5f}); });
    EXPECT_NE(msg.find("parameters changed"), std::string::npos) << msg;
    // A gap, and a recording beyond the room reserved.
    msg = error_of([&] {
      rec.act({d.view.obs.data, n, 4}, 0, actions.data(), nullptr, nullptr, n);
    });
    EXPECT_NE(msg.find("continues at row"), std::string::npos) << msg;
    rec.act({d.view.obs.data, n, 4}, 0, actions.data(), nullptr, nullptr, 0);  // no values
    msg = error_of([&] {
      rec.act({d.view.obs.data, 3 * n, 4}, 0, actions.data(), nullptr, nullptr, n);
    });
    EXPECT_NE(msg.find("reserve_record"), std::string::npos) << msg;
    // The value loss needs the value network's recorded activations.
    RolloutView first = view;
    first.obs.rows = n;
    msg = error_of([&] { rec.accumulate_gradients(first, {0.01f, 0.5f}); });
    EXPECT_NE(msg.find("without values"), std::string::npos) << msg;
    // Writing the parameters through parameters() makes a recording stale.
    rec.act({d.view.obs.data, n, 4}, 0, actions.data(), nullptr, values.data(), 0);
    rec.accumulate_gradients(first, {0.01f, 0.5f});
    (void)rec.parameters();
    msg = error_of([&] { rec.accumulate_gradients(first, {0.01f, 0.5f}); });
    EXPECT_NE(msg.find("parameters changed"), std::string::npos) << msg;

    // Room without the value network (acting without values, as REINFORCE): smaller, and a
    // policy-only loss runs from it while a value loss is refused even if act() got values.
    PolicyValueModel lean(*device, c, o);
    lean.reserve_record(n, false);
    EXPECT_LT(PolicyValueModel::record_bytes_per_row(c, false),
              PolicyValueModel::record_bytes_per_row(c, true));
    EXPECT_EQ(lean.memory().record,
              static_cast<std::size_t>(n) * PolicyValueModel::record_bytes_per_row(c, false));
    lean.act({d.view.obs.data, n, 4}, 0, actions.data(), nullptr, values.data(), 0);
    msg = error_of([&] { lean.accumulate_gradients(first, {0.01f, 0.5f}); });
    EXPECT_NE(msg.find("without values"), std::string::npos) << msg;
    RolloutView policy_only = first;
    policy_only.value_targets = nullptr;
    lean.accumulate_gradients(policy_only, {0.01f, 0.5f});
    PolicyValueModel again(*device, c, o);
    policy_only.recorded = false;
    again.accumulate_gradients(policy_only, {0.01f, 0.5f});
    const auto gl = lean.get_gradients();
    const auto gp = again.get_gradients();
    double s2 = 0;
    for (const float v : gp) s2 = std::max(s2, static_cast<double>(std::abs(v)));
    ASSERT_GT(s2, 0.0);
    for (std::size_t i = 0; i < gp.size(); ++i) ASSERT_NEAR(gl[i], gp[i], 1e-5 * s2) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, RecordTest, ::testing::ValuesIn(test::devices()));

TEST(ModelShapes, MismatchesAndEmptyBatchesAreClearErrors) {
  auto device = make_device({DeviceRequest::parse("cpu")});
  PolicyValueModel model(*device);
  Buffer<float> obs(*device, 400), out(*device, 400);
  Buffer<int32_t> a(*device, 100);
  std::string msg = error_of([&] { model.act({obs.data(), 10, 3}, 0, a.data()); });
  EXPECT_NE(msg.find("observations are 10 x 3 but the model takes 10 x 4"), std::string::npos)
      << msg;
  msg = error_of([&] { model.act({obs.data(), 0, 4}, 0, a.data()); });
  EXPECT_NE(msg.find("empty batch"), std::string::npos) << msg;
  msg = error_of([&] { model.values({obs.data(), 5, 5}, out.data()); });
  EXPECT_NE(msg.find("5 x 5"), std::string::npos) << msg;
  RolloutView r;
  r.obs = {obs.data(), 0, 4};
  r.actions = a.data();
  r.weights = out.data();
  msg = error_of([&] { model.accumulate_gradients(r, {}); });
  EXPECT_NE(msg.find("empty batch"), std::string::npos) << msg;
  r.obs = {obs.data(), 20, 2};
  msg = error_of([&] { model.accumulate_gradients(r, {}); });
  EXPECT_NE(msg.find("20 x 2"), std::string::npos) << msg;
  r.obs = {obs.data(), 20, 4};
  r.weights = nullptr;
  msg = error_of([&] { model.accumulate_gradients(r, {}); });
  EXPECT_NE(msg.find("needs actions and weights"), std::string::npos) << msg;
  // Out-of-range actions of valid samples are refused on the CPU.
  std::vector<int32_t> bad(20, 0);
  bad[7] = 2;
  Buffer<int32_t> bad_a(*device, 20);
  bad_a.from_host(bad);
  r.actions = bad_a.data();
  r.weights = out.data();
  msg = error_of([&] { model.accumulate_gradients(r, {}); });
  EXPECT_NE(msg.find("action 2 of sample 7"), std::string::npos) << msg;
  msg = error_of([&] { model.set_parameters(std::vector<float>(3)); });
  EXPECT_NE(msg.find("3 values given"), std::string::npos) << msg;

  ModelConfig c = ModelConfig::actor_critic();
  c.num_actions = 0;
  msg = error_of([&] { PolicyValueModel m(*device, c); });
  EXPECT_NE(msg.find("num_actions is 0"), std::string::npos) << msg;
  c = ModelConfig::separate();
  c.shared_hidden = {64};
  msg = error_of([&] { PolicyValueModel m(*device, c); });
  EXPECT_NE(msg.find("share no layer"), std::string::npos) << msg;
}

TEST(ModelMemory, ReportedAndRefusedWhenTooLarge) {
  auto device = make_device({DeviceRequest::parse("cpu")});
  ModelOptions o;
  o.chunk_rows = 1000;
  PolicyValueModel model(*device, ModelConfig::actor_critic(), o);
  const MemoryReport m = model.memory();
  EXPECT_EQ(m.chunk_rows, 1000);
  // Parameters and gradients, and the update's statistics and loss divisor.
  EXPECT_EQ(m.parameters, sizeof(float) * (2 * static_cast<std::size_t>(model.parameter_count()) +
                                           kStatSlots + 1));
  EXPECT_GT(m.workspace, 1000 * 64 * sizeof(float));
  EXPECT_EQ(m.total(), model.bytes());
  const MemoryReport need = PolicyValueModel::memory_required(ModelConfig::actor_critic(), 1000,
                                                              device->threads(), model.shards());
  EXPECT_EQ(need.workspace, m.workspace);
  EXPECT_EQ(need.optimizer, m.optimizer);
  // A chunk whose workspace exceeds free memory is refused before anything is allocated.
  // Hidden width 4096 and 2^23 rows: hundreds of GB, beyond any machine that runs the tests.
  o.chunk_rows = int64_t{1} << 23;
  const ModelConfig wide = ModelConfig::actor_critic(4, 2, 4096);
  ASSERT_GT(PolicyValueModel::memory_required(wide, o.chunk_rows).total(),
            device->available_memory());
  const std::string msg =
      error_of([&] { PolicyValueModel too_big(*device, wide, o); }, Error::Kind::kOutOfMemory);
  EXPECT_NE(msg.find("lower ModelOptions::chunk_rows"), std::string::npos) << msg;
}

}  // namespace
}  // namespace batchpole
