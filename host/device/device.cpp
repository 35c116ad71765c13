// The parts of Device that every device shares: the memory check, the counting, the default
// task runner and the ownership of the operations.
#include "batchpole/device/device.hpp"

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
  count_op();
  count_sync();
  do_copy_to_host(dst, src, bytes);
}

void Device::copy_to_host(const std::vector<HostCopy>& copies) {
  if (copies.empty()) return;
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
  count_op();
  do_copy_from_host(dst, src, bytes);
}

void Device::copy_on_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  count_op();
  do_copy_on_device(dst, src, bytes);
}

void Device::copy_rows_on_device(void* dst, std::size_t dst_pitch, const void* src,
                                 std::size_t src_pitch, std::size_t width, std::size_t rows) {
  if (width == 0 || rows == 0) return;
  BP_CHECK_ARG(width <= dst_pitch && width <= src_pitch,
               "copy_rows_on_device: rows of " << width << " bytes but pitches " << dst_pitch
                                               << " and " << src_pitch);
  count_op();
  do_copy_rows_on_device(dst, dst_pitch, src, src_pitch, width, rows);
}

void Device::fill_zero(void* ptr, std::size_t bytes) {
  if (bytes == 0) return;
  count_op();
  do_fill_zero(ptr, bytes);
}

void Device::synchronize() {
  count_sync();
  do_synchronize();
}

void Device::check_errors() {
  count_sync();
  do_check_errors();
}

void Device::run_tasks(int64_t tasks, const std::function<void(int64_t, int)>& body) {
  for (int64_t t = 0; t < tasks; ++t) body(t, 0);
}

}  // namespace batchpole
