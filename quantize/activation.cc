#include "activation.h"

#include <algorithm>
#include <cmath>

#include "weights.h"

namespace dtrn::quant {

const char* CalibrationMethodName(CalibrationMethod m) {
  switch (m) {
    case CalibrationMethod::kMinMax: return "minmax";
    case CalibrationMethod::kPercentile: return "percentile";
    case CalibrationMethod::kMse: return "mse";
  }
  return "?";
}

Result<CalibrationMethod> ParseCalibrationMethod(const std::string& name) {
  if (name == "minmax") return CalibrationMethod::kMinMax;
  if (name == "percentile") return CalibrationMethod::kPercentile;
  if (name == "mse") return CalibrationMethod::kMse;
  return InvalidArgument("unknown calibration method '" + name + "' (expected minmax, percentile or mse)");
}

ActivationParams ParamsForRange(double lo, double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  ActivationParams p;
  if (!(hi - lo > 0.0) || !std::isfinite(hi - lo)) return p;
  p.scale = static_cast<float>((hi - lo) / 255.0);
  double zp = RoundHalfEven(-128.0 - lo / p.scale);
  p.zero_point = static_cast<int32_t>(std::clamp(zp, -128.0, 127.0));
  return p;
}

void RangeStats::Add(const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    double v = x[i];
    if (!std::isfinite(v)) {
      ++nonfinite;
      continue;
    }
    if (count == 0) {
      min = max = v;
    } else {
      min = std::min(min, v);
      max = std::max(max, v);
    }
    ++count;
  }
}

void RangeStats::Merge(const RangeStats& o) {
  if (o.count == 0) {
    nonfinite += o.nonfinite;
    return;
  }
  if (count == 0) {
    uint64_t nf = nonfinite;
    *this = o;
    nonfinite += nf;
    return;
  }
  min = std::min(min, o.min);
  max = std::max(max, o.max);
  count += o.count;
  nonfinite += o.nonfinite;
}

Histogram::Histogram(const RangeStats& range, int bins)
    : lo_(std::min(range.min, 0.0)), hi_(std::max(range.max, 0.0)), counts_(std::max(bins, 1), 0) {
  if (!(hi_ > lo_)) hi_ = lo_ + 1.0;  // all zeros: any range works
}

void Histogram::Add(const float* x, size_t n) {
  const double inv = counts_.size() / (hi_ - lo_);
  const int last = static_cast<int>(counts_.size()) - 1;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) continue;  // counted by RangeStats; the converter refuses them
    double b = std::floor((x[i] - lo_) * inv);
    counts_[static_cast<int>(std::clamp(b, 0.0, static_cast<double>(last)))]++;
    ++total_;
  }
}

namespace {

// Prefix sums of count, count*x and count*x^2 over bin centers: O(1) clipping error of any range.
struct Moments {
  std::vector<double> c, cx, cxx;  // c[i] = sum over bins < i
  explicit Moments(const Histogram& h) : c(h.bins() + 1, 0), cx(h.bins() + 1, 0), cxx(h.bins() + 1, 0) {
    for (int i = 0; i < h.bins(); ++i) {
      double n = static_cast<double>(h.counts()[i]), x = h.center(i);
      c[i + 1] = c[i] + n;
      cx[i + 1] = cx[i] + n * x;
      cxx[i + 1] = cxx[i] + n * x * x;
    }
  }
  // sum over bins [a, b) of n * (x - t)^2
  double Sq(int a, int b, double t) const {
    if (b <= a) return 0;
    double n = c[b] - c[a], sx = cx[b] - cx[a], sxx = cxx[b] - cxx[a];
    return sxx - 2 * t * sx + t * t * n;
  }
};

int BinOf(const Histogram& h, double v) {
  return std::clamp(static_cast<int>(std::floor((v - h.lo()) / h.bin_width())), 0, h.bins());
}

double ErrorOf(const Histogram& h, const Moments& m, const ActivationParams& p) {
  const double glo = p.scale * (-128.0 - p.zero_point), ghi = p.scale * (127.0 - p.zero_point);
  const int a = BinOf(h, glo), b = BinOf(h, ghi);  // bins whose centers lie inside approx [a, b)
  double err = m.Sq(0, a, glo) + m.Sq(b, h.bins(), ghi);
  err += (m.c[b] - m.c[a]) * (static_cast<double>(p.scale) * p.scale / 12.0);
  return h.total() ? err / static_cast<double>(h.total()) : 0.0;
}

}  // namespace

double ExpectedSquaredError(const Histogram& hist, const ActivationParams& p) {
  Moments m(hist);
  return ErrorOf(hist, m, p);
}

ActivationParams ChooseParams(const Histogram& h, CalibrationMethod method, double percentile) {
  if (h.total() == 0) return ParamsForRange(h.lo(), h.hi());
  // The observed extremes: first and last non-empty bins (edges).
  int first = 0, last = h.bins() - 1;
  while (first < last && h.counts()[first] == 0) ++first;
  while (last > first && h.counts()[last] == 0) --last;
  const double obs_lo = h.lo() + first * h.bin_width(), obs_hi = h.lo() + (last + 1) * h.bin_width();
  switch (method) {
    case CalibrationMethod::kMinMax: return ParamsForRange(obs_lo, obs_hi);
    case CalibrationMethod::kPercentile: {
      const double tail = static_cast<double>(h.total()) * (100.0 - percentile) / 100.0;
      double acc = 0;
      int lo_bin = 0;
      while (lo_bin < h.bins() - 1 && acc + h.counts()[lo_bin] <= tail) acc += h.counts()[lo_bin++];
      acc = 0;
      int hi_bin = h.bins() - 1;
      while (hi_bin > 0 && acc + h.counts()[hi_bin] <= tail) acc += h.counts()[hi_bin--];
      return ParamsForRange(h.lo() + lo_bin * h.bin_width(), h.lo() + (hi_bin + 1) * h.bin_width());
    }
    case CalibrationMethod::kMse: {
      Moments m(h);
      ActivationParams best = ParamsForRange(obs_lo, obs_hi);
      double best_err = ErrorOf(h, m, best);
      const int kSteps = 128;  // candidate clip points: fractions of each side's observed extent
      for (int i = 0; i <= kSteps; ++i) {
        const double lo = obs_lo * (1.0 - static_cast<double>(i) / kSteps);
        if (obs_lo >= 0 && i > 0) break;
        for (int j = 0; j < kSteps; ++j) {
          const double hi = obs_hi * (1.0 - static_cast<double>(j) / kSteps);
          if (obs_hi <= 0 && j > 0) break;
          ActivationParams p = ParamsForRange(lo, hi);
          double e = ErrorOf(h, m, p);
          if (e < best_err) best_err = e, best = p;
        }
      }
      return best;
    }
  }
  return ParamsForRange(obs_lo, obs_hi);
}

}  // namespace dtrn::quant
