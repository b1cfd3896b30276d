#include "linear_sim.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "weights.h"

namespace dtrn::quant {

void SimulateInt8Linear(const Int8LinearParams& p, const float* x, size_t rows, float* y) {
  std::vector<int32_t> q(p.in);
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * p.in;
    float lo = 0.f, hi = 0.f;
    for (size_t i = 0; i < p.in; ++i) lo = std::min(lo, xr[i]), hi = std::max(hi, xr[i]);
    float s = 1.f;
    int32_t zp = 0;
    if (hi != lo) {
      s = (hi - lo) / 255.f;
      const float inv = 1.f / s;
      zp = std::clamp(static_cast<int32_t>(std::nearbyint(-lo * inv)), 0, 255);
      for (size_t i = 0; i < p.in; ++i)
        q[i] = std::clamp(static_cast<int32_t>(std::nearbyint(xr[i] * inv)) + zp, 0, 255);
    } else {
      std::fill(q.begin(), q.end(), 0);
    }
    for (size_t o = 0; o < p.out; ++o) {
      const int8_t* w = p.weight + o * p.in;
      int32_t acc = 0, wsum = 0;
      for (size_t i = 0; i < p.in; ++i) acc += q[i] * w[i], wsum += w[i];
      float v = std::fma(static_cast<float>(acc - zp * wsum), s * p.weight_scales[o], p.bias ? p.bias[o] : 0.f);
      if (p.relu) v = v > 0.f ? v : 0.f;
      y[r * p.out + o] = v;
    }
  }
}

double SqnrDb(const float* ref, const float* test, size_t n) {
  double s = 0, e = 0;
  for (size_t i = 0; i < n; ++i) {
    s += static_cast<double>(ref[i]) * ref[i];
    double d = static_cast<double>(ref[i]) - test[i];
    e += d * d;
  }
  if (e == 0) return std::numeric_limits<double>::infinity();
  if (s == 0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(s / e);
}

}  // namespace dtrn::quant
