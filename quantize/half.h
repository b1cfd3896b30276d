// IEEE 754 binary16 conversion for f16 embedding tables (round to nearest even).
#pragma once

#include <cstdint>

namespace dtrn::quant {

// Values beyond the half range become +-inf; callers check FitsHalf first.
uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);
// True when f converts to a finite half (|f| < 65520 and f finite).
bool FitsHalf(float f);

}  // namespace dtrn::quant
