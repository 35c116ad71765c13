// The device registry: make_device() and the CUDA plugin's loader. The CPU device is built in;
// the CUDA device comes from libbatchpole_cuda.so, looked for (first found wins)
//   1. at $BATCHPOLE_CUDA_PLUGIN ("off" or "" hides it),
//   2. beside the program or shared object that holds this library (bin/ in a build tree, the
//      Python package's folder),
//   3. in ../lib beside it (an installed bin/),
//   4. in the build tree and the install prefix this library was configured with,
//   5. by the dynamic loader's own search (LD_LIBRARY_PATH).
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include "batchpole/device/device.hpp"
#include "cpu/cpu_device.hpp"
#include "cuda_plugin.hpp"

namespace batchpole {

namespace {

namespace fs = std::filesystem;

constexpr const char* kPluginFile = "libbatchpole_cuda.so";

#ifdef BATCHPOLE_WITH_CUDA
constexpr bool kBuiltWithCuda = true;
#else
constexpr bool kBuiltWithCuda = false;
#endif

std::vector<std::string> plugin_candidates() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("BATCHPOLE_CUDA_PLUGIN"); env != nullptr) {
    const std::string v = env;
    if (v.empty() || v == "off") return {};
    return {v};
  }
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&cuda_status), &info) != 0 && info.dli_fname != nullptr) {
    std::error_code ec;
    const fs::path self = fs::canonical(info.dli_fname, ec);
    if (!ec) {
      paths.push_back((self.parent_path() / kPluginFile).string());
      paths.push_back((self.parent_path().parent_path() / "lib" / kPluginFile).string());
    }
  }
#ifdef BATCHPOLE_PLUGIN_BUILD_DIR
  paths.push_back(std::string(BATCHPOLE_PLUGIN_BUILD_DIR) + "/" + kPluginFile);
#endif
#ifdef BATCHPOLE_PLUGIN_INSTALL_DIR
  paths.push_back(std::string(BATCHPOLE_PLUGIN_INSTALL_DIR) + "/" + kPluginFile);
#endif
  return paths;
}

struct Plugin {
  const CudaPluginApi* api = nullptr;
  CudaStatus status;
};

Plugin load_plugin() {
  Plugin p;
  p.status.built = kBuiltWithCuda;
  const char* env = std::getenv("BATCHPOLE_CUDA_PLUGIN");
  const bool hidden = env != nullptr && (std::string(env).empty() || std::string(env) == "off");
  std::string tried;
  std::string path;
  for (const std::string& candidate : plugin_candidates()) {
    std::error_code ec;
    tried += (tried.empty() ? "" : ", ") + candidate;
    if (fs::exists(candidate, ec) || env != nullptr) {
      path = candidate;
      break;
    }
  }
  if (path.empty() && !hidden && kBuiltWithCuda) path = kPluginFile;  // the loader's search
  if (path.empty()) {
    p.status.reason =
        hidden ? "the CUDA plugin is turned off (BATCHPOLE_CUDA_PLUGIN=" + std::string(env) + ")"
        : kBuiltWithCuda
            ? "the CUDA plugin " + std::string(kPluginFile) + " was not found (looked at " + tried +
                  ")"
            : "this build of batchpole has no CUDA support (configure with -DBATCHPOLE_CUDA=ON "
              "on a machine with nvcc)";
    return p;
  }
  p.status.plugin = path;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    p.status.reason = "the CUDA plugin " + path +
                      " could not be loaded: " + (why != nullptr ? why : "unknown error") +
                      " (a CUDA 13 runtime with cuBLAS is needed; everything else runs on the CPU)";
    return p;
  }
  using Entry = const CudaPluginApi* (*)();
  auto* entry = reinterpret_cast<Entry>(dlsym(handle, "batchpole_cuda_plugin"));
  const CudaPluginApi* api = entry != nullptr ? entry() : nullptr;
  if (api == nullptr || api->abi != kCudaPluginAbi || api->version == nullptr ||
      std::string(api->version) != BATCHPOLE_VERSION) {
    p.status.reason = "the CUDA plugin " + path + " belongs to another build of batchpole";
    return p;  // the handle stays open: unloading code we may have called into is never safe
  }
  p.api = api;
  p.status.loaded = true;
  std::string error;
  const int count = api->device_count(&error);
  p.status.device_count = count;
  for (int i = 0; i < count; ++i) p.status.device_names.push_back(api->device_name(i));
  if (count == 0) {
    p.status.reason = error.empty() ? "no CUDA device found" : "no usable GPU: " + error;
  }
  return p;
}

const Plugin& plugin() {
  static const Plugin p = load_plugin();
  return p;
}

std::unique_ptr<Device> make_cuda_device(const DeviceOptions& options) {
  const Plugin& p = plugin();
  BP_REQUIRE(p.status.available(), kUnavailable, "CUDA was asked for, but " << p.status.reason);
  return p.api->make_device(options);
}

}  // namespace

const CudaStatus& cuda_status() { return plugin().status; }
bool cuda_compiled() { return cuda_status().loaded || cuda_status().built; }
int cuda_device_count() { return cuda_status().device_count; }
std::string cuda_device_name(int index) {
  const auto& names = cuda_status().device_names;
  return index >= 0 && index < static_cast<int>(names.size()) ? names[index] : "";
}

std::unique_ptr<Device> make_device(const DeviceOptions& options) {
  BP_CHECK_ARG(
      options.threads >= 0 && options.threads <= kMaxCpuThreads,
      "threads must be in [0, " << kMaxCpuThreads << "] (0 = all), got " << options.threads);
  if (options.plan) {
    const DevicePlan& p = *options.plan;
    BP_CHECK_ARG(p.chunk_rows >= 1 && p.shards >= 1 && p.shards <= 4096 && p.train_envs >= 1 &&
                     p.bench_env_envs >= 1 && p.bench_nn_batch >= 1 && p.bench_train_envs >= 1,
                 "a device plan needs positive sizes and 1 to 4096 shards");
  }
  switch (options.device.choice) {
    case DeviceRequest::Choice::kCpu:
      return std::make_unique<CpuDevice>(options.threads, options.plan.get());
    case DeviceRequest::Choice::kCuda:
      return make_cuda_device(options);
    case DeviceRequest::Choice::kAuto:
    default:
      if (cuda_device_count() > 0) return make_cuda_device(options);
      return std::make_unique<CpuDevice>(options.threads, options.plan.get());
  }
}

}  // namespace batchpole
