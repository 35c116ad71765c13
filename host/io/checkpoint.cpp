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
// the end (absent for the others). Integers and floats are
// little-endian, as on every machine this runs on (x86-64, and the GPU hosts).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <type_traits>
#include <vector>

#include "batchpole/io/config_json.hpp"
#include "batchpole/rl/trainer.hpp"

namespace batchpole {

namespace {

constexpr char kMagic[8] = {'B', 'P', 'C', 'K', 'P', 'T', '\r', '\n'};
constexpr uint32_t kFormatVersion = 2;  // 2: populations

uint64_t fnv1a(const unsigned char* data, std::size_t n) {
  uint64_t h = 1469598103934665603ULL;
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
    const auto count = pod<uint64_t>();
    BP_CHECK_ARG(count <= (n_ - pos_) / sizeof(T), "checkpoint " << path_ << " is corrupted");
    std::vector<T> v(count);
    std::memcpy(v.data(), data_ + pos_, count * sizeof(T));
    pos_ += count * sizeof(T);
    return v;
  }
  std::string str() {
    const auto v = vec<char>();
    return {v.begin(), v.end()};
  }
  [[nodiscard]] bool at_end() const { return pos_ == n_; }

 private:
  void need(std::size_t k) const {
    BP_CHECK_ARG(n_ - pos_ >= k, "checkpoint " << path_ << " is truncated or corrupted");
  }
  const unsigned char* data_;
  std::size_t n_;
  std::size_t pos_ = 0;
  std::string path_;
};

// The verified payload of a checkpoint file.
std::vector<unsigned char> read_payload(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BP_CHECK_ARG(in.good(), "cannot open checkpoint " << path);
  const std::vector<unsigned char> file((std::istreambuf_iterator<char>(in)),
                                        std::istreambuf_iterator<char>());
  constexpr std::size_t kHeader = sizeof(kMagic) + sizeof(uint32_t) + sizeof(uint64_t);
  BP_CHECK_ARG(file.size() >= kHeader && std::memcmp(file.data(), kMagic, sizeof(kMagic)) == 0,
               path << " is not a batchpole checkpoint");
  uint32_t version = 0;
  uint64_t length = 0;
  std::memcpy(&version, file.data() + sizeof(kMagic), sizeof(version));
  std::memcpy(&length, file.data() + sizeof(kMagic) + sizeof(version), sizeof(length));
  BP_CHECK_ARG(version == kFormatVersion, "checkpoint " << path << " has format version " << version
                                                        << "; this batchpole reads "
                                                        << kFormatVersion);
  BP_CHECK_ARG(
      length <= file.size() - kHeader && file.size() - kHeader - length == sizeof(uint64_t),
      "checkpoint " << path << " is truncated (" << file.size() << " bytes)");
  uint64_t stored = 0;
  std::memcpy(&stored, file.data() + kHeader + length, sizeof(stored));
  BP_CHECK_ARG(stored == fnv1a(file.data(), kHeader + length),
               "checkpoint " << path << " is corrupted (checksum mismatch)");
  return {file.begin() + static_cast<std::ptrdiff_t>(kHeader),
          file.begin() + static_cast<std::ptrdiff_t>(kHeader + length)};
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
  Writer w;
  w.str(config_to_json(config_));
  w.str(extra_json);
  w.vec(model_->get_parameters());
  w.pod<uint32_t>(static_cast<uint32_t>(model_->optimizer_count()));
  for (int i = 0; i < model_->optimizer_count(); ++i) {
    for (int64_t k = 0; k < agents(); ++k) {
      const auto state = model_->get_optimizer_state(i, k);
      w.pod<int64_t>(state.steps);
      w.vec(state.moments);
    }
  }
  const EnvState s = env_->get_state();
  w.pod<uint8_t>(static_cast<uint8_t>(env_->precision()));
  w.vec(env_->seeds());
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
  const auto payload = read_payload(path);
  Reader r(payload.data(), payload.size(), path);
  const TrainConfig config = config_from_json(r.str());
  if (extra_json != nullptr) *extra_json = r.str();
  return config;
}

std::vector<float> Trainer::read_checkpoint_parameters(const std::string& path) {
  const auto payload = read_payload(path);
  Reader r(payload.data(), payload.size(), path);
  const TrainConfig saved = config_from_json(r.str());
  (void)r.str();
  auto params = r.vec<float>();
  BP_CHECK_ARG(static_cast<int64_t>(params.size()) ==
                   saved.agents * model_config_for(saved).parameter_count(),
               "checkpoint " << path << " holds " << params.size()
                             << " parameters, which does not fit its configuration");
  return params;
}

void Trainer::restore_checkpoint(const std::string& path) {
  const auto payload = read_payload(path);
  Reader r(payload.data(), payload.size(), path);
  const TrainConfig saved = config_from_json(r.str());
  (void)r.str();  // the caller's extra JSON
  BP_CHECK_ARG(config_to_json(saved) == config_to_json(config_),
               "checkpoint " << path << " was written with another configuration:\n"
                             << config_to_json(saved) << "\nthis trainer has:\n"
                             << config_to_json(config_));
  const auto params = r.vec<float>();
  const int64_t k_agents = agents();
  BP_CHECK_ARG(static_cast<int64_t>(params.size()) == k_agents * model_->parameter_count(),
               "checkpoint " << path << " holds " << params.size()
                             << " parameters; this architecture has "
                             << k_agents * model_->parameter_count());
  const auto optimizers = r.pod<uint32_t>();
  BP_CHECK_ARG(static_cast<int>(optimizers) == model_->optimizer_count(),
               "checkpoint " << path << " holds " << optimizers << " optimisers, expected "
                             << model_->optimizer_count());
  std::vector<PolicyValueModel::OptimizerState> opt(optimizers * static_cast<std::size_t>(k_agents));
  for (auto& o : opt) {
    o.steps = r.pod<int64_t>();
    o.moments = r.vec<float>();
  }
  const auto precision = static_cast<Precision>(r.pod<uint8_t>());
  BP_CHECK_ARG(precision == env_->precision(), "checkpoint " << path << " precision mismatch");
  const auto seeds = r.vec<uint64_t>();
  BP_CHECK_ARG(static_cast<int64_t>(seeds.size()) == k_agents,
               "checkpoint " << path << " holds " << seeds.size() << " seeds for " << k_agents
                             << " agents");
  const auto steps_taken = r.pod<uint64_t>();
  EnvState s;
  for (auto* v : {&s.x, &s.x_dot, &s.theta, &s.theta_dot}) *v = r.vec<double>();
  s.length = r.vec<int32_t>();
  s.ret = r.vec<float>();
  s.episode = r.vec<uint32_t>();
  const auto updates = r.pod<int64_t>();
  std::vector<AgentProgress> progress(static_cast<std::size_t>(k_agents));
  for (AgentProgress& a : progress) {
    a.updates = r.pod<int64_t>();
    a.env_steps = r.pod<int64_t>();
    a.episodes = r.pod<int64_t>();
    a.act_steps = r.pod<uint64_t>();
    a.active = r.pod<uint8_t>() != 0;
    const auto recent = r.vec<EpisodeTally>();
    a.recent.restore(std::deque<EpisodeTally>(recent.begin(), recent.end()));
  }
  std::vector<std::vector<unsigned char>> own_state;
  if (!r.at_end()) {
    for (int64_t k = 0; k < k_agents; ++k) own_state.push_back(r.vec<unsigned char>());
  }
  BP_CHECK_ARG(r.at_end(), "checkpoint " << path << " has trailing bytes");
  // The learner checks its state before it takes it; the trainer changes nothing until then.
  restore_learner_state(own_state);

  // Everything read and checked: only now change the trainer.
  model_->set_parameters(params);
  for (uint32_t i = 0; i < optimizers; ++i) {
    for (int64_t k = 0; k < k_agents; ++k) {
      model_->set_optimizer_state(static_cast<int>(i), opt[i * k_agents + k], k);
    }
  }
  env_->restore(seeds, steps_taken, s);
  updates_ = updates;
  for (std::size_t k = 0; k < progress.size(); ++k) {
    progress[k].seed = agents_[k].seed;
    agents_[k] = std::move(progress[k]);
  }
  apply_active();
}

}  // namespace batchpole
