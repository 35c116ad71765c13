// Data-parallel training (TrainConfig::parts, rl/data_parallel.hpp): one part is the plain run
// bit for bit; 2 and 4 parts follow the same batch (the same envs, keyed by their global index,
// the same first rollout) with the gradient summed in part order; the parts run as "ranks" (one
// trainer per thread, each holding one part, exchanging through an in-process gather) equal
// one trainer holding every part, bit for bit; a parted checkpoint resumes exactly; what is not
// cut into parts is refused.
#include <barrier>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "batchpole/io/config_json.hpp"
#include "batchpole/rl/trainer.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

namespace fs = std::filesystem;

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("batchpole_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::unique_ptr<Device> cpu(int threads) {
  DeviceOptions o;
  o.device = DeviceRequest::parse("cpu");
  o.threads = threads;
  return make_device(o);
}

TrainConfig a2c() {
  TrainConfig c;
  c.algorithm = Algorithm::kA2C;
  c.envs = 48;  // cut into 1, 2, 3 or 4 parts (whole episodes: 12)
  c.n_steps = 8;
  c.seed = 21;
  return c;
}

// Everything an update reports (no wall-clock values), as text that compares exactly.
std::string line_of(const UpdateRecord& r) {
  char buf[640];
  std::snprintf(buf, sizeof(buf),
                "%lld %lld %lld %lld %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g",
                static_cast<long long>(r.update), static_cast<long long>(r.env_steps),
                static_cast<long long>(r.episodes), static_cast<long long>(r.rollout_steps),
                r.recent.return_sum, r.recent.length_sum, r.loss.policy_loss, r.value_loss,
                r.loss.entropy, r.loss.grad_norm, r.explained_variance, r.loss.valid_samples);
  return buf;
}

std::vector<std::string> run(Trainer& t, int updates) {
  std::vector<std::string> lines;
  for (int u = 0; u < updates; ++u) lines.push_back(line_of(t.update()));
  return lines;
}

TEST(DataParallel, OnePartIsThePlainRunBitForBit) {
  auto device = cpu(2);
  TrainConfig plain = a2c();
  TrainConfig one = a2c();
  one.parts = 1;
  Trainer a(*device, plain);
  Trainer b(*device, one);
  EXPECT_EQ(run(a, 10), run(b, 10));
  EXPECT_EQ(a.model().get_parameters(), b.model().get_parameters());
  // Its configuration text (checkpoints, summary.json) is the one from before parts existed.
  EXPECT_EQ(config_to_json(one).find("\"parts\""), std::string::npos);
  TrainConfig two = a2c();
  two.parts = 2;
  EXPECT_NE(config_to_json(two).find("\"parts\": 2"), std::string::npos);
}

TEST(DataParallel, PartsFollowTheSameBatch) {
  // The first rollout is the same whatever the parts (same parameters, every env and action
  // drawn by its global index); the gradient is the same sum in another order, so the losses
  // and parameters agree within rounding, and the same parts twice agree bit for bit.
  auto device = cpu(2);
  std::vector<std::vector<float>> params;
  std::vector<UpdateRecord> first;
  for (const int32_t p : {1, 2, 4}) {
    TrainConfig c = a2c();
    c.parts = p;
    Trainer t(*device, c);
    first.push_back(t.update());
    params.push_back(t.model().get_parameters());
    ASSERT_EQ(static_cast<int64_t>(params.back().size()), t.model().parameter_count() * p);
    Trainer again(*device, c);
    EXPECT_EQ(line_of(again.update()), line_of(first.back())) << p << " parts";
  }
  for (std::size_t i = 1; i < first.size(); ++i) {
    EXPECT_EQ(first[i].env_steps, first[0].env_steps);
    EXPECT_EQ(first[i].episodes, first[0].episodes);
    EXPECT_EQ(first[i].recent.return_sum, first[0].recent.return_sum);
    EXPECT_EQ(first[i].loss.valid_samples, first[0].loss.valid_samples);
    EXPECT_NEAR(first[i].loss.policy_loss, first[0].loss.policy_loss, 1e-5);
    EXPECT_NEAR(first[i].value_loss, first[0].value_loss, 1e-4);
    EXPECT_NEAR(first[i].loss.grad_norm, first[0].loss.grad_norm, 1e-4);
    EXPECT_NEAR(first[i].explained_variance, first[0].explained_variance, 1e-5);
    // Every part took the same step: part k's parameters are part 0's.
    const std::size_t n = params[0].size();
    for (std::size_t k = 0; k < params[i].size() / n; ++k) {
      const std::vector<float> part(params[i].begin() + static_cast<std::ptrdiff_t>(k * n),
                                    params[i].begin() + static_cast<std::ptrdiff_t>((k + 1) * n));
      EXPECT_EQ(part, std::vector<float>(params[i].begin(),
                                         params[i].begin() + static_cast<std::ptrdiff_t>(n)));
      for (std::size_t j = 0; j < n; ++j) ASSERT_NEAR(part[j], params[0][j], 1e-6);
    }
  }
}

TEST(DataParallel, BatchedPartsDrawByTheGlobalEnvIndex) {
  // The GPU's plan runs the parts as batched agents (one sampling call over all of them): their
  // draws must be keyed by the global env index too, so the first rollout is the one batch's
  // (the batched passes round differently, within float tolerance, hence the loose losses).
  DeviceOptions o;
  o.device = DeviceRequest::parse("cpu");
  o.threads = 1;
  auto plan = std::make_shared<DevicePlan>(make_device(o)->plan());
  plan->batch_agents = true;
  plan->shards = 1;
  o.plan = plan;
  auto batched = make_device(o);
  auto plain = cpu(1);
  TrainConfig c = a2c();
  c.n_steps = 40;  // long enough for episodes to end in the first rollout
  Trainer one(*plain, c);
  c.parts = 4;
  Trainer parts(*batched, c);
  ASSERT_TRUE(parts.model().batched());
  const UpdateRecord a = one.update();
  const UpdateRecord b = parts.update();
  ASSERT_GT(a.episodes, 10);
  EXPECT_EQ(b.episodes, a.episodes);
  EXPECT_EQ(b.recent.return_sum, a.recent.return_sum);
  EXPECT_EQ(b.recent.length_sum, a.recent.length_sum);
  EXPECT_NEAR(b.loss.policy_loss, a.loss.policy_loss, 1e-4);
  EXPECT_NEAR(b.value_loss, a.value_loss, 1e-3);
}

// A gather between threads, as MPI's allgather is between ranks.
class Exchange {
 public:
  explicit Exchange(int n) : slots_(static_cast<std::size_t>(n)), barrier_(n) {}
  std::vector<std::string> gather(int rank, const std::string& bytes) {
    slots_[static_cast<std::size_t>(rank)] = bytes;
    barrier_.arrive_and_wait();
    std::vector<std::string> all = slots_;
    barrier_.arrive_and_wait();
    return all;
  }

 private:
  std::vector<std::string> slots_;
  std::barrier<> barrier_;
};

struct Case {
  std::string name;
  TrainConfig config;
  int updates;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  TrainConfig c = a2c();
  out.push_back({"a2c", c, 12});
  c.n_steps = 0;  // whole episodes: the parts' rollouts end at different steps
  c.envs = 12;
  out.push_back({"a2c_whole_episodes", c, 4});
  c.algorithm = Algorithm::kReinforce;
  c.lr = 3e-3F;
  out.push_back({"reinforce", c, 4});
  c.algorithm = Algorithm::kBaseline;
  out.push_back({"baseline", c, 4});
  c = a2c();
  c.algorithm = Algorithm::kPpo;
  c.gae_lambda = 0.95F;
  c.n_steps = 16;
  c.minibatches = 4;
  c.epochs = 4;
  c.target_kl = 0.004F;  // stops the epochs early: the parts must agree on when
  c.lr_anneal_steps = 20000;
  out.push_back({"ppo", c, 5});
  return out;
}

TEST(DataParallel, PartsInSeparateTrainersEqualOneTrainerBitForBit) {
  for (const Case& tc : cases()) {
    for (const int32_t p : {2, 3}) {
      TrainConfig c = tc.config;
      c.parts = p;
      auto device = cpu(1);
      Trainer whole(*device, c);
      const std::vector<std::string> want = run(whole, tc.updates);
      const fs::path dir = scratch("data_parallel");
      whole.save_checkpoint((dir / "whole.bin").string());

      Exchange exchange(p);
      std::vector<std::vector<std::string>> got(static_cast<std::size_t>(p));
      std::vector<std::vector<float>> params(static_cast<std::size_t>(p));
      std::vector<std::thread> ranks;
      for (int r = 0; r < p; ++r) {
        ranks.emplace_back([&, r] {
          auto own = cpu(1);
          DataParallel dp;
          dp.first_part = r;
          dp.local_parts = 1;
          dp.gather = [&exchange, r](const std::string& b) { return exchange.gather(r, b); };
          dp.writes_checkpoints = r == 0;
          Trainer t(*own, c, dp);
          got[static_cast<std::size_t>(r)] = run(t, tc.updates);
          params[static_cast<std::size_t>(r)] = t.model().get_parameters();
          t.save_checkpoint((dir / "ranks.bin").string());
        });
      }
      for (std::thread& t : ranks) t.join();
      const std::vector<float> all = whole.model().get_parameters();
      for (int r = 0; r < p; ++r) {
        EXPECT_EQ(got[static_cast<std::size_t>(r)], want) << tc.name << ", " << p << " parts, rank " << r;
        EXPECT_EQ(params[static_cast<std::size_t>(r)],
                  std::vector<float>(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(
                                                                    params[0].size())))
            << tc.name;
      }
      // One checkpoint, whoever held the parts: a trainer of every part resumes it exactly.
      Trainer resumed(*device, c);
      resumed.restore_checkpoint((dir / "ranks.bin").string());
      Trainer reference(*device, c);
      reference.restore_checkpoint((dir / "whole.bin").string());
      EXPECT_EQ(run(resumed, 2), run(reference, 2)) << tc.name << ", " << p << " parts";
      fs::remove_all(dir);
    }
  }
}

TEST(DataParallel, ResumesExactly) {
  auto device = cpu(2);
  TrainConfig c = a2c();
  c.parts = 4;
  Trainer straight(*device, c);
  const std::vector<std::string> want = run(straight, 10);
  Trainer first(*device, c);
  run(first, 6);
  const fs::path dir = scratch("data_parallel_resume");
  first.save_checkpoint((dir / "c.bin").string());
  Trainer second(*device, c);
  second.restore_checkpoint((dir / "c.bin").string());
  const std::vector<std::string> rest = run(second, 4);
  EXPECT_EQ(rest, std::vector<std::string>(want.begin() + 6, want.end()));
  fs::remove_all(dir);
}

TEST(DataParallel, RefusesWhatIsNotCutIntoParts) {
  TrainConfig c = a2c();
  c.parts = 5;  // 48 envs
  EXPECT_THROW(c.validate(), Error);
  c.parts = 2;
  c.agents = 2;  // a population is split by agents, not parts
  EXPECT_THROW(c.validate(), Error);
  c.agents = 1;
  c.algorithm = Algorithm::kPpo;
  c.minibatches = 8 * 24 + 1;  // more minibatches than a part's rows
  EXPECT_THROW(c.validate(), Error);
  c.minibatches = 4;
  EXPECT_NO_THROW(c.validate());
  c.algorithm = Algorithm::kDqn;  // its replay buffer is not cut into parts
  EXPECT_THROW(c.validate(), Error);
}

}  // namespace
}  // namespace batchpole
