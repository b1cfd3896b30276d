// Buffer<T>: the runtime's scratch arrays. Grow-only, 64-aligned, never throws (Reserve
// returns nullptr when out of memory), with 64 zeroed bytes of readable padding after any
// size it was grown to (covers XNN_EXTRA_BYTES, which XNNPACK may read past an input).
// Sessions reserve every buffer at creation for the largest shapes they will run (a
// candidate tile, L positions), so scoring never allocates.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "dtrn/status.h"

namespace dtrn {

template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : p_(o.p_), cap_(o.cap_) { o.p_ = nullptr, o.cap_ = 0; }
  ~Buffer() { std::free(p_); }

  // Room for n elements; the data, or nullptr when out of memory. Contents are not kept
  // across growth.
  T* Reserve(size_t n) {
    if (n <= cap_ && p_ != nullptr) return p_;
    const size_t bytes = (n * sizeof(T) + 64 + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (p == nullptr) return nullptr;
    std::memset(p, 0, bytes);
    std::free(p_);
    p_ = static_cast<T*>(p);
    cap_ = n;
    return p_;
  }
  T* data() const { return p_; }
  size_t capacity() const { return cap_; }

 private:
  T* p_ = nullptr;
  size_t cap_ = 0;
};

// The status of a failed Reserve: `what` names the activation or layer.
inline Status OutOfMemory(const std::string& what) { return Internal("out of memory (" + what + ")"); }

}  // namespace dtrn
