#include "activation.h"

#include <algorithm>
#include <cmath>

namespace dtrn::quant {

void RangeStats::Add(const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    double v = x[i];
    if (!std::isfinite(v)) {
      ++nonfinite;
      continue;
    }
    if (count == 0) {
      min = max = v;
    } else {
      min = std::min(min, v);
      max = std::max(max, v);
    }
    ++count;
  }
}

void RangeStats::Merge(const RangeStats& o) {
  if (o.count == 0) {
    nonfinite += o.nonfinite;
    return;
  }
  if (count == 0) {
    uint64_t nf = nonfinite;
    *this = o;
    nonfinite += nf;
    return;
  }
  min = std::min(min, o.min);
  max = std::max(max, o.max);
  count += o.count;
  nonfinite += o.nonfinite;
}

}  // namespace dtrn::quant
