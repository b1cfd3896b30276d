#include "linear_sim.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "weights.h"

namespace dtrn::quant {

int8_t QuantizeValue(float x, const ActivationParams& p) {
  double q = RoundHalfEven(static_cast<double>(x) / p.scale) + p.zero_point;
  return static_cast<int8_t>(std::clamp(q, -128.0, 127.0));
}

void SimulateInt8Linear(const Int8LinearParams& p, const float* x, size_t rows, float* y) {
  std::vector<int32_t> xq(p.in);
  const int32_t qmin = p.relu ? std::max(-128, p.output.zero_point) : -128;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t i = 0; i < p.in; ++i) xq[i] = QuantizeValue(x[r * p.in + i], p.input);
    for (size_t o = 0; o < p.out; ++o) {
      const int8_t* w = p.weight + o * p.in;
      int64_t acc = p.bias[o];
      for (size_t i = 0; i < p.in; ++i) acc += static_cast<int64_t>(xq[i] - p.input.zero_point) * w[i];
      const float requant = p.input.scale * p.weight_scales[o] / p.output.scale;
      const float v = std::nearbyint(static_cast<float>(acc) * requant) + static_cast<float>(p.output.zero_point);
      const int32_t q = static_cast<int32_t>(std::clamp(v, static_cast<float>(qmin), 127.f));
      y[r * p.out + o] = p.output.scale * static_cast<float>(q - p.output.zero_point);
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
