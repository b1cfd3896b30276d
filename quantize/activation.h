// Static per-tensor activation quantization from calibration statistics:
// affine int8, real = scale * (q - zero_point), q in [-128, 127], 0 exactly representable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dtrn/status.h"

namespace dtrn::quant {

// How a tensor's range [lo, hi] is chosen from what calibration saw.
enum class CalibrationMethod {
  kMinMax,      // the observed min and max
  kPercentile,  // clip both tails at a percentile of the observed values
  kMse,         // the clipping range that minimises the expected squared quantization error
};
const char* CalibrationMethodName(CalibrationMethod m);
Result<CalibrationMethod> ParseCalibrationMethod(const std::string& name);

struct ActivationParams {
  float scale = 1.f;
  int32_t zero_point = 0;
};

// Affine params whose grid covers [lo, hi], widened to contain 0. An empty range gives scale 1.
ActivationParams ParamsForRange(double lo, double hi);

// Pass 1 of calibration: the observed range.
struct RangeStats {
  double min = 0, max = 0;
  uint64_t count = 0;      // finite values seen
  uint64_t nonfinite = 0;  // NaN / Inf values seen (not in min/max)
  void Add(const float* x, size_t n);
  void Merge(const RangeStats& other);
};

// Pass 2: a fixed-bin histogram over the pass-1 range (widened to contain 0).
class Histogram {
 public:
  explicit Histogram(const RangeStats& range, int bins = 2048);
  void Add(const float* x, size_t n);
  double lo() const { return lo_; }
  double hi() const { return hi_; }
  int bins() const { return static_cast<int>(counts_.size()); }
  double bin_width() const { return (hi_ - lo_) / counts_.size(); }
  double center(int i) const { return lo_ + (i + 0.5) * bin_width(); }
  const std::vector<uint64_t>& counts() const { return counts_; }
  uint64_t total() const { return total_; }

 private:
  double lo_, hi_;
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
};

// Chooses the tensor's params. percentile is used by kPercentile only (e.g. 99.99).
ActivationParams ChooseParams(const Histogram& hist, CalibrationMethod method, double percentile = 99.99);

// Expected squared error per value of quantizing the histogram's values with p
// (rounding noise scale^2/12 inside the grid, clipping error outside).
double ExpectedSquaredError(const Histogram& hist, const ActivationParams& p);

}  // namespace dtrn::quant
