// The device registry: what CUDA's absence says, the plans, the counting of operations.
#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "batchpole/rl/trainer.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

// With a GPU, --device cuda and auto give it; without, cuda is refused with the reason that
// cuda_status() gives (no plugin, a library missing, no driver, no device) and auto falls back
// to the CPU.
TEST(Devices, CudaIsUsedOrRefusedWithItsReason) {
  const CudaStatus& status = cuda_status();
  DeviceOptions o;
  o.device = DeviceRequest::parse("cuda");
  if (status.available()) {
    EXPECT_TRUE(status.reason.empty()) << status.reason;
    EXPECT_EQ(make_device(o)->kind(), DeviceKind::kCuda);
    o.device = DeviceRequest::parse("auto");
    EXPECT_EQ(make_device(o)->kind(), DeviceKind::kCuda);
    return;
  }
  ASSERT_FALSE(status.reason.empty());
  try {
    make_device(o);
    FAIL() << "a CUDA device was made without a usable GPU";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kUnavailable);
    EXPECT_NE(std::string(e.what()).find(status.reason), std::string::npos) << e.what();
  }
  o.device = DeviceRequest::parse("auto");
  EXPECT_EQ(make_device(o)->kind(), DeviceKind::kCpu);
  EXPECT_THROW(DeviceRequest::parse("tpu"), Error);
}

TEST(Devices, PlansAreComplete) {
  for (const std::string& name : test::devices()) {
    auto device = test::device_or_skip(name);
    if (!device) continue;
    const DevicePlan& p = device->plan();
    EXPECT_GT(p.chunk_rows, 0) << name;
    EXPECT_GE(p.shards, 1) << name;
    EXPECT_GT(p.record_budget, 0U) << name;
    EXPECT_GT(p.train_envs, 0) << name;
    EXPECT_GT(p.bench_env_envs, 0) << name;
    EXPECT_GT(p.bench_nn_batch, 0) << name;
    EXPECT_GT(p.bench_train_envs, 0) << name;
  }
}

// An allocation larger than the device's memory is refused by the device, naming the size.
TEST(Devices, AllocationBeyondMemoryIsRefused) {
  auto device = make_device({DeviceRequest::parse("cpu")});
  const std::size_t too_much = device->available_memory() + (std::size_t{1} << 40);
  try {
    Buffer<float> b(*device, too_much / sizeof(float));
    FAIL() << "allocated more than the machine has";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("cannot allocate"), std::string::npos) << e.what();
  }
}

// Every operation counts one stream operation, copies to the host a synchronisation too.
TEST(Devices, OperationsAndSynchronisationsAreCounted) {
  auto device = make_device({DeviceRequest::parse("cpu")});
  Buffer<float> x(*device, 16);
  const OpCounts before = device->counts();
  device->nn().fill(x.data(), 16, 1.0f);
  device->fill_zero(x.data(), 8 * sizeof(float));
  device->nn().fill(x.data(), 0, 1.0f);  // nothing queued, nothing counted
  EXPECT_EQ(device->counts().stream_ops - before.stream_ops, 2U);
  EXPECT_EQ(device->counts().host_syncs, before.host_syncs);
  (void)x.to_host();
  EXPECT_EQ(device->counts().stream_ops - before.stream_ops, 3U);
  EXPECT_EQ(device->counts().host_syncs - before.host_syncs, 1U);
  device->blas().scal(16, 2.0f, x.data(), 1);  // BLAS calls are stream operations too
  device->blas().nrm2(16, x.data(), 1, x.data() + 15);
  EXPECT_EQ(device->counts().stream_ops - before.stream_ops, 5U);
}

// A CPU device that cuts batches as the GPU does (one shard, chunks of the GPU's size), so that
// its counts are the GPU's; batch_agents: its populations' agents too.
std::unique_ptr<Device> gpu_like_cpu(bool batch_agents = false) {
  DeviceOptions o;
  o.device = DeviceRequest::parse("cpu");
  o.threads = 1;
  auto plan = std::make_shared<DevicePlan>(make_device({DeviceRequest::parse("cpu")})->plan());
  plan->shards = 1;
  plan->chunk_rows = 262144;
  plan->batch_agents = batch_agents;
  o.plan = plan;
  return make_device(o);
}

// An update reports its own counts; collecting writes the rollout in place, so an A2C update
// with 5-step rollouts makes a fixed number of operations whatever the number of envs.
TEST(Devices, UpdateCountsDoNotGrowWithTheBatch) {
  auto device = gpu_like_cpu();
  std::vector<OpCounts> counts;
  for (const int64_t envs : {32, 256}) {
    TrainConfig c;
    c.envs = envs;
    c.seed = 4;
    Trainer t(*device, c);
    t.update();
    counts.push_back(t.update().ops);
  }
  EXPECT_GT(counts[0].stream_ops, 0U);
  EXPECT_EQ(counts[0].stream_ops, counts[1].stream_ops);
  EXPECT_EQ(counts[0].host_syncs, counts[1].host_syncs);
}

// Sync-free updates (the GPU's plan): an n-step update waits for the device once, at its end,
// and computes exactly what an update that reads the tally first does.
TEST(Devices, SyncFreeUpdatesWaitOnceAndChangeNothing) {
  DeviceOptions o;
  o.device = DeviceRequest::parse("cpu");
  o.threads = 1;
  auto plan = std::make_shared<DevicePlan>(make_device({DeviceRequest::parse("cpu")})->plan());
  plan->sync_free_updates = true;
  o.plan = plan;
  auto sync_free = make_device(o);
  o.plan = nullptr;
  auto reference = make_device(o);
  for (const Algorithm a : {Algorithm::kA2C, Algorithm::kPpo}) {
    TrainConfig c = TrainConfig::defaults(a, *plan);
    c.envs = 16;
    c.seed = 2;
    c.env.max_episode_steps = 40;  // truncations in most rollouts
    if (a == Algorithm::kPpo) c.apply_ppo_recipe();
    Trainer x(*sync_free, c);
    Trainer y(*reference, c);
    for (int u = 0; u < 12; ++u) {
      const UpdateRecord rx = x.update();
      const UpdateRecord ry = y.update();
      EXPECT_EQ(rx.ops.host_syncs, 1U) << to_string(a);
      EXPECT_GT(ry.ops.host_syncs, 1U) << to_string(a);
      EXPECT_EQ(rx.loss.policy_loss, ry.loss.policy_loss) << to_string(a) << " update " << u;
      EXPECT_EQ(rx.value_loss, ry.value_loss) << to_string(a) << " update " << u;
      EXPECT_EQ(rx.recent.return_sum, ry.recent.return_sum) << to_string(a);
    }
    EXPECT_GT(x.recent().total().truncations, 0) << "the test means to truncate";
  }
}

// Batched agents (the GPU's plan): a population's update makes as many operations whatever the
// number of agents, for every algorithm, with discrete and continuous actions.
TEST(Devices, PopulationCountsDoNotGrowWithTheAgents) {
  auto device = gpu_like_cpu(true);
  const DevicePlan* plan = &device->plan();
  struct Arm {
    Algorithm algorithm;
    ActionSpace actions;
  };
  for (const Arm arm : {Arm{Algorithm::kReinforce, ActionSpace::kDiscrete},
                        Arm{Algorithm::kBaseline, ActionSpace::kDiscrete},
                        Arm{Algorithm::kA2C, ActionSpace::kDiscrete},
                        Arm{Algorithm::kPpo, ActionSpace::kDiscrete},
                        Arm{Algorithm::kDqn, ActionSpace::kDiscrete},
                        Arm{Algorithm::kA2C, ActionSpace::kContinuous},
                        Arm{Algorithm::kPpo, ActionSpace::kContinuous}}) {
    const Algorithm a = arm.algorithm;
    const std::string name = to_string(a) + " " + to_string(arm.actions);
    std::vector<OpCounts> counts;
    for (const int64_t agents : {2, 16}) {
      TrainConfig c = TrainConfig::defaults(a, *plan);
      c.envs = 16;
      c.agents = agents;
      c.seed = 4;
      c.actions = arm.actions;
      if (a == Algorithm::kPpo) c.apply_ppo_recipe();
      if (a == Algorithm::kDqn) {
        c.learning_starts = 0;  // gradient steps and target updates in every update
        c.target_update = 2;
      }
      Trainer t(*device, c);
      t.update_agents();
      counts.push_back(t.update_agents().front().ops);
    }
    EXPECT_GT(counts[0].stream_ops, 0U) << name;
    if (a != Algorithm::kReinforce && a != Algorithm::kBaseline) {
      // Fixed-length rollouts: the same operations exactly.
      EXPECT_EQ(counts[0].stream_ops, counts[1].stream_ops) << name;
      EXPECT_EQ(counts[0].host_syncs, counts[1].host_syncs) << name;
    } else {
      // Whole episodes: the longest agent decides the length; per step the same operations.
      EXPECT_LE(counts[1].host_syncs, 40U) << name;
    }
  }
}

}  // namespace
}  // namespace batchpole
