// Shared by the benchmark files: one backend per device for the whole program.
#pragma once

#include <cstdint>
#include <memory>

#include "batchpole/backend.hpp"

namespace batchpole::bench {

// Argument 0: the CPU; 1: the GPU, or nullptr where none is usable (the case then skips).
inline Backend* backend_for(int64_t device) {
  static std::unique_ptr<Backend> cpu;
  static std::unique_ptr<Backend> gpu;
  if (device == 0) {
    if (!cpu) cpu = make_backend({DeviceRequest::parse("cpu")});
    return cpu.get();
  }
  if (cuda_device_count() == 0) return nullptr;
  if (!gpu) gpu = make_backend({DeviceRequest::parse("cuda")});
  return gpu.get();
}

}  // namespace batchpole::bench
