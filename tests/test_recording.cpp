// Recorded updates (Device::run_recorded): an update's operations replayed as one launch (a CUDA
// graph on the GPU) compute exactly what they compute launched one by one, a replay never runs
// operations other than the ones asked for, and an A2C update on the GPU's plan makes a few
// dozen stream operations and waits once.
#include "batchpole/device/buffer.hpp"
#include "batchpole/nn/adam.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "batchpole/rl/trainer.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

// A device of kind `name` whose plan records (or not) and is otherwise its own; on the CPU the
// GPU's way of cutting batches and of ending an update (sync-free), so that its counts are the
// GPU's. nullptr where the device is missing.
std::unique_ptr<Device> recording_device(const std::string& name, bool graphs,
                                         bool batch_agents = false) {
  auto probe = test::device_or_skip(name, 1);
  if (!probe) return nullptr;
  auto plan = std::make_shared<DevicePlan>(probe->plan());
  plan->graphs = graphs;
  plan->sync_free_updates = true;
  plan->shards = 1;
  plan->chunk_rows = 262144;
  plan->batch_agents = batch_agents;
  DeviceOptions o;
  o.device = DeviceRequest::parse(name);
  o.threads = 1;
  o.plan = plan;
  return make_device(o);
}

class RecordingTest : public ::testing::TestWithParam<std::string> {};

// Operations whose arguments change every run (here a fill value) never replay, and run right.
TEST_P(RecordingTest, ChangedArgumentsRunUnrecorded) {
  auto device = recording_device(GetParam(), true);
  if (!device) GTEST_SKIP() << "no CUDA device here";
  Buffer<float> x(*device, 8);
  Recording recording;
  for (int run = 0; run < 4; ++run) {
    device->run_recorded(recording, [&] { device->nn().fill(x.data(), 8, float(run)); });
    EXPECT_EQ(x.to_host(), std::vector<float>(8, float(run))) << "run " << run;
  }
  EXPECT_EQ(recording.replays(), 0U);
  EXPECT_EQ(recording.recordings(), 0U);
}

// The same operations are recorded on their second run and replayed from the third, as one
// stream operation; they read memory when they run, and parameter copies land before them.
TEST_P(RecordingTest, SameOperationsReplayAndReadParametersAnew) {
  auto device = recording_device(GetParam(), true);
  if (!device) GTEST_SKIP() << "no CUDA device here";
  Buffer<float> param(*device, 4);
  Buffer<float> in(*device, 4);
  Buffer<float> out(*device, 8);
  Recording recording;
  for (int run = 0; run < 5; ++run) {
    const std::vector<float> p{float(run), 1, 2, 3};
    const std::vector<float> v{10.0f + float(run), 11, 12, 13};
    in.from_host(v);  // written outside: the replay reads it where it is
    const OpCounts before = device->counts();
    device->run_recorded(recording, [&] {
      device->copy_on_device(out.data(), in.data(), 4 * sizeof(float));
      device->copy_parameters(param.data(), p.data(), 4 * sizeof(float));
      device->copy_on_device(out.data() + 4, param.data(), 4 * sizeof(float));
    });
    const OpCounts ops{device->counts().stream_ops - before.stream_ops,
                       device->counts().host_syncs - before.host_syncs};
    std::vector<float> want = v;
    want.insert(want.end(), p.begin(), p.end());
    EXPECT_EQ(out.to_host(), want) << "run " << run;
    EXPECT_EQ(ops.host_syncs, 0U);
    // One copy of parameters and one launch once recorded; three operations before.
    EXPECT_EQ(ops.stream_ops, run < 1 ? 3U : 2U) << "run " << run;
  }
  EXPECT_EQ(recording.recordings(), 1U);
  EXPECT_EQ(recording.replays(), 3U);
}

// Bytes copied from the host are part of the fingerprint: other bytes, no replay of the old.
TEST_P(RecordingTest, HostBytesThatChangeAreCopiedAnew) {
  auto device = recording_device(GetParam(), true);
  if (!device) GTEST_SKIP() << "no CUDA device here";
  Buffer<float> x(*device, 2);
  Recording recording;
  for (const float value : {1.0f, 1.0f, 1.0f, 2.0f, 2.0f, 2.0f, 1.0f}) {
    const float host[2] = {value, -value};
    device->run_recorded(recording, [&] { device->copy_from_host(x.data(), host, sizeof host); });
    EXPECT_EQ(x.to_host(), (std::vector<float>{value, -value}));
  }
  EXPECT_EQ(recording.recordings(), 2U);  // the 1s, then the 2s
  EXPECT_EQ(recording.replays(), 3U);     // the last 1s replay what was recorded for them
}

// Parameters copied to one place twice (an optimiser stepping twice) cannot all be made first:
// such runs are never replayed, and each copy lands where it was asked for.
TEST_P(RecordingTest, ParametersCopiedTwiceRunInProgramOrder) {
  auto device = recording_device(GetParam(), true);
  if (!device) GTEST_SKIP() << "no CUDA device here";
  Buffer<float> param(*device, 1);
  Buffer<float> out(*device, 2);
  Recording recording;
  for (int run = 0; run < 4; ++run) {
    const float a = float(run);
    const float b = float(100 + run);
    device->run_recorded(recording, [&] {
      device->copy_parameters(param.data(), &a, sizeof a);
      device->copy_on_device(out.data(), param.data(), sizeof(float));
      device->copy_parameters(param.data(), &b, sizeof b);
      device->copy_on_device(out.data() + 1, param.data(), sizeof(float));
    });
    EXPECT_EQ(out.to_host(), (std::vector<float>{a, b})) << "run " << run;
  }
  EXPECT_EQ(recording.replays(), 0U);
}

// Memory given back inside goes back after the held operations that use it have run.
TEST_P(RecordingTest, MemoryFreedInsideOutlivesItsOperations) {
  auto device = recording_device(GetParam(), true);
  if (!device) GTEST_SKIP() << "no CUDA device here";
  Buffer<float> out(*device, 4);
  Recording recording;
  for (int run = 0; run < 3; ++run) {
    device->run_recorded(recording, [&] {
      Buffer<float> scratch(*device, 4);
      device->nn().fill(scratch.data(), 4, float(run + 1));
      device->copy_on_device(out.data(), scratch.data(), 4 * sizeof(float));
    });
    EXPECT_EQ(out.to_host(), std::vector<float>(4, float(run + 1))) << "run " << run;
  }
}

// Waiting for the device inside is refused (what it would read has not run), after the
// operations asked for before it have run.
TEST_P(RecordingTest, WaitingInsideIsRefused) {
  auto device = recording_device(GetParam(), true);
  if (!device) GTEST_SKIP() << "no CUDA device here";
  Buffer<float> x(*device, 4);
  Recording recording;
  try {
    device->run_recorded(recording, [&] {
      device->nn().fill(x.data(), 4, 7.0f);
      (void)x.to_host();
    });
    FAIL() << "a copy to the host inside a recorded sequence was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kRuntime);
    EXPECT_NE(std::string(e.what()).find("recorded sequence"), std::string::npos) << e.what();
  }
  EXPECT_EQ(x.to_host(), std::vector<float>(4, 7.0f));
  EXPECT_THROW(device->run_recorded(recording, [&] { device->synchronize(); }), Error);
}

INSTANTIATE_TEST_SUITE_P(Devices, RecordingTest, ::testing::ValuesIn(test::devices()));

struct Arm {
  Algorithm algorithm;
  ActionSpace actions;
  int64_t agents;
  int64_t lr_anneal_steps = 0;
  int32_t parts = 1;       // data-parallel parts in this process (never recorded)
  int stop_agent_at = -1;  // a population: agent 1 stops before this update
};

std::string arm_name(const Arm& a) {
  return to_string(a.algorithm) + " " + to_string(a.actions) + " x" + std::to_string(a.agents) +
         (a.lr_anneal_steps > 0 ? " annealed" : "") +
         (a.parts > 1 ? " parts " + std::to_string(a.parts) : "") +
         (a.stop_agent_at >= 0 ? " stopping" : "");
}

TrainConfig arm_config(const Arm& arm, const DevicePlan& plan) {
  TrainConfig c = TrainConfig::defaults(arm.algorithm, plan);
  c.envs = 16;
  c.agents = arm.agents;
  c.seed = 6;
  c.actions = arm.actions;
  c.env.max_episode_steps = 40;  // truncations, and so V(final obs), in most rollouts
  c.lr_anneal_steps = arm.lr_anneal_steps;
  c.parts = arm.parts;
  if (arm.algorithm == Algorithm::kPpo) c.apply_ppo_recipe();
  if (arm.algorithm == Algorithm::kDqn) {
    c.learning_starts = 0;
    c.target_update = 2;
  }
  return c;
}

class RecordedTrainingTest : public ::testing::TestWithParam<std::string> {};

// Every algorithm trains exactly as unrecorded (the same losses, returns and counts, update
// after update, and the same parameters and optimiser state at the end), alone and as a batched
// population, with an annealed learning rate, with an agent that stops, and cut into
// data-parallel parts (which run unrecorded on the recording plan).
TEST_P(RecordedTrainingTest, ChangesNothing) {
  for (const Arm arm : {Arm{Algorithm::kA2C, ActionSpace::kDiscrete, 1},
                        Arm{Algorithm::kA2C, ActionSpace::kContinuous, 1},
                        Arm{Algorithm::kPpo, ActionSpace::kDiscrete, 1, 40000},
                        Arm{Algorithm::kDqn, ActionSpace::kDiscrete, 1},
                        Arm{Algorithm::kReinforce, ActionSpace::kDiscrete, 1},
                        Arm{Algorithm::kA2C, ActionSpace::kDiscrete, 1, 0, 2},
                        Arm{Algorithm::kA2C, ActionSpace::kDiscrete, 3, 0, 1, 4},
                        Arm{Algorithm::kPpo, ActionSpace::kContinuous, 3}}) {
    const bool batched = arm.agents > 1;
    auto recorded = recording_device(GetParam(), true, batched);
    auto plain = recording_device(GetParam(), false, batched);
    if (!recorded || !plain) GTEST_SKIP() << "no CUDA device here";
    const TrainConfig c = arm_config(arm, recorded->plan());
    Trainer x(*recorded, c);
    Trainer y(*plain, c);
    for (int u = 0; u < 8; ++u) {
      if (u == arm.stop_agent_at) {
        x.stop(1);
        y.stop(1);
      }
      const std::vector<UpdateRecord> rx = x.update_agents();
      const std::vector<UpdateRecord> ry = y.update_agents();
      ASSERT_EQ(rx.size(), ry.size());
      for (std::size_t k = 0; k < rx.size(); ++k) {
        const std::string where = arm_name(arm) + " update " + std::to_string(u);
        EXPECT_EQ(rx[k].loss.policy_loss, ry[k].loss.policy_loss) << where;
        EXPECT_EQ(rx[k].value_loss, ry[k].value_loss) << where;
        EXPECT_EQ(rx[k].loss.grad_norm, ry[k].loss.grad_norm) << where;
        EXPECT_EQ(rx[k].recent.return_sum, ry[k].recent.return_sum) << where;
        EXPECT_EQ(rx[k].env_steps, ry[k].env_steps) << where;
        EXPECT_EQ(rx[k].episodes, ry[k].episodes) << where;
      }
    }
    EXPECT_EQ(x.model().get_parameters(), y.model().get_parameters()) << arm_name(arm);
    for (int o = 0; o < x.model().optimizer_count(); ++o) {
      for (int64_t k = 0; k < x.model().optimizer(o).agents(); ++k) {
        const Adam::State sx = x.model().optimizer(o).get_state(k);
        const Adam::State sy = y.model().optimizer(o).get_state(k);
        EXPECT_EQ(sx.steps, sy.steps) << arm_name(arm);
        EXPECT_EQ(sx.moments, sy.moments) << arm_name(arm);
      }
    }
    if (arm.parts > 1 || arm.stop_agent_at >= 0 || arm.lr_anneal_steps > 0) continue;
    // A2C, PPO and DQN replay from the fourth update on (the first reads the env's own
    // observations, the second differs from it, the third is recorded); REINFORCE's whole
    // episodes watch for their end and run unrecorded.
    if (!Device::exact_fingerprints()) {
      // This compiler leaves struct padding in the fingerprints: fewer replays, same results.
    } else if (arm.algorithm != Algorithm::kReinforce) {
      EXPECT_EQ(x.recording().replays(), 5U) << arm_name(arm);
    } else {
      EXPECT_EQ(x.recording().replays(), 0U) << arm_name(arm);
    }
  }
}

// Two trainers on one device, their updates in turn: each replays its own recording, whatever
// the other does to the device's shared scratch (a larger batch grows it).
TEST_P(RecordedTrainingTest, TwoTrainersOnOneDeviceReplayTheirOwn) {
  auto recorded = recording_device(GetParam(), true);
  auto plain = recording_device(GetParam(), false);
  if (!recorded || !plain) GTEST_SKIP() << "no CUDA device here";
  TrainConfig small = TrainConfig::defaults(Algorithm::kA2C, recorded->plan());
  small.envs = 16;
  small.seed = 8;
  TrainConfig large = small;
  large.envs = 2048;
  large.seed = 9;
  Trainer a(*recorded, small);
  Trainer b(*recorded, large);
  Trainer a_plain(*plain, small);
  Trainer b_plain(*plain, large);
  for (int u = 0; u < 6; ++u) {
    EXPECT_EQ(a.update().loss.policy_loss, a_plain.update().loss.policy_loss) << "update " << u;
    if (u >= 2) {
      EXPECT_EQ(b.update().loss.policy_loss, b_plain.update().loss.policy_loss) << "update " << u;
    }
  }
  EXPECT_EQ(a.model().get_parameters(), a_plain.model().get_parameters());
  EXPECT_EQ(b.model().get_parameters(), b_plain.model().get_parameters());
}

// What the issue asks of the GPU: an A2C update of 5-step rollouts in at most 40 stream
// operations, waiting for the device once, at its end; PPO's update (epochs x minibatches of
// Adam steps) and DQN's (10 steps, 8 gradient steps) too, their per-step parameters copied in
// one copy per buffer. Counted on the GPU's plan (the
// CPU's device with it), so that CI holds the GPU to it.
TEST_P(RecordedTrainingTest, UpdatesAreAFewOperationsAndOneWait) {
  auto device = recording_device(GetParam(), true);
  if (!device) GTEST_SKIP() << "no CUDA device here";
  if (!Device::exact_fingerprints()) {
    GTEST_SKIP() << "this compiler cannot clear struct padding from fingerprints (GCC can): "
                    "its updates may run unrecorded";
  }
  for (const Algorithm a : {Algorithm::kA2C, Algorithm::kPpo, Algorithm::kDqn}) {
    for (const int64_t envs : {16, 512}) {
      TrainConfig c = TrainConfig::defaults(a, device->plan());
      c.envs = envs;
      if (a == Algorithm::kDqn) c.learning_starts = 0;  // gradient steps from the first update
      c.seed = 3;
      if (a == Algorithm::kPpo) c.apply_ppo_recipe();
      if (a == Algorithm::kA2C) {
        ASSERT_EQ(c.n_steps, 5);
      }
      const std::string where = to_string(a) + " " + std::to_string(envs) + " envs";
      Trainer t(*device, c);
      OpCounts last;
      for (int u = 0; u < 4; ++u) last = t.update().ops;
      EXPECT_LE(last.stream_ops, a == Algorithm::kA2C ? 40U : 10U) << where;
      EXPECT_EQ(last.host_syncs, 1U) << where;
      EXPECT_EQ(t.recording().recordings(), 1U) << where;
      EXPECT_GE(t.recording().replays(), 1U) << where;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, RecordedTrainingTest, ::testing::ValuesIn(test::devices()));

}  // namespace
}  // namespace batchpole
