// Activation calibration: runs the RUNTIME's f32 path (the model math lives only
// there) over calibration requests with an ActivationObserver, in two passes:
// pass 1 records each Linear's input/output range (and per-column statistics for
// equalization), pass 2 keeps a reservoir sample of rows (to measure a layer's int8 error).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "activation.h"
#include "dtrn/runtime.h"

namespace dtrn::convert {

struct LayerCalibration {
  size_t in = 0, out = 0;
  quant::RangeStats in_range, out_range;
  // Pass 1, per input column (for equalization): min, max, sum of squares over in_rows rows.
  std::vector<float> in_col_min, in_col_max;
  std::vector<double> in_col_sumsq;
  uint64_t in_rows = 0;
  std::vector<float> sample_in, sample_out;  // sample_rows x in / out
  size_t sample_rows = 0;
};

struct Calibration {
  std::map<std::string, LayerCalibration> layers;  // by Linear name
};

// Called after each scored request: (requests done, total, pass 1 or 2).
using ProgressFn = std::function<void(size_t, size_t, int)>;

// max_sample_rows: rows kept per layer for error measurement. ranges_only: pass 1 only
// (ranges and per-column maxima; no samples).
Result<Calibration> Calibrate(std::shared_ptr<const Model> f32_model, const std::vector<Request>& requests,
                              size_t max_sample_rows = 2048, const ProgressFn& progress = nullptr,
                              bool ranges_only = false);

// Scores every request with one session (f32 or int8 model alike).
Result<std::vector<Scores>> ScoreAll(std::shared_ptr<const Model> model, const std::vector<Request>& requests);

}  // namespace dtrn::convert
