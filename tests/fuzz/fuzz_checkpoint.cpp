// libFuzzer target: the checkpoint reader. The first byte of an input chooses what the rest is:
// even, a whole file as it lies on disk; odd, a payload that the target wraps in a valid header
// and checksum, so that the fuzzer reaches past the checksum into the fields (what a buggy or
// hostile writer produces). The reader must refuse with batchpole::Error or accept; any other
// exception, a crash or a sanitizer report is a finding. An accepted checkpoint of a small
// configuration is also restored into a trainer.
//
// The input goes to the reader through a file in memory (memfd), since the reader takes paths.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "batchpole/io/config_json.hpp"
#include "batchpole/rl/trainer.hpp"

namespace {

using batchpole::Error;

uint64_t fnv1a(const std::vector<unsigned char>& b) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : b) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::vector<unsigned char> envelope(const uint8_t* payload, std::size_t n) {
  std::vector<unsigned char> b = {'B', 'P', 'C', 'K', 'P', 'T', '\r', '\n'};
  const uint32_t version = 1;
  const uint64_t length = n;
  b.insert(b.end(), reinterpret_cast<const unsigned char*>(&version),
           reinterpret_cast<const unsigned char*>(&version) + sizeof(version));
  b.insert(b.end(), reinterpret_cast<const unsigned char*>(&length),
           reinterpret_cast<const unsigned char*>(&length) + sizeof(length));
  b.insert(b.end(), payload, payload + n);
  const uint64_t h = fnv1a(b);
  b.insert(b.end(), reinterpret_cast<const unsigned char*>(&h),
           reinterpret_cast<const unsigned char*>(&h) + sizeof(h));
  return b;
}

batchpole::Device& device() {
  static const std::unique_ptr<batchpole::Device> d = [] {
    batchpole::DeviceOptions o;
    o.device = batchpole::DeviceRequest::parse("cpu");
    o.threads = 1;
    return batchpole::make_device(o);
  }();
  return *d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const int fd = memfd_create("checkpoint", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0 || size == 0) return 0;
  const std::vector<unsigned char> file = (data[0] & 1U) != 0
                                              ? envelope(data + 1, size - 1)
                                              : std::vector<unsigned char>(data + 1, data + size);
  if (ftruncate(fd, 0) != 0 ||
      pwrite(fd, file.data(), file.size(), 0) != static_cast<ssize_t>(file.size())) {
    return 0;
  }
  batchpole::TrainConfig config;
  try {
    config = batchpole::Trainer::read_checkpoint_config(path);
    (void)batchpole::Trainer::read_checkpoint_parameters(path);
  } catch (const Error&) {
    return 0;
  }
  // Accepted: restore it, where the configuration is small enough to build quickly.
  if (config.envs > 64 || config.hidden > 64 || config.n_steps > 64 ||
      config.env.max_episode_steps > 1000) {
    return 0;
  }
  static std::map<std::string, std::unique_ptr<batchpole::Trainer>> trainers;
  auto& t = trainers[batchpole::config_to_json(config)];
  try {
    if (t == nullptr) t = std::make_unique<batchpole::Trainer>(device(), config);
    t->restore_checkpoint(path);
    (void)t->update();
  } catch (const Error&) {
  }
  t.reset();  // restored ones are not reused (a refused restore leaves one as it was)
  return 0;
}
