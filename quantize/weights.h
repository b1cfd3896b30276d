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

}  // namespace dtrn::quant
