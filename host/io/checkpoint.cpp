// Trainer checkpoints: a versioned binary file.
//
//   magic "BPCKPT\r\n" (8 bytes; the CR LF pair catches text-mode mangling, as PNG's does)
//   u32 format version, u64 payload length, payload, u64 FNV-1a hash of everything before it
//
// The payload holds, in order: the configuration (JSON text), the caller's extra JSON, the
// parameters (every agent's), each optimiser's step count and moments (per agent), the
// environments' seeds (one per agent), step counter and full state, per agent the trainer's
// counters, its active flag and its recent-episode window, and, for a learner with state of its
// own (DQN: its target network and replay buffer), that state as one byte vector per agent at
// the end (absent for the others). Integers and floats are little-endian, as on every machine
// this runs on (x86-64, and the GPU hosts).
//
// Reading trusts nothing the file says until the checksum holds, and little after: sizes are
// checked against the file before anything is allocated for them, counters against their
// ranges, and bytes behind the last field are refused.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "batchpole/io/config_json.hpp"
#include "batchpole/rl/trainer.hpp"

namespace batchpole {

namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'B', 'P', 'C', 'K', 'P', 'T', '\r', '\n'};
constexpr uint32_t kFormatVersion = 2;  // 2: populations
constexpr std::size_t kHeaderBytes = sizeof(kMagic) + sizeof(uint32_t) + sizeof(uint64_t);
constexpr std::size_t kChecksumBytes = sizeof(uint64_t);
// The most contents a checkpoint may declare (256 GiB). More than any run that fits a device
// writes (the state of the most environments a VecEnv takes, 2^31 - 1, is 94 GB, and training
// them needs more memory than that), and far less than a damaged length field can claim.
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 38;
// Counters beyond 2^62 are damage: no run gets there (2^62 steps at 10^9 per second take 146
// years), and from below it the trainer's own additions cannot overflow int64.
constexpr int64_t kMaxCounter = int64_t{1} << 62;
// The read buffer of the checksum pass: all the memory that a damaged file can make a reader
// take before it is refused.
constexpr std::size_t kChunkBytes = std::size_t{1} << 20;
constexpr uint64_t kFnvOffset = 1469598103934665603ULL;

uint64_t fnv1a(const unsigned char* data, std::size_t n, uint64_t h = kFnvOffset) {
  for (std::size_t i = 0; i < n; ++i) {
    h ^= data[i];
    h *= 1099511628211ULL;
  }
  return h;
}

class Writer {
 public:
  void raw(const void* p, std::size_t n) {
    const std::size_t at = bytes_.size();
    bytes_.resize(at + n);
    if (n > 0) std::memcpy(bytes_.data() + at, p, n);
  }
  template <class T>
  void pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    raw(&v, sizeof(T));
  }
  template <class T>
  void vec(const std::vector<T>& v) {
    pod<uint64_t>(v.size());
    raw(v.data(), v.size() * sizeof(T));
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    raw(s.data(), s.size());
  }
  [[nodiscard]] const std::vector<unsigned char>& bytes() const { return bytes_; }

 private:
  std::vector<unsigned char> bytes_;
};

class Reader {
 public:
  Reader(const unsigned char* data, std::size_t n, std::string path)
      : data_(data), n_(n), path_(std::move(path)) {}
  template <class T>
  T pod() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <class T>
  std::vector<T> vec() {
    // The count is the file's word: checked against the bytes left before anything is
    // allocated for it.
    const auto count = pod<uint64_t>();
    BP_CHECK_ARG(count <= (n_ - pos_) / sizeof(T), "checkpoint "
                                                       << path_ << " is corrupted (a field of "
                                                       << count << " values runs past its end)");
    std::vector<T> v(static_cast<std::size_t>(count));
    // An empty vector's data() may be null, and memcpy must never be given null, even for 0
    // bytes (undefined behaviour that UBSan reports).
    if (count > 0) std::memcpy(v.data(), data_ + pos_, v.size() * sizeof(T));
    pos_ += v.size() * sizeof(T);
    return v;
  }
  std::string str() {
    const auto v = vec<char>();
    return {v.begin(), v.end()};
  }
  [[nodiscard]] bool at_end() const { return pos_ == n_; }
  // Bytes behind the last field are damage that the checksum was recomputed over.
  void expect_end() const {
    BP_CHECK_ARG(pos_ == n_, "checkpoint " << path_ << " is corrupted (" << n_ - pos_
                                           << " bytes after its last field)");
  }

 private:
  void need(std::size_t k) const {
    BP_CHECK_ARG(n_ - pos_ >= k, "checkpoint " << path_ << " is truncated or corrupted");
  }
  const unsigned char* data_;
  std::size_t n_;
  std::size_t pos_ = 0;
  std::string path_;
};

struct CloseFile {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, CloseFile>;

bool read_exact(FILE* f, unsigned char* to, std::size_t n) {
  return n == 0 || std::fread(to, 1, n, f) == n;
}

// The verified payload of a checkpoint file, read in two passes. The header is checked
// against the file's size first, then the checksum over the whole file through a fixed buffer;
// only then is the payload read into memory. A foreign, damaged or endless file (/dev/zero) is
// so refused after reading at most kChunkBytes of it into memory, whatever it declares.
std::vector<unsigned char> read_payload(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  BP_CHECK_ARG(!ec && fs::exists(status), "cannot open checkpoint "
                                              << path << ": "
                                              << (ec ? ec.message() : std::string("no such file")));
  BP_CHECK_ARG(!fs::is_directory(status),
               "checkpoint " << path << " is a directory; pass its checkpoint.bin");
  BP_CHECK_ARG(fs::is_regular_file(status), "checkpoint " << path << " is not a regular file");
  const File f(std::fopen(path.c_str(), "rb"));
  BP_CHECK_ARG(f != nullptr, "cannot open checkpoint " << path << ": " << std::strerror(errno));
  struct stat st {};
  BP_CHECK_ARG(fstat(fileno(f.get()), &st) == 0 && S_ISREG(st.st_mode),
               "checkpoint " << path << " is not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);

  unsigned char header[kHeaderBytes];
  BP_CHECK_ARG(
      read_exact(f.get(), header, kHeaderBytes) && std::memcmp(header, kMagic, sizeof(kMagic)) == 0,
      path << " is not a batchpole checkpoint");
  uint32_t version = 0;
  uint64_t length = 0;
  std::memcpy(&version, header + sizeof(kMagic), sizeof(version));
  std::memcpy(&length, header + sizeof(kMagic) + sizeof(version), sizeof(length));
  BP_CHECK_ARG(version == kFormatVersion, "checkpoint " << path << " has format version " << version
                                                        << "; this batchpole reads "
                                                        << kFormatVersion);
  BP_CHECK_ARG(length <= kMaxPayloadBytes, "checkpoint "
                                               << path << " is corrupted (it declares " << length
                                               << " bytes of contents; a checkpoint holds at most "
                                               << kMaxPayloadBytes << ")");
  const uint64_t expected = kHeaderBytes + length + kChecksumBytes;
  BP_CHECK_ARG(size >= expected, "checkpoint " << path << " is truncated (" << size
                                               << " bytes; its header declares " << expected
                                               << ")");
  BP_CHECK_ARG(size == expected, "checkpoint " << path << " is corrupted (" << size - expected
                                               << " bytes after its end)");

  // Pass 1: the checksum.
  uint64_t hash = fnv1a(header, kHeaderBytes);
  std::vector<unsigned char> chunk(
      static_cast<std::size_t>(std::min<uint64_t>(length, kChunkBytes)));
  for (uint64_t left = length; left > 0;) {
    const auto n = static_cast<std::size_t>(std::min<uint64_t>(left, kChunkBytes));
    BP_CHECK_ARG(read_exact(f.get(), chunk.data(), n),
                 "checkpoint " << path << " is truncated (it shrank while being read)");
    hash = fnv1a(chunk.data(), n, hash);
    left -= n;
  }
  chunk = {};
  unsigned char tail[kChecksumBytes];
  BP_CHECK_ARG(read_exact(f.get(), tail, kChecksumBytes),
               "checkpoint " << path << " is truncated (it shrank while being read)");
  uint64_t stored = 0;
  std::memcpy(&stored, tail, sizeof(stored));
  BP_CHECK_ARG(stored == hash, "checkpoint " << path << " is corrupted (checksum mismatch)");

  // Pass 2: the contents, now known to be what was written (and checked again, in case the
  // file was rewritten in place between the passes).
  std::vector<unsigned char> payload;
  try {
    payload.resize(static_cast<std::size_t>(length));
  } catch (const std::bad_alloc&) {
    BP_REQUIRE(false, kOutOfMemory,
               "reading checkpoint " << path << " needs " << length << " bytes of memory");
  }
  BP_CHECK_ARG(std::fseek(f.get(), static_cast<long>(kHeaderBytes), SEEK_SET) == 0 &&
                   read_exact(f.get(), payload.data(), payload.size()) &&
                   fnv1a(payload.data(), payload.size(), fnv1a(header, kHeaderBytes)) == stored,
               "checkpoint " << path << " changed while being read");
  return payload;
}

// Everything a checkpoint holds, read and checked: what does not depend on the trainer that
// restores it (sizes that follow from the configuration, counters, finite numbers) is checked
// here, the rest by Trainer::restore_checkpoint before it changes anything.
struct Contents {
  TrainConfig config;
  std::string extra_json;
  std::vector<float> params;  // agents x parameters
  // optimizers[i * agents + k]: optimiser i of agent k.
  std::vector<PolicyValueModel::OptimizerState> optimizers;
  Precision precision = Precision::kF32;
  std::vector<uint64_t> seeds;  // one per agent
  uint64_t steps_taken = 0;
  EnvState env;
  int64_t updates = 0;
  std::vector<AgentProgress> agents;  // counters, active flag and recent window of each
  // A learner's own state (DQN: target network and replay buffer), one byte vector per agent;
  // empty for the learners without one. The learner checks it (Learner::restore_state).
  std::vector<std::vector<unsigned char>> learner_state;
};

template <class T>
bool all_finite(const std::vector<T>& v) {
  return std::all_of(v.begin(), v.end(), [](T x) { return std::isfinite(x); });
}

Contents read_contents(const std::string& path) {
  const auto payload = read_payload(path);
  Reader r(payload.data(), payload.size(), path);
  const auto damaged = [&](const std::string& what) {
    BP_CHECK_ARG(false, "checkpoint " << path << " is corrupted (" << what << ")");
  };
  Contents c;
  const std::string config_text = r.str();
  try {
    c.config = config_from_json(config_text);
    c.config.validate();
  } catch (const Error& e) {
    damaged(std::string("its configuration: ") + e.what());
  }
  c.extra_json = r.str();

  c.params = r.vec<float>();
  const ModelConfig model = model_config_for(c.config);
  const int64_t agents = c.config.agents;
  const int64_t parameters = model.parameter_count();
  BP_CHECK_ARG(static_cast<int64_t>(c.params.size()) == agents * parameters,
               "checkpoint " << path << " holds " << c.params.size()
                             << " parameters, which does not fit its configuration (" << agents
                             << " x " << parameters << ")");
  if (!all_finite(c.params)) damaged("a parameter is not finite");
  const std::vector<int64_t> sizes = model.optimizer_sizes();
  const auto optimizers = r.pod<uint32_t>();
  if (optimizers != sizes.size()) {
    damaged(std::to_string(optimizers) + " optimisers, expected " + std::to_string(sizes.size()));
  }
  c.optimizers.resize(optimizers * static_cast<std::size_t>(agents));
  for (std::size_t j = 0; j < c.optimizers.size(); ++j) {
    const std::size_t i = j / static_cast<std::size_t>(agents);
    auto& o = c.optimizers[j];
    o.steps = r.pod<int64_t>();
    if (o.steps < 0 || o.steps > kMaxCounter) {
      damaged("optimiser step count " + std::to_string(o.steps));
    }
    o.moments = r.vec<float>();
    const auto n = static_cast<std::size_t>(sizes[i]);
    // m and v of each parameter; v, a mean of squares, is never negative.
    if (o.moments.size() != 2 * n || !all_finite(o.moments) ||
        std::any_of(o.moments.begin() + static_cast<std::ptrdiff_t>(n), o.moments.end(),
                    [](float v) { return v < 0; })) {
      damaged("the moments of optimiser " + std::to_string(i));
    }
  }

  const auto precision = r.pod<uint8_t>();
  if (precision != static_cast<uint8_t>(c.config.precision)) {
    damaged("its precision does not match its configuration");
  }
  c.precision = c.config.precision;
  c.seeds = r.vec<uint64_t>();
  if (static_cast<int64_t>(c.seeds.size()) != agents) {
    damaged(std::to_string(c.seeds.size()) + " seeds for " + std::to_string(agents) + " agents");
  }
  for (std::size_t k = 0; k < c.seeds.size(); ++k) {
    // Agent k trains with seed + k (Trainer).
    if (c.seeds[k] != c.config.seed + k) damaged("agent " + std::to_string(k) + "'s seed");
  }
  c.steps_taken = r.pod<uint64_t>();
  const auto envs = static_cast<std::size_t>(c.config.envs * agents);
  for (auto* v : {&c.env.x, &c.env.x_dot, &c.env.theta, &c.env.theta_dot}) {
    *v = r.vec<double>();
    if (v->size() != envs) damaged("environment state of another size than its configuration's");
  }
  c.env.length = r.vec<int32_t>();
  c.env.ret = r.vec<float>();
  c.env.episode = r.vec<uint32_t>();
  if (c.env.length.size() != envs || c.env.ret.size() != envs || c.env.episode.size() != envs) {
    damaged("environment state of another size than its configuration's");
  }
  if (!all_finite(c.env.ret) || !all_finite(c.env.x) || !all_finite(c.env.x_dot) ||
      !all_finite(c.env.theta) || !all_finite(c.env.theta_dot)) {
    damaged("environment state that is not finite");
  }
  const int32_t limit = c.config.env.max_episode_steps;
  if (std::any_of(c.env.length.begin(), c.env.length.end(),
                  [&](int32_t n) { return n < 0 || (limit > 0 && n >= limit); })) {
    damaged("an episode length outside [0, max_episode_steps)");
  }

  c.updates = r.pod<int64_t>();
  if (c.updates < 0 || c.updates > kMaxCounter)
    damaged("update count " + std::to_string(c.updates));
  c.agents.resize(static_cast<std::size_t>(agents));
  for (std::size_t k = 0; k < c.agents.size(); ++k) {
    AgentProgress& a = c.agents[k];
    a.seed = c.seeds[k];
    a.updates = r.pod<int64_t>();
    a.env_steps = r.pod<int64_t>();
    a.episodes = r.pod<int64_t>();
    a.act_steps = r.pod<uint64_t>();
    const auto active = r.pod<uint8_t>();
    if (active > 1) damaged("agent " + std::to_string(k) + "'s active flag");
    a.active = active == 1;
    // Every update steps every environment at least once, and every episode takes a step; an
    // agent takes part in at most every update of the run.
    if (a.updates < 0 || a.env_steps < 0 || a.episodes < 0 || a.env_steps > kMaxCounter ||
        a.updates > a.env_steps || a.episodes > a.env_steps || a.updates > c.updates) {
      damaged("agent " + std::to_string(k) + "'s counters " + std::to_string(a.updates) +
              " updates, " + std::to_string(a.env_steps) + " environment steps, " +
              std::to_string(a.episodes) + " episodes");
    }
    const auto recent = r.vec<EpisodeTally>();
    // The window holds the latest updates' episodes (kept once the first one ends), a part of
    // all the episodes counted.
    double in_window = 0;
    for (const EpisodeTally& t : recent) {
      const double fields[] = {t.episodes,   t.return_sum, t.return_sq,  t.length_sum, t.return_min,
                               t.return_max, t.length_min, t.length_max, t.truncations};
      if (!std::all_of(std::begin(fields), std::end(fields),
                       [](double x) { return std::isfinite(x); }) ||
          t.episodes < 1) {
        damaged("agent " + std::to_string(k) + "'s window of recent episodes");
      }
      in_window += t.episodes;
    }
    if (in_window > static_cast<double>(a.episodes) || (recent.empty() != (a.episodes == 0))) {
      damaged("agent " + std::to_string(k) +
              "'s window of recent episodes does not fit its episode count");
    }
    a.recent.restore(std::deque<EpisodeTally>(recent.begin(), recent.end()));
  }
  if (!r.at_end()) {
    for (int64_t k = 0; k < agents; ++k) c.learner_state.push_back(r.vec<unsigned char>());
  }
  try {
    check_learner_state(c.config, c.learner_state);
  } catch (const Error& e) {
    damaged(e.what());
  }
  r.expect_end();
  return c;
}

// Writes `bytes` to path through a temporary file that is flushed to disk and then renamed over
// the target: readers see the old file or the new one, never a part.
void write_atomically(const std::string& path, const std::vector<unsigned char>& bytes) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  BP_REQUIRE(f != nullptr, kInvalidArgument, "cannot write checkpoint " << tmp);
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() &&
                  std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::remove(tmp.c_str());
    BP_REQUIRE(false, kRuntime, "writing checkpoint " << tmp << " failed (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  BP_REQUIRE(!ec, kRuntime, "cannot rename " << tmp << " to " << path << ": " << ec.message());
}

}  // namespace

void Trainer::save_checkpoint(const std::string& path, const std::string& extra_json) const {
  // Data-parallel parts write the one agent's checkpoint: part 0's parameters and optimiser
  // (every part holds the same), the environments of all parts in global order (gathered from
  // every process of a distributed run, which all call this; one writes). The file is then the
  // same whether the parts lived in one process or in R.
  const bool parted = config_.parts > 1;
  EnvState s = env_->get_state();
  if (parted) {
    const auto gather = [&](auto& v) {
      using T = typename std::remove_reference_t<decltype(v)>::value_type;
      v = all_parts<T>(parts_, v);
    };
    for (auto* v : {&s.x, &s.x_dot, &s.theta, &s.theta_dot}) gather(*v);
    gather(s.length);
    gather(s.ret);
    gather(s.episode);
    if (!parts_.writes_checkpoints) return;
  }
  Writer w;
  w.str(config_to_json(config_));
  w.str(extra_json);
  std::vector<float> params = model_->get_parameters();
  if (parted) params.resize(static_cast<std::size_t>(model_->parameter_count()));
  w.vec(params);
  w.pod<uint32_t>(static_cast<uint32_t>(model_->optimizer_count()));
  for (int i = 0; i < model_->optimizer_count(); ++i) {
    for (int64_t k = 0; k < agents(); ++k) {
      const auto state = model_->get_optimizer_state(i, k);
      w.pod<int64_t>(state.steps);
      w.vec(state.moments);
    }
  }
  w.pod<uint8_t>(static_cast<uint8_t>(env_->precision()));
  w.vec(parted ? std::vector<uint64_t>{config_.seed} : env_->seeds());
  w.pod<uint64_t>(env_->steps_taken());
  for (const auto* v : {&s.x, &s.x_dot, &s.theta, &s.theta_dot}) w.vec(*v);
  w.vec(s.length);
  w.vec(s.ret);
  w.vec(s.episode);
  w.pod<int64_t>(updates_);
  for (const AgentProgress& a : agents_) {
    w.pod<int64_t>(a.updates);
    w.pod<int64_t>(a.env_steps);
    w.pod<int64_t>(a.episodes);
    w.pod<uint64_t>(a.act_steps);
    w.pod<uint8_t>(a.active ? 1 : 0);
    w.vec(std::vector<EpisodeTally>(a.recent.entries().begin(), a.recent.entries().end()));
  }
  for (const std::vector<unsigned char>& own : learner_state()) w.vec(own);

  Writer file;
  file.raw(kMagic, sizeof(kMagic));
  file.pod(kFormatVersion);
  file.pod(static_cast<uint64_t>(w.bytes().size()));
  file.raw(w.bytes().data(), w.bytes().size());
  file.pod(fnv1a(file.bytes().data(), file.bytes().size()));
  write_atomically(path, file.bytes());
}

TrainConfig Trainer::read_checkpoint_config(const std::string& path, std::string* extra_json) {
  Contents c = read_contents(path);
  if (extra_json != nullptr) *extra_json = std::move(c.extra_json);
  return c.config;
}

std::vector<float> Trainer::read_checkpoint_parameters(const std::string& path) {
  return read_contents(path).params;
}

void Trainer::restore_checkpoint(const std::string& path) {
  Contents c = read_contents(path);
  BP_CHECK_ARG(config_to_json(c.config) == config_to_json(config_),
               "checkpoint " << path << " was written with another configuration:\n"
                             << config_to_json(c.config) << "\nthis trainer has:\n"
                             << config_to_json(config_));
  const int64_t k_agents = agents();
  BP_CHECK_ARG(static_cast<int64_t>(c.params.size()) == k_agents * model_->parameter_count(),
               "checkpoint " << path << " holds " << c.params.size()
                             << " parameters; this architecture has "
                             << k_agents * model_->parameter_count());
  BP_CHECK_ARG(static_cast<int64_t>(c.optimizers.size()) == model_->optimizer_count() * k_agents,
               "checkpoint " << path << " holds " << c.optimizers.size() << " optimiser states, "
                             << "expected " << model_->optimizer_count() * k_agents);
  for (std::size_t j = 0; j < c.optimizers.size(); ++j) {
    const int i = static_cast<int>(j / static_cast<std::size_t>(k_agents));
    const int64_t n = model_->optimizer(i).size();
    BP_CHECK_ARG(static_cast<int64_t>(c.optimizers[j].moments.size()) == 2 * n,
                 "checkpoint " << path << " holds " << c.optimizers[j].moments.size()
                               << " moments for optimiser " << i << ", expected " << 2 * n);
  }
  // Everything read and checked: only now change the trainer. The environments first: their
  // restore checks the state (lengths within the time limit, finite values) before it writes.
  if (config_.parts > 1) {
    // Data-parallel parts: this process's slice of the environments, the one agent's
    // parameters and optimiser for each of its parts.
    const int64_t here = parts_here();
    const auto per = static_cast<std::size_t>(config_.envs / config_.parts);
    const auto from =
        static_cast<std::ptrdiff_t>(static_cast<std::size_t>(parts_.first_part) * per);
    const auto n = static_cast<std::ptrdiff_t>(static_cast<std::size_t>(here) * per);
    const auto slice = [&](auto& v) {
      v.erase(v.begin() + from + n, v.end());
      v.erase(v.begin(), v.begin() + from);
    };
    for (auto* v : {&c.env.x, &c.env.x_dot, &c.env.theta, &c.env.theta_dot}) slice(*v);
    slice(c.env.length);
    slice(c.env.ret);
    slice(c.env.episode);
    c.seeds.assign(static_cast<std::size_t>(here), config_.seed);
    std::vector<float> params;
    for (int64_t k = 0; k < here; ++k)
      params.insert(params.end(), c.params.begin(), c.params.end());
    c.params = std::move(params);
  }
  try {
    env_->restore(c.seeds, c.steps_taken, c.env);
  } catch (const Error& e) {
    BP_CHECK_ARG(false, "checkpoint " << path << " is corrupted (" << e.what() << ")");
  }
  model_->set_parameters(c.params);
  for (std::size_t j = 0; j < c.optimizers.size(); ++j) {
    const auto k = static_cast<int64_t>(j % static_cast<std::size_t>(k_agents));
    for (int64_t part = 0; part < parts_here(); ++part) {
      model_->set_optimizer_state(static_cast<int>(j / static_cast<std::size_t>(k_agents)),
                                  c.optimizers[j], config_.parts > 1 ? part : k);
    }
  }
  // The learner's own state last: read_contents checked it already (check_learner_state), so
  // taking it cannot fail half-way.
  restore_learner_state(c.learner_state);
  updates_ = c.updates;
  for (std::size_t k = 0; k < c.agents.size(); ++k) agents_[k] = std::move(c.agents[k]);
  apply_active();
}

}  // namespace batchpole
