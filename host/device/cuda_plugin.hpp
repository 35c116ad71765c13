// The interface between the library and its CUDA plugin (libbatchpole_cuda.so, built from
// kernels/): the one symbol the plugin exports, a table of functions. The library loads the
// plugin with dlopen on first use (host/device/registry.cpp), so that programs start on
// machines without CUDA libraries; both sides are built from the same sources and compiler,
// which the version string checks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "batchpole/device/device.hpp"

namespace batchpole {

inline constexpr uint32_t kCudaPluginAbi = 1;

struct CudaPluginApi {
  uint32_t abi = kCudaPluginAbi;
  const char* version = nullptr;  // BATCHPOLE_VERSION of the build that made the plugin
  // GPUs the driver reports. On failure 0, with the CUDA error's name and text in *error.
  int (*device_count)(std::string* error) = nullptr;
  std::string (*device_name)(int index) = nullptr;
  // Throws batchpole::Error (kUnavailable when the device cannot be used).
  std::unique_ptr<Device> (*make_device)(const DeviceOptions& options) = nullptr;
};

}  // namespace batchpole

// Defined by the plugin (kernels/cuda_device.cu).
extern "C" const batchpole::CudaPluginApi* batchpole_cuda_plugin();
