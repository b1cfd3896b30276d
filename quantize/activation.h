// Calibration statistics of activations: the observed range of a tensor (what the
// converter's equalization reads; int8 layers quantize their inputs per row at run time,
// so no activation params are chosen here).
#pragma once

#include <cstddef>
#include <cstdint>

namespace dtrn::quant {

// Pass 1 of calibration: the observed range.
struct RangeStats {
  double min = 0, max = 0;
  uint64_t count = 0;      // finite values seen
  uint64_t nonfinite = 0;  // NaN / Inf values seen (not in min/max)
  void Add(const float* x, size_t n);
  void Merge(const RangeStats& other);
};

}  // namespace dtrn::quant
