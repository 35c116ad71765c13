// The parts of Device that every device shares: the memory check, the counting, the default
// task runner and the ownership of the operations.
#include "batchpole/device/device.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "batchpole/env/env_ops.hpp"
#include "batchpole/nn/blas.hpp"
#include "batchpole/nn/nn_ops.hpp"
#include "batchpole/rl/rl_ops.hpp"

namespace batchpole {

namespace {

std::string mib(std::size_t bytes) {
  std::ostringstream os;
  os.precision(1);
  os << std::fixed << static_cast<double>(bytes) / (1024.0 * 1024.0) << " MiB";
  return os.str();
}

}  // namespace

std::string to_string(DeviceKind kind) { return kind == DeviceKind::kCpu ? "cpu" : "cuda"; }

DeviceRequest DeviceRequest::parse(const std::string& s) {
  if (s == "auto") return {Choice::kAuto};
  if (s == "cpu") return {Choice::kCpu};
  if (s == "cuda" || s == "gpu") return {Choice::kCuda};
  BP_CHECK_ARG(false, "unknown device '" << s << "' (expected cpu, cuda or auto)");
  return {};
}

Device::Device() = default;
Device::~Device() = default;

void Device::install(std::unique_ptr<Blas> blas, std::unique_ptr<NnOps> nn,
                     std::unique_ptr<RlOps> rl, std::unique_ptr<EnvOps> env,
                     const DevicePlan& plan) {
  blas_ = std::move(blas);
  nn_ = std::move(nn);
  rl_ = std::move(rl);
  env_ = std::move(env);
  plan_ = plan;
}

void Device::uninstall() noexcept {
  env_.reset();
  rl_.reset();
  nn_.reset();
  blas_.reset();
}

void* Device::allocate(std::size_t bytes) {
  const std::size_t have = available_memory();
  BP_REQUIRE(bytes <= have, kOutOfMemory,
             "cannot allocate " << mib(bytes) << " (" << bytes << " bytes) on " << description()
                                << ": " << mib(have) << " available");
  return do_allocate(bytes);
}

void Device::copy_to_host(void* dst, const void* src, std::size_t bytes) {
  refuse_wait("a copy to the host");
  count_op();
  count_sync();
  do_copy_to_host(dst, src, bytes);
}

void Device::copy_to_host(const std::vector<HostCopy>& copies) {
  if (copies.empty()) return;
  refuse_wait("a copy to the host");
  count_sync();
  for (std::size_t i = 0; i < copies.size(); ++i) {
    const HostCopy& c = copies[i];
    count_op();
    if (i + 1 < copies.size()) {
      do_copy_to_host_queued(c.dst, c.src, c.bytes);
    } else {
      do_copy_to_host(c.dst, c.src, c.bytes);
    }
  }
}

void Device::copy_from_host(void* dst, const void* src, std::size_t bytes) {
  if (held_ == nullptr) {
    count_op();
    do_copy_from_host(dst, src, bytes);
    return;
  }
  hold_host_bytes(dst, src, bytes, false);
}

void Device::copy_parameters(void* dst, const void* src, std::size_t bytes) {
  if (held_ == nullptr) {
    copy_from_host(dst, src, bytes);
    return;
  }
  hold_host_bytes(dst, src, bytes, true);
}

// A held copy from the host: the bytes are copied now (the caller may reuse its memory). A
// plain copy's bytes are part of its fingerprint, so that a replay copies these very bytes; a
// parameter copy's are not (only where and how many).
void Device::hold_host_bytes(void* dst, const void* src, std::size_t bytes, bool parameter) {
  const char* name = parameter ? "copy_parameters" : "copy_from_host";
  HeldOp op;
  op.dst = dst;
  op.bytes.assign(static_cast<const unsigned char*>(src),
                  static_cast<const unsigned char*>(src) + bytes);
  op.parameter = parameter;
  uint64_t h = fingerprint_of(name);
  h = fingerprint_of(&dst, sizeof dst, h);
  h = parameter ? fingerprint_of(&bytes, sizeof bytes, h) : fingerprint_of(src, bytes, h);
  held_->fingerprints.push_back(h);
  held_->names.push_back(name);
  held_->ops.push_back(std::move(op));
}

void Device::copy_on_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  enqueue(
      "copy_on_device",
      [this](void* d, const void* s, std::size_t b) { do_copy_on_device(d, s, b); }, dst, src,
      bytes);
}

void Device::copy_rows_on_device(void* dst, std::size_t dst_pitch, const void* src,
                                 std::size_t src_pitch, std::size_t width, std::size_t rows) {
  if (width == 0 || rows == 0) return;
  BP_CHECK_ARG(width <= dst_pitch && width <= src_pitch, "copy_rows_on_device: rows of "
                                                             << width << " bytes but pitches "
                                                             << dst_pitch << " and " << src_pitch);
  enqueue(
      "copy_rows_on_device",
      [this](void* d, std::size_t dp, const void* s, std::size_t sp, std::size_t w, std::size_t r) {
        do_copy_rows_on_device(d, dp, s, sp, w, r);
      },
      dst, dst_pitch, src, src_pitch, width, rows);
}

void Device::fill_zero(void* ptr, std::size_t bytes) {
  if (bytes == 0) return;
  enqueue(
      "fill_zero", [this](void* p, std::size_t b) { do_fill_zero(p, b); }, ptr, bytes);
}

void Device::synchronize() {
  refuse_wait("a synchronisation");
  count_sync();
  do_synchronize();
}

void Device::check_errors() {
  refuse_wait("a synchronisation");
  count_sync();
  do_check_errors();
}

// ---- recording ----

bool Device::exact_fingerprints() {
#ifdef BATCHPOLE_CLEAR_PADDING
  return true;
#else
  return false;
#endif
}

Recording::Recording() = default;
Recording::~Recording() = default;

uint64_t Device::fingerprint_of(const char* name) {
  return fingerprint_of(name, std::char_traits<char>::length(name), 0xcbf29ce484222325ULL);
}

// FNV-1a over the bytes, 64 bits.
uint64_t Device::fingerprint_of(const void* bytes, std::size_t n, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

void Device::hold(const char* name, uint64_t fingerprint, std::function<void()> launch) {
  held_->fingerprints.push_back(fingerprint);
  held_->names.push_back(name);
  HeldOp op;
  op.launch = std::move(launch);
  held_->ops.push_back(std::move(op));
}

void Device::refuse_wait(const char* what) const {
  BP_REQUIRE(held_ == nullptr, kRuntime,
             what << " inside a recorded sequence of operations: it would read what has not run");
}

bool Device::defer_deallocation(void* ptr) noexcept {
  try {
    held_->frees.push_back(ptr);
    return true;
  } catch (...) {
    return false;  // no room to remember it: freed now (its operations may not have run)
  }
}

void Device::run_held(HeldOp& op) {
  if (op.launch) {
    op.launch();
  } else {
    do_copy_from_host(op.dst, op.bytes.data(), op.bytes.size());
  }
}

std::unique_ptr<Recording::Native> Device::do_record(std::vector<HeldOp>& ops) {
  auto native = std::make_unique<HeldOps>();
  for (HeldOp& op : ops) run_held(op);
  native->ops = std::move(ops);
  return native;
}

void Device::do_replay(Recording::Native& native) {
  for (HeldOp& op : static_cast<HeldOps&>(native).ops) run_held(op);
}

// Where a run's operations first differ from those of the sequence last run (a developer's aid:
// set BATCHPOLE_DEBUG_RECORDING to see why an update does not replay).
void Device::report_difference(const Recording& recording, const Held& now) {
  const Recording::Entry* last = nullptr;
  for (const Recording::Entry& e : recording.entries_) {
    if (last == nullptr || e.last_run > last->last_run) last = &e;
  }
  if (last == nullptr) {
    std::fprintf(stderr, "batchpole: recording: %zu operations, none seen before\n",
                 now.fingerprints.size());
    return;
  }
  const std::size_t n = std::min(last->fingerprints.size(), now.fingerprints.size());
  std::size_t i = 0;
  while (i < n && last->fingerprints[i] == now.fingerprints[i]) ++i;
  if (i < n) {
    std::fprintf(stderr, "batchpole: recording: operation %zu (%s, was %s) differs\n", i,
                 now.names[i], last->names[i]);
  } else {
    std::fprintf(stderr, "batchpole: recording: %zu operations, were %zu\n",
                 now.fingerprints.size(), last->fingerprints.size());
  }
}

bool Device::parameters_hoistable(const std::vector<HeldOp>& ops) {
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  for (const HeldOp& op : ops) {
    if (!op.parameter) continue;
    const auto begin = reinterpret_cast<uintptr_t>(op.dst);
    ranges.emplace_back(begin, begin + op.bytes.size());
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) return false;
  }
  return true;
}

void Device::run_recorded(Recording& recording, const std::function<void()>& work) {
  if (!plan_.graphs || graphs_failed_) {
    work();
    return;
  }
  BP_REQUIRE(held_ == nullptr, kRuntime, "run_recorded: recorded sequences do not nest");
  Held held(*this);  // destroyed last: what was deallocated meanwhile goes back then
  held_ = &held;
  try {
    work();
  } catch (...) {
    // What was asked for before the error runs, as it would have unrecorded (an error among
    // those operations is the earlier one, and wins).
    held_ = nullptr;
    for (HeldOp& op : held.ops) {
      count_op();
      run_held(op);
    }
    throw;
  }
  held_ = nullptr;
  ++recording.runs_;
  Recording::Entry* entry = nullptr;
  for (Recording::Entry& e : recording.entries_) {
    if (e.fingerprints == held.fingerprints) entry = &e;
  }
  if (entry == nullptr) {
    if (std::getenv("BATCHPOLE_DEBUG_RECORDING") != nullptr) report_difference(recording, held);
    // Remember it, giving up the sequence run least recently when full.
    auto& entries = recording.entries_;
    if (entries.size() >= Recording::kKept) {
      entries.erase(std::min_element(entries.begin(), entries.end(),
                                     [](const Recording::Entry& a, const Recording::Entry& b) {
                                       return a.last_run < b.last_run;
                                     }));
    }
    Recording::Entry fresh;
    fresh.fingerprints = std::move(held.fingerprints);
    fresh.names = std::move(held.names);
    fresh.last_run = recording.runs_;
    entries.push_back(std::move(fresh));
  } else {
    entry->last_run = recording.runs_;
  }
  if (entry == nullptr || !parameters_hoistable(held.ops)) {
    for (HeldOp& op : held.ops) {
      count_op();
      run_held(op);
    }
    return;
  }
  // The parameters first, as the copies queued before a graph's launch (one copy for each run
  // of adjacent ones: an optimiser's slots, step after step); then the rest as one.
  std::vector<HeldOp> ops;
  std::vector<HeldOp> parameters;
  for (HeldOp& op : held.ops) (op.parameter ? parameters : ops).push_back(std::move(op));
  std::sort(parameters.begin(), parameters.end(),
            [](const HeldOp& a, const HeldOp& b) { return a.dst < b.dst; });
  for (std::size_t i = 0; i < parameters.size();) {
    HeldOp& copy = parameters[i];
    for (++i; i < parameters.size() &&
              parameters[i].dst == static_cast<unsigned char*>(copy.dst) + copy.bytes.size();
         ++i) {
      copy.bytes.insert(copy.bytes.end(), parameters[i].bytes.begin(), parameters[i].bytes.end());
    }
    count_op();
    run_held(copy);
  }
  if (ops.empty()) return;
  count_op();
  if (entry->native != nullptr) {
    do_replay(*entry->native);
    ++recording.replays_;
    return;
  }
  // Seen a second time: record it (the first ran as it was, warming up what the operations set
  // up on their first call).
  entry->native = do_record(ops);
  if (entry->native == nullptr) {
    graphs_failed_ = true;
  } else {
    ++recording.recordings_;
  }
}

void Device::run_tasks(int64_t tasks, const std::function<void(int64_t, int)>& body) {
  for (int64_t t = 0; t < tasks; ++t) body(t, 0);
}

}  // namespace batchpole
