// Simulates one int8 Linear the way XNNPACK's qs8/qc8 fully-connected runs it, on
// float inputs: quantize the input per tensor, int32 accumulate against int8 weights,
// add the int32 bias, requantize in fp32 with per-channel scales, clamp (relu at the
// zero point), dequantize. The converter uses it to measure a layer's int8 error
// (SQNR) on calibration rows before deciding its precision.
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
  const int32_t* bias = nullptr;         // [out]
  ActivationParams input, output;
};

// y: rows x out floats (the dequantized int8 outputs).
void SimulateInt8Linear(const Int8LinearParams& p, const float* x, size_t rows, float* y);

// Signal-to-quantization-noise ratio in dB: 10*log10(sum ref^2 / sum (ref - test)^2).
// Returns +inf when the two agree exactly.
double SqnrDb(const float* ref, const float* test, size_t n);

// Quantizes one value with per-tensor affine params (round half to even, saturating).
int8_t QuantizeValue(float x, const ActivationParams& p);

}  // namespace dtrn::quant
