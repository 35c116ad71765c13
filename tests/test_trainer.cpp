// The trainers: learning within a CI-sized budget, determinism, thread-count independence,
// exact resume from a checkpoint, refusal of bad checkpoints and of non-finite updates.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "batchpole/io/config_json.hpp"
#include "batchpole/rl/trainer.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<Device> cpu(int threads = 0) {
  DeviceOptions o;
  o.device = DeviceRequest::parse("cpu");
  o.threads = threads;
  return make_device(o);
}

double mean_return(const UpdateRecord& r) {
  return r.recent.episodes > 0 ? r.recent.return_sum / r.recent.episodes : 0.0;
}

// Trains until the mean return of the recent (>= 100) episodes reaches 475 or the budget ends;
// returns the env steps used, or -1.
int64_t steps_to_solve(Trainer& t, int64_t budget) {
  while (t.env_steps() < budget) {
    const UpdateRecord r = t.update();
    EXPECT_TRUE(r.finite) << "update " << r.update;
    if (r.recent.episodes >= 100 && mean_return(r) >= 475.0) return r.env_steps;
  }
  return -1;
}

// The exact sequence of what updates report (no wall-clock values in it).
std::vector<std::string> trace(Trainer& t, int updates) {
  std::vector<std::string> out;
  for (int i = 0; i < updates; ++i) {
    const UpdateRecord r = t.update();
    char line[512];
    std::snprintf(line, sizeof(line), "%lld %lld %lld %.17g %.17g %.17g %.17g %.17g %.17g",
                  static_cast<long long>(r.update), static_cast<long long>(r.env_steps),
                  static_cast<long long>(r.episodes), r.recent.return_sum, r.loss.policy_loss,
                  r.value_loss, r.loss.entropy, r.loss.grad_norm, r.loss.value_grad_norm);
    out.emplace_back(line);
  }
  return out;
}

TrainConfig small(Algorithm a) {
  TrainConfig c;
  c.algorithm = a;
  c.envs = 16;
  c.n_steps = 8;
  c.lr = a == Algorithm::kA2C ? 3e-3F : 1e-3F;
  c.seed = 5;
  return c;
}

TEST(Trainer, A2CLearnsCartPoleOnTheCpu) {
  auto b = cpu();
  TrainConfig c;  // the library defaults
  c.seed = 1;
  Trainer t(*b, c);
  const int64_t steps = steps_to_solve(t, 5'000'000);
  EXPECT_GT(steps, 0) << "A2C did not reach 475 within 5M env steps";
  std::printf("A2C solved in %lld env steps\n", static_cast<long long>(steps));
}

TEST(Trainer, ReinforceLearnsCartPoleOnTheCpu) {
  auto b = cpu();
  TrainConfig c = small(Algorithm::kReinforce);
  c.envs = 8;
  c.lr = 3e-3F;
  Trainer t(*b, c);
  const int64_t steps = steps_to_solve(t, 3'000'000);
  EXPECT_GT(steps, 0) << "REINFORCE did not reach 475 within 3M env steps";
  std::printf("REINFORCE solved in %lld env steps\n", static_cast<long long>(steps));
}

TEST(Trainer, BaselineLearnsCartPoleOnTheCpu) {
  auto b = cpu();
  TrainConfig c = small(Algorithm::kBaseline);
  c.envs = 8;
  c.lr = 3e-3F;
  c.value_lr = 3e-3F;
  Trainer t(*b, c);
  const int64_t steps = steps_to_solve(t, 3'000'000);
  EXPECT_GT(steps, 0) << "REINFORCE with baseline did not reach 475 within 3M env steps";
  std::printf("baseline solved in %lld env steps\n", static_cast<long long>(steps));
}

TEST(Trainer, SameSeedSameUpdatesAndThreadCountDoesNotMatter) {
  for (Algorithm a : {Algorithm::kReinforce, Algorithm::kBaseline, Algorithm::kA2C}) {
    TrainConfig c = small(a);
    // Large enough for the parallel CPU loops: 8199 envs (A2C), 64 envs x up to 500 steps.
    c.envs = a == Algorithm::kA2C ? 8192 + 7 : 64;
    c.n_steps = 4;
    auto one = cpu(1);
    auto two = cpu(2);
    Trainer t1(*one, c);
    Trainer t2(*two, c);
    Trainer t3(*two, c);
    const int updates = 3;
    const auto r1 = trace(t1, updates);
    EXPECT_EQ(r1, trace(t2, updates)) << to_string(a) << ": 1 thread vs 2";
    EXPECT_EQ(trace(t3, updates), r1) << to_string(a) << ": same seed twice";
    c.seed += 1;
    Trainer other(*two, c);
    EXPECT_NE(trace(other, updates), r1) << to_string(a) << ": another seed";
  }
}

// Reusing the activations of acting in the update (the default where they fit) trains as
// running the forward pass again does: the same episodes, losses to float rounding.
TEST(Trainer, ReusedActivationsTrainAsRecomputedOnes) {
  for (Algorithm a : {Algorithm::kReinforce, Algorithm::kBaseline, Algorithm::kA2C}) {
    TrainConfig c = small(a);
    auto b = cpu(2);
    Trainer reuse(*b, c);
    EXPECT_TRUE(reuse.reuses_activations()) << to_string(a);
    EXPECT_GT(Trainer::record_bytes(c, b->plan()), 0U);
    c.reuse_activations = false;
    Trainer again(*b, c);
    EXPECT_FALSE(again.reuses_activations()) << to_string(a);
    EXPECT_EQ(Trainer::record_bytes(c, b->plan()), 0U);
    for (int u = 0; u < 3; ++u) {
      const UpdateRecord x = reuse.update();
      const UpdateRecord y = again.update();
      ASSERT_EQ(x.env_steps, y.env_steps) << to_string(a) << " update " << u;
      ASSERT_EQ(x.episodes, y.episodes) << to_string(a) << " update " << u;
      EXPECT_NEAR(x.loss.policy_loss, y.loss.policy_loss, 1e-4 * (1 + std::abs(y.loss.policy_loss)))
          << to_string(a) << " update " << u;
      EXPECT_NEAR(x.value_loss, y.value_loss, 1e-4 * (1 + std::abs(y.value_loss)))
          << to_string(a) << " update " << u;
    }
  }
  // Beyond the budget (REINFORCE: a million envs x 500 steps) the forward pass runs again.
  const DevicePlan cpu_plan = cpu()->plan();  // a 2 GiB budget
  DevicePlan gpu_like = cpu_plan;
  gpu_like.record_budget = std::size_t{8} << 30U;
  TrainConfig big = small(Algorithm::kReinforce);
  big.envs = int64_t{1} << 20;
  EXPECT_EQ(Trainer::record_bytes(big, cpu_plan), 0U);
  EXPECT_EQ(Trainer::record_bytes(big, gpu_like), 0U);
  big.algorithm = Algorithm::kA2C;
  big.n_steps = 5;
  EXPECT_EQ(Trainer::record_bytes(big, cpu_plan), 0U);  // 3.9 GB > 2 GiB
  EXPECT_GT(Trainer::record_bytes(big, gpu_like), 0U);  // < 8 GiB
}

TEST(Trainer, ResumeContinuesExactly) {
  const fs::path dir = fs::temp_directory_path() / "batchpole_test_resume";
  fs::create_directories(dir);
  const std::string ckpt = (dir / "ckpt.bin").string();
  for (Algorithm a : {Algorithm::kReinforce, Algorithm::kBaseline, Algorithm::kA2C}) {
    auto b = cpu();
    const TrainConfig c = small(a);
    Trainer straight(*b, c);
    const auto want = trace(straight, 8);
    Trainer first(*b, c);
    auto got = trace(first, 5);
    first.save_checkpoint(ckpt, R"({"wall_s": 1.5})");
    std::string extra;
    const TrainConfig back = Trainer::read_checkpoint_config(ckpt, &extra);
    EXPECT_EQ(config_to_json(back), config_to_json(c));
    EXPECT_EQ(extra, R"({"wall_s": 1.5})");
    Trainer second(*b, back);
    second.restore_checkpoint(ckpt);
    EXPECT_EQ(second.updates(), 5);
    const auto rest = trace(second, 3);
    got.insert(got.end(), rest.begin(), rest.end());
    EXPECT_EQ(got, want) << to_string(a);
  }
  fs::remove_all(dir);
}

TEST(Trainer, BadCheckpointsAreRefused) {
  const fs::path dir = fs::temp_directory_path() / "batchpole_test_badckpt";
  fs::create_directories(dir);
  const std::string path = (dir / "ckpt.bin").string();
  auto b = cpu();
  TrainConfig c = small(Algorithm::kA2C);
  Trainer t(*b, c);
  t.update();
  t.save_checkpoint(path);
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto write = [&](const std::string& name, const std::string& content) {
    const std::string p = (dir / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return p;
  };
  const auto expect_refused = [&](const std::string& p, const std::string& word) {
    try {
      Trainer r(*b, c);
      r.restore_checkpoint(p);
      FAIL() << p << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
    }
  };
  expect_refused(write("truncated.bin", bytes.substr(0, bytes.size() / 2)), "truncated");
  std::string flipped = bytes;
  flipped[bytes.size() / 2] = static_cast<char>(flipped[bytes.size() / 2] ^ 0x10);
  expect_refused(write("flipped.bin", flipped), "corrupted");
  std::string version = bytes;
  version[8] = 7;
  expect_refused(write("version.bin", version), "version");
  expect_refused(write("text.bin", "hello"), "not a batchpole checkpoint");
  // Another architecture: the same algorithm with other hidden sizes.
  TrainConfig wide = c;
  wide.hidden = 32;
  Trainer w(*b, wide);
  try {
    w.restore_checkpoint(path);
    FAIL() << "a 64-unit checkpoint restored into a 32-unit trainer";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument);
  }
  // A failed restore changes nothing; the good file still restores.
  Trainer ok(*b, c);
  EXPECT_NO_THROW(ok.restore_checkpoint(path));
  EXPECT_EQ(ok.updates(), 1);
  fs::remove_all(dir);
}

TEST(Trainer, NonFiniteUpdateIsReported) {
  auto b = cpu();
  Trainer t(*b, small(Algorithm::kA2C));
  t.update();
  // NaN everywhere: one NaN weight can vanish behind a ReLU, as it does in PyTorch.
  auto params = t.model().get_parameters();
  for (float& p : params) p = std::numeric_limits<float>::quiet_NaN();
  t.model().set_parameters(params);
  EXPECT_FALSE(t.update().finite);
}

TEST(Trainer, BadConfigurationsAreRefused) {
  auto b = cpu();
  const auto refused = [&](auto mutate) {
    TrainConfig c;
    mutate(c);
    EXPECT_THROW(Trainer(*b, c), Error);
  };
  refused([](TrainConfig& c) { c.lr = -1e-3F; });
  refused([](TrainConfig& c) { c.lr = std::numeric_limits<float>::quiet_NaN(); });
  refused([](TrainConfig& c) { c.gamma = 0.0F; });
  refused([](TrainConfig& c) { c.gamma = 1.01F; });
  refused([](TrainConfig& c) { c.n_steps = -1; });
  refused([](TrainConfig& c) { c.envs = 0; });
  refused([](TrainConfig& c) {
    c.algorithm = Algorithm::kReinforce;
    c.env.max_episode_steps = 0;  // whole episodes need a time limit
  });
  try {
    TrainConfig c;
    c.envs = (int64_t{1} << 31) - 1;  // the most a VecEnv holds
    c.n_steps = 500;
    Trainer t(*b, c);
    FAIL() << "2^31 - 1 envs x 500 steps accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kOutOfMemory) << e.what();
    EXPECT_NE(std::string(e.what()).find("bytes"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_algorithm("trpo"), Error);
  EXPECT_THROW(config_from_json(R"({"lr": "fast"})"), Error);
  EXPECT_THROW(config_from_json(R"({"learning_rate": 1})"), Error);
  EXPECT_THROW(config_from_json("not json"), Error);
}

}  // namespace
}  // namespace batchpole
