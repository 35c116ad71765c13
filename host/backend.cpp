#include "batchpole/backend.hpp"

#include "cpu_backend.hpp"
#include "cuda_entry.hpp"

namespace batchpole {

DeviceRequest DeviceRequest::parse(const std::string& s) {
  if (s == "auto") return {Choice::kAuto};
  if (s == "cpu") return {Choice::kCpu};
  if (s == "cuda" || s == "gpu") return {Choice::kCuda};
  BP_CHECK_ARG(false, "unknown device '" << s << "' (expected cpu, cuda or auto)");
  return {};
}

std::string to_string(DeviceKind kind) { return kind == DeviceKind::kCpu ? "cpu" : "cuda"; }

void Backend::run_tasks(int64_t tasks, const std::function<void(int64_t, int)>& body) {
  for (int64_t t = 0; t < tasks; ++t) body(t, 0);
}

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
  BP_CHECK_ARG(options.threads >= 0, "threads must be >= 0 (0 = all), got " << options.threads);
  switch (options.device.choice) {
    case DeviceRequest::Choice::kCpu:
      return std::make_unique<CpuBackend>(options.threads);
    case DeviceRequest::Choice::kCuda:
      return make_cuda_backend(options);
    case DeviceRequest::Choice::kAuto:
    default:
      if (cuda_device_count() > 0) return make_cuda_backend(options);
      return std::make_unique<CpuBackend>(options.threads);
  }
}

}  // namespace batchpole
