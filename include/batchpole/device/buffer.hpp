// Move-only typed memory on a device, with explicit host copies.
#pragma once

#include <cstddef>
#if __cplusplus >= 202002L
#include <span>
#endif
#include <utility>
#include <vector>

#include "batchpole/core/checked.hpp"
#include "batchpole/device/device.hpp"

namespace batchpole {

template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Device& device, std::size_t size)
      : device_(&device),
        // Saturated, a size too large for 64 bits is refused by allocate() instead of wrapping.
        data_(size == 0 ? nullptr : static_cast<T*>(device.allocate(checked_mul(size, sizeof(T))))),
        size_(size) {}
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept
      : device_(other.device_),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      device_ = other.device_;
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~Buffer() { release(); }

  [[nodiscard]] T* data() { return data_; }
  [[nodiscard]] const T* data() const { return data_; }
  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] std::size_t bytes() const { return size_ * sizeof(T); }

  [[nodiscard]] std::vector<T> to_host() const {
    std::vector<T> out(size_);
    if (size_ > 0) device_->copy_to_host(out.data(), data_, bytes());
    return out;
  }
  void from_host(const T* src, std::size_t n) {
    BP_CHECK_ARG(n == size_, "buffer of " << size_ << " elements given " << n);
    if (size_ > 0) device_->copy_from_host(data_, src, bytes());
  }
#if __cplusplus >= 202002L  // the CUDA files are C++17 (see cmake/BatchpoleCuda.cmake)
  void from_host(std::span<const T> src) { from_host(src.data(), src.size()); }
#endif
  void zero() {
    if (size_ > 0) device_->fill_zero(data_, bytes());
  }

 private:
  void release() noexcept {
    if (data_ != nullptr) device_->deallocate(data_);
    data_ = nullptr;
  }

  Device* device_ = nullptr;
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

// Blocks of `block` values in device memory for Device::copy_parameters, one block per step of
// a run: outside a recorded run (Device::run_recorded) every step rewrites the first block;
// inside one the run's i-th step (counted from rewind()) takes block i, so that the run never
// copies parameters to one place twice and can replay. Blocks outgrown stay allocated while the
// slots live, as held operations may name them.
template <class T>
class ParameterSlots {
 public:
  ParameterSlots() = default;
  ParameterSlots(Device& device, std::size_t block)
      : device_(&device), block_(block), blocks_(device, block) {}

  [[nodiscard]] bool empty() const { return block_ == 0; }
  void rewind() { next_ = 0; }
  // The next step's block.
  [[nodiscard]] T* next() {
    if (!device_->plan().graphs || !device_->recording()) return blocks_.data();
    const std::size_t slots = blocks_.size() / block_;
    if (next_ >= slots) {
      Buffer<T> grown(*device_, 2 * slots * block_);
      outgrown_.push_back(std::move(blocks_));
      blocks_ = std::move(grown);
    }
    return blocks_.data() + block_ * next_++;
  }

 private:
  Device* device_ = nullptr;
  std::size_t block_ = 0;
  Buffer<T> blocks_;
  std::vector<Buffer<T>> outgrown_;
  std::size_t next_ = 0;
};

}  // namespace batchpole
