#include "weights.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace dtrn::quant {

double RoundHalfEven(double x) {
  double f = std::floor(x);
  double diff = x - f;
  if (diff > 0.5) return f + 1.0;
  if (diff < 0.5) return f;
  return std::fmod(f, 2.0) == 0.0 ? f : f + 1.0;
}

RowQuantized QuantizeRows(const float* data, size_t rows, size_t cols) {
  RowQuantized out;
  out.q.resize(rows * cols);
  out.scales.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    const float* row = data + r * cols;
    float max_abs = 0.f;
    for (size_t c = 0; c < cols; ++c) max_abs = std::max(max_abs, std::fabs(row[c]));
    float scale = max_abs > 0.f ? max_abs / 127.f : 1.f;
    out.scales[r] = scale;
    for (size_t c = 0; c < cols; ++c) {
      double q = RoundHalfEven(static_cast<double>(row[c]) / scale);
      out.q[r * cols + c] = static_cast<int8_t>(std::clamp(q, -127.0, 127.0));
    }
  }
  return out;
}

}  // namespace dtrn::quant
