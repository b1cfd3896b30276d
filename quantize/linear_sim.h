// Simulates one int8 Linear the way the runtime runs it (runtime/src/int8_kernels.h): each
// input row quantized to uint8 from its own min and max, int32 accumulation against the
// int8 weights, f32 output with the f32 bias, relu. The converter uses it to measure a
// layer's int8 error (SQNR) on calibration rows before deciding its precision.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "activation.h"

namespace dtrn::quant {

struct Int8LinearParams {
  size_t in = 0, out = 0;
  bool relu = false;
  const int8_t* weight = nullptr;        // [out, in]
  const float* weight_scales = nullptr;  // [out]
  const float* bias = nullptr;           // [out]
};

// y: rows x out floats (the dequantized int8 outputs).
void SimulateInt8Linear(const Int8LinearParams& p, const float* x, size_t rows, float* y);

// Signal-to-quantization-noise ratio in dB: 10*log10(sum ref^2 / sum (ref - test)^2).
// Returns +inf when the two agree exactly.
double SqnrDb(const float* ref, const float* test, size_t n);

}  // namespace dtrn::quant
