// Symmetric int8 quantization with one scale per row: Linear weights (per output
// channel) and embedding tables (per row) use the same rule, as the spec fixes:
// scale = max|row| / 127 (a zero row gets scale 1), q = round_half_even(w / scale).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dtrn/status.h"

namespace dtrn::quant {

struct RowQuantized {
  std::vector<int8_t> q;      // rows x cols, row-major, values in [-127, 127]
  std::vector<float> scales;  // one per row
};

// Round half to even (banker's rounding), independent of the FPU rounding mode.
double RoundHalfEven(double x);

// Quantizes a rows x cols row-major matrix, one symmetric scale per row.
RowQuantized QuantizeRows(const float* data, size_t rows, size_t cols);

// int32 bias in accumulator units: round_half_even(bias[o] / (input_scale * weight_scale[o])).
// Fails (naming the row) when a value does not fit in int32 or the scales are not positive.
Result<std::vector<int32_t>> QuantizeBias(const float* bias, size_t out, float input_scale,
                                          const std::vector<float>& weight_scales);

}  // namespace dtrn::quant
