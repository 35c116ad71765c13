// Damaged checkpoints: a real checkpoint cut at every length, with every byte flipped, its
// fields rewritten (and the checksum recomputed over them, as a hostile or buggy writer
// would), bytes appended, replaced by zeros or random data, and files that never end or
// declare terabytes. Every one must be refused with Error(kInvalidArgument) and a message
// naming the file, in bounded time and memory; a change the reader cannot tell from a real
// checkpoint (another float, another seed) must leave a trainer that still runs.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>

#include "batchpole/io/config_json.hpp"
#include "batchpole/rl/trainer.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

namespace fs = std::filesystem;
using Bytes = std::string;

constexpr std::size_t kHeader = 20;  // magic, version, payload length
constexpr std::size_t kChecksum = 8;

std::unique_ptr<Device> cpu() {
  DeviceOptions o;
  o.device = DeviceRequest::parse("cpu");
  o.threads = 1;
  return make_device(o);
}

TrainConfig tiny(Algorithm a) {
  TrainConfig c;
  c.algorithm = a;
  c.envs = 4;
  c.n_steps = 8;
  c.hidden = 8;
  c.seed = 3;
  c.env.max_episode_steps = 40;  // episodes end within the first updates
  return c;
}

uint64_t fnv1a(const Bytes& b, std::size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(b[i]);
    h *= 1099511628211ULL;
  }
  return h;
}

template <class T>
T get(const Bytes& b, std::size_t at) {
  T v;
  std::memcpy(&v, b.data() + at, sizeof(T));
  return v;
}
template <class T>
void put(Bytes& b, std::size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof(T));
}

// The file around a payload: magic, version 2, length, payload, checksum (as the writer does).
Bytes envelope(const Bytes& payload) {
  Bytes b = Bytes("BPCKPT\r\n", 8) + Bytes(4 + 8, '\0') + payload + Bytes(kChecksum, '\0');
  put<uint32_t>(b, 8, 2);
  put<uint64_t>(b, 12, payload.size());
  put<uint64_t>(b, b.size() - kChecksum, fnv1a(b, b.size() - kChecksum));
  return b;
}
Bytes payload_of(const Bytes& file) {
  return file.substr(kHeader, file.size() - kHeader - kChecksum);
}

// The payload cut into its fields, in the order the writer writes them (checkpoint.cpp), so that
// a test can rewrite one and put the file together again.
struct Field {
  std::string name;
  Bytes bytes;   // the field as written (a vector: its u64 count, then the values)
  int size = 0;  // of a scalar (1, 4 or 8); 0 for a vector
  int elem = 0;  // of a vector's values
};

std::vector<Field> fields_of(const Bytes& payload) {
  std::vector<Field> out;
  std::size_t at = 0;
  const auto scalar = [&](const std::string& name, int size) {
    out.push_back({name, payload.substr(at, static_cast<std::size_t>(size)), size, 0});
    at += static_cast<std::size_t>(size);
  };
  const auto vec = [&](const std::string& name, int elem) {
    const auto n = get<uint64_t>(payload, at);
    const std::size_t len = 8 + n * static_cast<std::size_t>(elem);
    out.push_back({name, payload.substr(at, len), 0, elem});
    at += len;
  };
  vec("config", 1);
  vec("extra", 1);
  vec("params", 4);
  scalar("optimizers", 4);
  const auto optimizers = get<uint32_t>(out.back().bytes, 0);
  for (uint32_t i = 0; i < optimizers; ++i) {
    scalar("opt" + std::to_string(i) + ".steps", 8);
    vec("opt" + std::to_string(i) + ".moments", 4);
  }
  scalar("precision", 1);
  vec("seeds", 8);
  const auto agents = get<uint64_t>(out.back().bytes, 0);
  scalar("steps_taken", 8);
  for (const char* k : {"x", "x_dot", "theta", "theta_dot"}) vec(k, 8);
  vec("length", 4);
  vec("ret", 4);
  vec("episode", 4);
  scalar("run_updates", 8);
  // Each agent's counters (agent 0's under the plain names).
  for (uint64_t k = 0; k < agents; ++k) {
    const std::string p = k == 0 ? "" : "agent" + std::to_string(k) + ".";
    scalar(p + "updates", 8);
    scalar(p + "env_steps", 8);
    scalar(p + "episodes", 8);
    scalar(p + "act_steps", 8);
    scalar(p + "active", 1);
    vec(p + "recent", static_cast<int>(sizeof(EpisodeTally)));
  }
  EXPECT_EQ(at, payload.size()) << "the test's idea of the layout is out of date";
  return out;
}

Bytes join(const std::vector<Field>& fields) {
  Bytes p;
  for (const auto& f : fields) p += f.bytes;
  return p;
}

template <class Fields>
auto& named(Fields& fields, const std::string& name) {
  for (auto& f : fields) {
    if (f.name == name) return f;
  }
  throw std::runtime_error("no field " + name);
}

// Runs fn in a child process with a time limit; returns its exit status, or -signal. For reads
// that the reader must refuse at once but a faulty one would never finish (/dev/zero), and for
// measuring the memory of one read alone. The child uses no OpenMP (nothing here trains).
int in_child(int seconds, const std::function<int()>& fn) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(static_cast<unsigned>(seconds));
    int code = 3;
    try {
      code = fn();
    } catch (...) {
      code = 4;
    }
    std::fflush(nullptr);  // _Exit flushes nothing
    std::_Exit(code);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

long max_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

class CheckpointFuzz : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("batchpole_ckpt_fuzz_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    device_ = cpu();
  }

  // A real checkpoint of `config` after `updates` updates.
  Bytes real(const TrainConfig& config, int updates) {
    Trainer t(*device_, config);
    for (int u = 0; u < updates; ++u) t.update();
    const std::string p = (dir_ / "real.bin").string();
    t.save_checkpoint(p, R"({"wall_s": 2.5})");
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  std::string write(const Bytes& b) {
    const std::string p = (dir_ / "damaged.bin").string();
    // A new file each time: ext4 flushes a file that was truncated and rewritten when it is
    // closed (auto_da_alloc), which made thousands of cases wait on the disk.
    fs::remove(p);
    std::ofstream(p, std::ios::binary | std::ios::trunc)
        .write(b.data(), static_cast<std::streamsize>(b.size()));
    return p;
  }

  // Restores b into a trainer of `config`: true if accepted (and the trainer then runs an
  // update), false if refused as it must be: Error(kInvalidArgument), a message naming the file,
  // within seconds. Refusals all go to one trainer per configuration, which a refused restore
  // must leave as it was (TearDown checks).
  bool restore(const TrainConfig& config, const Bytes& b, const std::string& what) {
    const std::string p = write(b);
    auto& t = refusers_[config_to_json(config)];
    if (t == nullptr) t = std::make_unique<Trainer>(*device_, config);
    const auto t0 = std::chrono::steady_clock::now();
    try {
      t->restore_checkpoint(p);
    } catch (const Error& e) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument) << what << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << what << ": the message does not name the file: " << e.what();
      EXPECT_LT(s, 5.0) << what;  // milliseconds, but the machine may be loaded
      // The readers that evaluation uses refuse it too, unless it is the valid checkpoint of
      // another configuration (a rewrite of the configuration's text, "clip": 0.2 to 0.4).
      if (std::string(e.what()).find("was written with another configuration") ==
          std::string::npos) {
        EXPECT_THROW((void)Trainer::read_checkpoint_parameters(p), Error) << what;
      }
      return false;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": not a batchpole::Error: " << e.what();
      return false;
    }
    const UpdateRecord r = t->update();
    EXPECT_GT(r.update, 0) << what;
    t.reset();
    return true;
  }

  void TearDown() override {
    // A refused restore changes nothing: each trainer still runs as a fresh one does.
    for (auto& [json, t] : refusers_) {
      if (t == nullptr) continue;
      EXPECT_EQ(t->updates(), 0);
      Trainer fresh(*device_, t->config());
      const UpdateRecord a = t->update();
      const UpdateRecord b = fresh.update();
      EXPECT_EQ(a.env_steps, b.env_steps);
      EXPECT_EQ(a.episodes, b.episodes);
      EXPECT_EQ(a.loss.policy_loss, b.loss.policy_loss) << "a refused restore changed the trainer";
    }
    refusers_.clear();
    fs::remove_all(dir_);
  }

  std::map<std::string, std::unique_ptr<Trainer>> refusers_;
  fs::path dir_;
  std::unique_ptr<Device> device_;
};

TEST_F(CheckpointFuzz, EveryTruncationAndEveryFlippedByteIsRefused) {
  for (Algorithm a : {Algorithm::kA2C, Algorithm::kBaseline}) {
    const TrainConfig c = tiny(a);
    const Bytes good = real(c, 6);
    ASSERT_TRUE(restore(c, good, "the real checkpoint"));
    for (std::size_t n = 0; n < good.size(); ++n) {
      ASSERT_FALSE(restore(c, good.substr(0, n), "cut to " + std::to_string(n) + " bytes"));
    }
    // FNV-1a changes with any one byte, so every flip is caught, the checksum's own included.
    for (std::size_t i = 0; i < good.size(); ++i) {
      Bytes b = good;
      b[i] = static_cast<char>(b[i] ^ (i % 2 == 0 ? 0xFF : 0x01));
      ASSERT_FALSE(restore(c, b, "byte " + std::to_string(i) + " flipped"));
    }
  }
}

TEST_F(CheckpointFuzz, AppendedZeroAndRandomFilesAreRefused) {
  const TrainConfig c = tiny(Algorithm::kA2C);
  const Bytes good = real(c, 6);
  for (std::size_t n : {1, 7, 8, 9, 100, 4096}) {
    EXPECT_FALSE(restore(c, good + Bytes(n, '\0'), std::to_string(n) + " zeros appended"));
    EXPECT_FALSE(restore(c, good + good.substr(0, n), std::to_string(n) + " bytes appended"));
  }
  EXPECT_FALSE(restore(c, good + good, "twice over"));
  EXPECT_FALSE(restore(c, Bytes(good.size(), '\0'), "zeros"));
  EXPECT_FALSE(restore(c, Bytes(), "empty"));
  EXPECT_FALSE(restore(c, good.substr(0, kHeader), "a header alone"));
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; ++i) {
    Bytes b(rng() % (2 * good.size()), '\0');
    for (char& ch : b) ch = static_cast<char>(rng());
    EXPECT_FALSE(restore(c, b, "random data " + std::to_string(i)));
    // The same behind a real magic, and inside a valid envelope (checksum and all).
    EXPECT_FALSE(restore(c, good.substr(0, 8) + b, "random data behind the magic"));
    EXPECT_FALSE(restore(c, envelope(b), "a random payload " + std::to_string(i)));
  }
}

TEST_F(CheckpointFuzz, TheEnvelopeIsChecked) {
  const TrainConfig c = tiny(Algorithm::kA2C);
  const Bytes good = real(c, 6);
  const auto length = get<uint64_t>(good, 12);
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, length - 1, length + 1, length + 8,
                     uint64_t{1} << 38, (uint64_t{1} << 38) + 1, uint64_t{1} << 63, ~uint64_t{0}}) {
    Bytes b = good;
    put<uint64_t>(b, 12, v);
    EXPECT_FALSE(restore(c, b, "payload length " + std::to_string(v)));
    put<uint64_t>(b, b.size() - kChecksum, fnv1a(b, b.size() - kChecksum));
    EXPECT_FALSE(restore(c, b, "payload length " + std::to_string(v) + ", checksum recomputed"));
  }
  for (uint32_t v : {0U, 1U, 3U, 0xFFFFFFFFU}) {
    Bytes b = good;
    put<uint32_t>(b, 8, v);
    put<uint64_t>(b, b.size() - kChecksum, fnv1a(b, b.size() - kChecksum));
    EXPECT_FALSE(restore(c, b, "format version " + std::to_string(v)));
  }
}

// Fields rewritten with the checksum recomputed: what the checksum cannot catch, the reader's
// own checks must.
TEST_F(CheckpointFuzz, RewrittenFieldsBehindAValidChecksumAreRefused) {
  for (Algorithm a : {Algorithm::kA2C, Algorithm::kBaseline}) {
    const TrainConfig c = tiny(a);
    const Bytes good = real(c, 6);
    const std::vector<Field> fields = fields_of(payload_of(good));
    ASSERT_TRUE(restore(c, envelope(join(fields)), "the fields put together again"));
    const auto rewritten = [&](const std::string& name, const std::function<void(Field&)>& edit) {
      std::vector<Field> f = fields;
      edit(named(f, name));
      return envelope(join(f));
    };
    const int64_t kMax = std::numeric_limits<int64_t>::max();
    const int64_t kMin = std::numeric_limits<int64_t>::min();
    // Counters: negative, past 2^62, or more updates or episodes than environment steps.
    for (const char* name : {"updates", "env_steps", "episodes", "opt0.steps"}) {
      for (int64_t v : {int64_t{-1}, int64_t{-5}, kMin, kMax, kMax - 1, (int64_t{1} << 62) + 1}) {
        EXPECT_FALSE(restore(c, rewritten(name, [&](Field& f) { put<int64_t>(f.bytes, 0, v); }),
                             std::string(name) + " = " + std::to_string(v)));
      }
    }
    for (const char* name : {"updates", "episodes"}) {
      const auto steps = get<int64_t>(named(fields, "env_steps").bytes, 0);
      EXPECT_FALSE(restore(c,
                           rewritten(name, [&](Field& f) { put<int64_t>(f.bytes, 0, steps + 1); }),
                           std::string(name) + " above env_steps"));
    }
    EXPECT_TRUE(restore(c, rewritten("updates", [](Field& f) { put<int64_t>(f.bytes, 0, 0); }),
                        "updates = 0 (within range)"));
    // Every vector's count, off by one or wildly, and every vector emptied or dropped.
    for (const Field& field : fields) {
      if (field.size != 0) continue;
      SCOPED_TRACE(field.name);
      const auto n = get<uint64_t>(field.bytes, 0);
      for (uint64_t v : {n + 1, n - 1, n * 2 + 1, uint64_t{1} << 40, ~uint64_t{0},
                         ~uint64_t{0} / static_cast<uint64_t>(field.elem) + 1}) {
        if (v == n) continue;
        EXPECT_FALSE(restore(c,
                             rewritten(field.name, [&](Field& f) { put<uint64_t>(f.bytes, 0, v); }),
                             field.name + " count " + std::to_string(v)));
      }
      if (n > 0 && field.name != "extra") {  // the caller's JSON, checked by the caller
        EXPECT_FALSE(restore(c, rewritten(field.name, [](Field& f) { f.bytes = Bytes(8, '\0'); }),
                             field.name + " emptied"));
      }
      EXPECT_FALSE(restore(c, rewritten(field.name, [](Field& f) { f.bytes.clear(); }),
                           field.name + " left out"));
    }
    // Trailing bytes inside the payload.
    for (std::size_t n : {1, 8, 72, 1000}) {
      EXPECT_FALSE(restore(c, envelope(join(fields) + Bytes(n, '\x01')),
                           std::to_string(n) + " bytes after the last field"));
    }
    // Non-finite or impossible numbers.
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    EXPECT_FALSE(restore(c, rewritten("params", [&](Field& f) { put<float>(f.bytes, 8, nan); }),
                         "a NaN parameter"));
    EXPECT_FALSE(restore(c,
                         rewritten("opt0.moments", [&](Field& f) { put<float>(f.bytes, 8, inf); }),
                         "an infinite moment"));
    EXPECT_FALSE(
        restore(c,
                rewritten("opt0.moments",
                          [&](Field& f) { put<float>(f.bytes, f.bytes.size() - 4, -1.0F); }),
                "a negative second moment"));
    EXPECT_FALSE(restore(c,
                         rewritten("x",
                                   [&](Field& f) {
                                     put<double>(f.bytes, 8,
                                                 std::numeric_limits<double>::infinity());
                                   }),
                         "an infinite cart position"));
    EXPECT_FALSE(restore(c, rewritten("ret", [&](Field& f) { put<float>(f.bytes, 8, nan); }),
                         "a NaN episode return"));
    EXPECT_FALSE(restore(c, rewritten("length", [&](Field& f) { put<int32_t>(f.bytes, 8, -1); }),
                         "a negative episode length"));
    EXPECT_FALSE(restore(c, rewritten("length", [&](Field& f) { put<int32_t>(f.bytes, 8, 40); }),
                         "an episode at its time limit"));
    for (int v : {1, 2, 255}) {
      EXPECT_FALSE(
          restore(c, rewritten("precision", [&](Field& f) { f.bytes[0] = static_cast<char>(v); }),
                  "precision byte " + std::to_string(v)));
    }
    for (uint32_t v : {0U, 3U, 0xFFFFFFFFU, a == Algorithm::kA2C ? 2U : 1U}) {
      EXPECT_FALSE(restore(c,
                           rewritten("optimizers", [&](Field& f) { put<uint32_t>(f.bytes, 0, v); }),
                           "optimizer count " + std::to_string(v)));
    }
    EpisodeTally bad;
    bad.episodes = 0;
    const auto tally = [&](const EpisodeTally& t) {
      return rewritten("recent", [&](Field& f) {
        f.bytes = Bytes(8, '\0') + Bytes(reinterpret_cast<const char*>(&t), sizeof(t));
        put<uint64_t>(f.bytes, 0, 1);
      });
    };
    EXPECT_FALSE(restore(c, tally(bad), "a recent entry without episodes"));
    bad.episodes = 3;
    bad.return_sum = std::numeric_limits<double>::quiet_NaN();
    EXPECT_FALSE(restore(c, tally(bad), "a NaN in the recent window"));
    // The configuration: not JSON, unknown keys, out of range, or another size than the state.
    const auto config = [&](const std::string& text) {
      return rewritten("config", [&](Field& f) {
        f.bytes = Bytes(8, '\0') + text;
        put<uint64_t>(f.bytes, 0, text.size());
      });
    };
    const std::string json = config_to_json(c);
    for (const std::string& text :
         {std::string(), std::string("{"), std::string("[]"), std::string("null"),
          std::string("{\"envs\": 4"), std::string("{\"no_such_key\": 1}"),
          std::string("{\"envs\": -1}"), std::string("{\"envs\": 1e400}"), std::string("{}"),
          json.substr(0, json.size() / 2), std::string(1 << 16, '['), std::string("\xff\xfe")}) {
      EXPECT_FALSE(restore(c, config(text), "configuration " + text.substr(0, 40)));
    }
    TrainConfig other = c;
    other.hidden = 9;
    EXPECT_FALSE(restore(c, config(config_to_json(other)), "another hidden size"));
    other = c;
    other.envs = 5;
    EXPECT_FALSE(restore(c, config(config_to_json(other)), "more environments than the state"));
    // The caller's extra JSON is the caller's business (train_run checks it), but a change the
    // reader cannot tell from a real checkpoint still restores into a working trainer.
    // A seed must be the configuration's (agent k trains with seed + k).
    EXPECT_FALSE(restore(c, rewritten("seeds", [](Field& f) { put<uint64_t>(f.bytes, 8, ~0ULL); }),
                         "another seed"));
    EXPECT_FALSE(restore(c, rewritten("active", [](Field& f) { f.bytes[0] = 2; }),
                         "an active flag of 2"));
    EXPECT_FALSE(
        restore(c, rewritten("run_updates", [](Field& f) { put<int64_t>(f.bytes, 0, 2); }),
                "fewer updates of the run than of its agent"));
    EXPECT_TRUE(restore(c,
                        rewritten("act_steps", [](Field& f) { put<uint64_t>(f.bytes, 0, ~0ULL); }),
                        "the sampling counter at its end"));
    EXPECT_TRUE(restore(c, rewritten("params", [](Field& f) { put<float>(f.bytes, 8, 1e30F); }),
                        "a large parameter"));
  }
}

// Random rewrites of payload bytes, checksum recomputed: refused cleanly or, where the result
// is a checkpoint as real as any, accepted by a trainer that then runs.
TEST_F(CheckpointFuzz, RandomRewritesBehindAValidChecksum) {
  const TrainConfig c = tiny(Algorithm::kA2C);
  const Bytes payload = payload_of(real(c, 6));
  std::mt19937_64 rng(11);
  int accepted = 0;
  for (int i = 0; i < 1500; ++i) {
    Bytes p = payload;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % p.size();
      switch (rng() % 4) {
        case 0:
          p[at] = static_cast<char>(rng());
          break;
        case 1:
          p.erase(at, 1 + rng() % 16);
          break;
        case 2:
          p.insert(at, Bytes(1 + rng() % 16, static_cast<char>(rng())));
          break;
        default:
          if (at + 8 <= p.size()) put<uint64_t>(p, at, rng() >> (rng() % 64));
      }
    }
    accepted += restore(c, envelope(p), "random rewrite " + std::to_string(i)) ? 1 : 0;
    if (HasFailure()) break;
  }
  std::printf("%d of 1500 random rewrites were checkpoints as real as any\n", accepted);
}

// An endless file, and huge ones: refused at once, and with memory bounded by the reader's
// buffer rather than by what the file holds or declares. Each runs in a child, with a time
// limit (a reader that slurps /dev/zero never returns) and its own peak memory.
TEST_F(CheckpointFuzz, EndlessAndHugeFilesAreRefusedQuicklyInBoundedMemory) {
  const auto refused = [](const std::string& path) {
    return [path] {
      try {
        (void)Trainer::read_checkpoint_config(path);
      } catch (const Error& e) {
        return e.kind() == Error::Kind::kInvalidArgument ? 0 : 1;
      }
      return 2;
    };
  };
  EXPECT_EQ(in_child(20, refused("/dev/zero")), 0) << "/dev/zero";
  EXPECT_EQ(in_child(20, refused("/dev/urandom")), 0) << "/dev/urandom";
  EXPECT_EQ(in_child(20, refused(dir_.string())), 0) << "a directory";
  EXPECT_EQ(in_child(20, refused((dir_ / "missing.bin").string())), 0) << "no file";

  // Sparse files (no disk used): a valid header declaring the whole 256 MiB, one declaring more
  // than any checkpoint holds, and one declaring more than the file has.
  const uint64_t size = uint64_t{256} << 20;
  const auto sparse = [&](const std::string& name, uint64_t declared) {
    const std::string p = (dir_ / name).string();
    Bytes head = Bytes("BPCKPT\r\n", 8) + Bytes(12, '\0');
    put<uint32_t>(head, 8, 1);
    put<uint64_t>(head, 12, declared);
    std::ofstream(p, std::ios::binary)
        .write(head.data(), static_cast<std::streamsize>(head.size()));
    fs::resize_file(p, size);
    return p;
  };
  const auto bounded = [&](const std::string& path) {
    return [path, refused] {
      const long before = max_rss_kib();
      const int code = refused(path)();
      const long grown_mib = (max_rss_kib() - before) / 1024;
      std::printf("%s: refused with %ld MiB more memory\n", path.c_str(), grown_mib);
      return code != 0 ? 10 + code : grown_mib < 64 ? 0 : 9;
    };
  };
  EXPECT_EQ(in_child(120, bounded(sparse("valid_header.bin", size - kHeader - kChecksum))), 0);
  EXPECT_EQ(in_child(20, bounded(sparse("declares_1e18.bin", uint64_t{1} << 60))), 0);
  EXPECT_EQ(in_child(20, bounded(sparse("declares_more.bin", size))), 0);
}

// Item 1 of issue 15: a checkpoint written before any episode ended has an empty window of
// recent episodes; reading it back passed a null pointer to memcpy (UBSan: undefined behaviour).
// DQN's own state (its target network and replay buffer: one byte vector per agent at the end
// of the payload), damaged behind a valid checksum: refused by the trainer and by the readers.
TEST_F(CheckpointFuzz, DqnStateBehindAValidChecksumIsChecked) {
  TrainConfig c = tiny(Algorithm::kDqn);
  c.buffer_size = 64;  // 3 updates of 4 envs x 8 steps fill it and wrap
  c.batch_size = 8;
  c.learning_starts = 0;
  const Bytes payload = payload_of(real(c, 3));
  ASSERT_TRUE(restore(c, envelope(payload), "as written"));
  // The state's layout (dqn.cpp): magic "DQN1", capacity, position, size, stored, draws,
  // gradient steps (8 bytes each), then vectors (u64 count, values): target parameters,
  // observations, actions, rewards, terminated flags, next observations.
  const std::size_t magic = payload.rfind("DQN1");
  ASSERT_NE(magic, Bytes::npos);
  const std::size_t position = magic + 12, size = magic + 20;
  const auto n = get<int64_t>(payload, size);
  ASSERT_EQ(n, 64);
  const auto p = get<uint64_t>(payload, magic + 52);
  const std::size_t obs = magic + 60 + 4 * p + 8;
  const std::size_t actions = obs + 16 * static_cast<std::size_t>(n) + 8;
  const std::size_t rewards = actions + 4 * static_cast<std::size_t>(n) + 8;
  const std::size_t terminated = rewards + 4 * static_cast<std::size_t>(n) + 8;
  const auto edited = [&](const std::function<void(Bytes&)>& edit) {
    Bytes b = payload;
    edit(b);
    return envelope(b);
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(restore(c, edited([&](Bytes& b) { put<int64_t>(b, size, n + 1); }), "size > capacity"));
  EXPECT_FALSE(restore(c, edited([&](Bytes& b) { put<int64_t>(b, position, -1); }), "position -1"));
  EXPECT_FALSE(restore(c, edited([&](Bytes& b) { put<int64_t>(b, position, 64); }), "position 64"));
  EXPECT_FALSE(restore(c, edited([&](Bytes& b) { put<int32_t>(b, actions + 4 * 5, 2); }), "action 2"));
  EXPECT_FALSE(restore(c, edited([&](Bytes& b) { put<int32_t>(b, actions, -1); }), "action -1"));
  EXPECT_FALSE(restore(c, edited([&](Bytes& b) { put<float>(b, obs + 4 * 7, nan); }), "NaN obs"));
  EXPECT_FALSE(restore(c, edited([&](Bytes& b) { put<float>(b, rewards, nan); }), "NaN reward"));
  EXPECT_FALSE(restore(c, edited([&](Bytes& b) { b[terminated + 3] = 2; }), "flag 2"));
  EXPECT_FALSE(restore(c, edited([&](Bytes& b) { put<uint32_t>(b, magic, 0); }), "no magic"));
  // Without its state, or with state for an algorithm that keeps none.
  const Bytes without = payload.substr(0, magic - 8);
  EXPECT_FALSE(restore(c, envelope(without), "DQN without its state"));
  TrainConfig a2c = tiny(Algorithm::kA2C);
  const Bytes a2c_payload = payload_of(real(a2c, 1));
  EXPECT_FALSE(restore(a2c, envelope(a2c_payload + payload.substr(magic - 8)),
                       "A2C with DQN state"));
}

TEST_F(CheckpointFuzz, CheckpointBeforeAnyEpisodeEndedRoundTrips) {
  TrainConfig c = tiny(Algorithm::kA2C);
  c.env.max_episode_steps = 500;
  Trainer t(*device_, c);
  const UpdateRecord r = t.update();
  ASSERT_EQ(r.episodes, 0) << "an episode ended in the first update; the test needs none";
  const std::string p = (dir_ / "early.bin").string();
  t.save_checkpoint(p);
  Trainer back(*device_, c);
  back.restore_checkpoint(p);
  EXPECT_EQ(back.updates(), 1);
  EXPECT_EQ(back.recent().entries().size(), 0U);
  EXPECT_EQ(back.update().update, 2);
}

}  // namespace
}  // namespace batchpole
