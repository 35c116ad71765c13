// The trainers' batched operations against values worked out by hand, on every device.
#include <cmath>

#include "batchpole/device/buffer.hpp"
#include "batchpole/rl/rl_ops.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

class RlOpsTest : public ::testing::TestWithParam<std::string> {};

template <class T>
Buffer<T> upload(Device& b, const std::vector<T>& v) {
  Buffer<T> buf(b, v.size());
  buf.from_host(v);
  return buf;
}

TEST_P(RlOpsTest, ReturnsBootstrapOnTruncationNotOnTermination) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  RlOps* ops = &device->rl();
  // T = 4 steps of N = 3 envs, time-major. Env 0 terminates at t=1; env 1 is truncated at t=2;
  // env 2 runs on and bootstraps from V(s_T) = 10.
  const std::vector<float> rewards = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const std::vector<uint8_t> term = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  const std::vector<uint8_t> trunc = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
  const std::vector<float> last = {2, 3, 10};
  std::vector<float> trunc_value(12, 0.0F);
  trunc_value[7] = 5;
  auto r = upload(*device, rewards);
  auto te = upload(*device, term);
  auto tr = upload(*device, trunc);
  auto lv = upload(*device, last);
  auto tv = upload(*device, trunc_value);
  Buffer<float> out(*device, 12);
  ReturnsArgs a;
  a.rewards = r.data();
  a.terminated = te.data();
  a.truncated = tr.data();
  a.last_value = lv.data();
  a.truncation_value = tv.data();
  a.gamma = 0.5F;
  a.steps = 4;
  a.envs = 3;
  a.returns = out.data();
  ops->returns(a);
  const auto g = out.to_host();
  // env 0: t=3: 1 + .5*2 = 2; t=2: 1 + .5*2 = 2; t=1 terminated: 1; t=0: 1 + .5 = 1.5
  EXPECT_FLOAT_EQ(g[0], 1.5F);
  EXPECT_FLOAT_EQ(g[3], 1.0F);
  EXPECT_FLOAT_EQ(g[6], 2.0F);
  EXPECT_FLOAT_EQ(g[9], 2.0F);
  // env 1: t=3: 1 + .5*3 = 2.5; t=2 truncated: 1 + .5*5 = 3.5; t=1: 2.75; t=0: 2.375
  EXPECT_FLOAT_EQ(g[10], 2.5F);
  EXPECT_FLOAT_EQ(g[7], 3.5F);
  EXPECT_FLOAT_EQ(g[4], 2.75F);
  EXPECT_FLOAT_EQ(g[1], 2.375F);
  // env 2, backwards from 1 + .5*10: 6, 4, 3, 2.5
  EXPECT_FLOAT_EQ(g[11], 6.0F);
  EXPECT_FLOAT_EQ(g[8], 4.0F);
  EXPECT_FLOAT_EQ(g[5], 3.0F);
  EXPECT_FLOAT_EQ(g[2], 2.5F);
  // Without bootstraps (REINFORCE): env 2's last return is just its reward.
  a.last_value = nullptr;
  a.truncation_value = nullptr;
  ops->returns(a);
  const auto m = out.to_host();
  EXPECT_FLOAT_EQ(m[11], 1.0F);
  EXPECT_FLOAT_EQ(m[7], 1.0F);
  EXPECT_FLOAT_EQ(m[1], 1.0F + 0.5F * (1.0F + 0.5F * 1.0F));
}

TEST_P(RlOpsTest, FirstEpisodeMaskAndEpisodeTally) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  RlOps* ops = &device->rl();
  // T = 3, N = 2: env 0 ends at t=0 (and again at t=2, masked out); env 1 is truncated at t=1.
  auto te = upload(*device, std::vector<uint8_t>{1, 0, 0, 0, 1, 0});
  auto tr = upload(*device, std::vector<uint8_t>{0, 0, 0, 1, 0, 0});
  auto ret = upload(*device, std::vector<float>{7, 0, 0, 9, 4, 0});
  auto len = upload(*device, std::vector<int32_t>{7, 0, 0, 9, 4, 0});
  Buffer<uint8_t> mask(*device, 6);
  ops->first_episode_mask(te.data(), tr.data(), 3, 2, mask.data());
  EXPECT_EQ(mask.to_host(), (std::vector<uint8_t>{1, 1, 0, 1, 0, 0}));
  Buffer<EpisodeTally> tally(*device, 1);
  ops->episode_tally({te.data(), tr.data(), ret.data(), len.data(), mask.data()}, 6, tally.data());
  const EpisodeTally t = tally.to_host()[0];
  EXPECT_EQ(t.episodes, 2);
  EXPECT_EQ(t.return_sum, 16);
  EXPECT_EQ(t.return_min, 7);
  EXPECT_EQ(t.return_max, 9);
  EXPECT_EQ(t.truncations, 1);
  ops->episode_tally({te.data(), tr.data(), ret.data(), len.data(), nullptr}, 6, tally.data());
  EXPECT_EQ(tally.to_host()[0].episodes, 3);
  // mark_ended: env 0 ended at t = 0, env 1 at t = 1; the count grows by the newcomers only.
  Buffer<uint8_t> ended(*device, 2);
  ended.zero();
  auto count = upload(*device, std::vector<int64_t>{0});
  for (int64_t step = 0; step < 3; ++step) {
    ops->mark_ended(ended.data(), te.data() + 2 * step, tr.data() + 2 * step, 2, count.data());
    EXPECT_EQ(count.to_host()[0], step == 0 ? 1 : 2) << "after step " << step;
  }
  EXPECT_EQ(ended.to_host(), (std::vector<uint8_t>{1, 1}));
}

TEST_P(RlOpsTest, NormalizeMatchesTorchSemantics) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  RlOps* ops = &device->rl();
  // Masked elements are ignored and left untouched; std is the unbiased one (torch.std()).
  const std::vector<float> x = {1, 2, 100, 3, 4};
  const std::vector<uint8_t> m = {1, 1, 0, 1, 1};
  auto xb = upload(*device, x);
  auto mb = upload(*device, m);
  Buffer<Moments> mom(*device, 1);
  ops->moments(xb.data(), mb.data(), 5, mom.data());
  ops->normalize(xb.data(), mb.data(), 5, mom.data(), 1e-8F);
  const auto y = xb.to_host();
  const double sd = std::sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3.0);
  EXPECT_NEAR(y[0], (1 - 2.5) / sd, 1e-6);
  EXPECT_NEAR(y[3], (3 - 2.5) / sd, 1e-6);
  EXPECT_EQ(y[2], 100.0F);
}

TEST_P(RlOpsTest, ReductionsAreIndependentOfThreadCountAndLarge) {
  BP_DEVICE_OR_SKIP(device, GetParam());
  RlOps* ops = &device->rl();
  const int64_t n = 3 * kReduceBlock + 17;
  std::vector<float> x(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = std::sin(static_cast<float>(i)) * 3.0F + 0.5F;
  auto xb = upload(*device, x);
  Buffer<Moments> mom(*device, 1);
  ops->moments(xb.data(), nullptr, n, mom.data());
  const Moments got = mom.to_host()[0];
  double sum = 0;
  for (float v : x) sum += v;
  EXPECT_EQ(got.count, static_cast<double>(n));
  EXPECT_NEAR(got.sum, sum, 1e-6 * std::fabs(sum) + 1e-9);
  // The CPU result with one thread equals the result with two, bit for bit.
  if (GetParam() == "cpu") {
    auto one = test::device_or_skip("cpu", 1);
    RlOps* ops1 = &one->rl();
    Buffer<Moments> m1(*one, 1);
    auto x1 = upload(*one, x);
    ops1->moments(x1.data(), nullptr, n, m1.data());
    EXPECT_EQ(m1.to_host()[0].sum, got.sum);
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, RlOpsTest, ::testing::ValuesIn(test::devices()));

}  // namespace
}  // namespace batchpole
