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

Result<std::vector<int32_t>> QuantizeBias(const float* bias, size_t out, float input_scale,
                                          const std::vector<float>& weight_scales) {
  if (weight_scales.size() != out) {
    return InvalidArgument("bias quantization: " + std::to_string(weight_scales.size()) + " weight scales for " +
                           std::to_string(out) + " outputs");
  }
  if (!(input_scale > 0.f) || !std::isfinite(input_scale)) {
    return InvalidArgument("bias quantization: input scale " + std::to_string(input_scale) +
                           " is not a positive finite number");
  }
  std::vector<int32_t> q(out);
  for (size_t o = 0; o < out; ++o) {
    double acc_scale = static_cast<double>(input_scale) * weight_scales[o];
    double v = RoundHalfEven(static_cast<double>(bias[o]) / acc_scale);
    if (!(acc_scale > 0.0) || !(std::fabs(v) <= 2147483647.0)) {
      return InvalidArgument("bias quantization: output " + std::to_string(o) + " bias " + std::to_string(bias[o]) +
                             " does not fit int32 at accumulator scale " + std::to_string(acc_scale));
    }
    q[o] = static_cast<int32_t>(v);
  }
  return q;
}

}  // namespace dtrn::quant
