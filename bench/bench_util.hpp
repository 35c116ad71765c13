// Shared by the benchmark files: one device object per device for the whole program.
#pragma once

#include <cstdint>
#include <memory>

#include "batchpole/device/device.hpp"

namespace batchpole::bench {

// Argument 0: the CPU; 1: the GPU, or nullptr where none is usable (the case then skips).
inline Device* device_for(int64_t device) {
  static std::unique_ptr<Device> cpu;
  static std::unique_ptr<Device> gpu;
  if (device == 0) {
    if (!cpu) cpu = make_device({DeviceRequest::parse("cpu")});
    return cpu.get();
  }
  if (cuda_device_count() == 0) return nullptr;
  if (!gpu) gpu = make_device({DeviceRequest::parse("cuda")});
  return gpu.get();
}

}  // namespace batchpole::bench
