#include "calibration.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace dtrn::convert {
namespace {

class Observer : public ActivationObserver {
 public:
  Observer(Calibration* cal, int pass, size_t max_rows) : cal_(cal), pass_(pass), max_rows_(max_rows) {}

  void Observe(const std::string& layer, const float* input, size_t rows, size_t in, const float* output,
               size_t out) override {
    LayerCalibration& c = cal_->layers[layer];
    if (pass_ == 1) {
      if (c.in == 0 && c.out == 0) c.in = in, c.out = out;
      if (c.in != in || c.out != out) {
        shape_error_ = "layer '" + layer + "' observed with varying widths";
        return;
      }
      c.in_range.Add(input, rows * in);
      c.out_range.Add(output, rows * out);
      if (c.in_col_min.empty()) {
        c.in_col_min.assign(in, INFINITY);
        c.in_col_max.assign(in, -INFINITY);
        c.in_col_sumsq.assign(in, 0.0);
      }
      for (size_t r = 0; r < rows; ++r) {
        for (size_t i = 0; i < in; ++i) {
          const float v = input[r * in + i];
          if (!std::isfinite(v)) continue;  // counted in in_range; the calibration refuses them
          c.in_col_min[i] = std::min(c.in_col_min[i], v);
          c.in_col_max[i] = std::max(c.in_col_max[i], v);
          c.in_col_sumsq[i] += static_cast<double>(v) * v;
        }
      }
      c.in_rows += rows;
      return;
    }
    // Reservoir sampling per layer: a uniform sample of all rows seen, deterministic seed.
    uint64_t& seen = seen_[layer];
    for (size_t r = 0; r < rows; ++r, ++seen) {
      size_t slot;
      if (c.sample_rows < max_rows_) {
        slot = c.sample_rows++;
        c.sample_in.resize(c.sample_rows * in);
        c.sample_out.resize(c.sample_rows * out);
      } else {
        slot = std::uniform_int_distribution<uint64_t>(0, seen)(rng_);
        if (slot >= max_rows_) continue;
      }
      std::copy(input + r * in, input + (r + 1) * in, c.sample_in.begin() + slot * in);
      std::copy(output + r * out, output + (r + 1) * out, c.sample_out.begin() + slot * out);
    }
  }

  const std::string& shape_error() const { return shape_error_; }

 private:
  Calibration* cal_;
  int pass_;
  size_t max_rows_;
  std::mt19937_64 rng_{20230823};
  std::map<std::string, uint64_t> seen_;
  std::string shape_error_;
};

}  // namespace

Result<Calibration> Calibrate(std::shared_ptr<const Model> model, const std::vector<Request>& requests,
                              size_t max_sample_rows, const ProgressFn& progress, bool ranges_only) {
  if (requests.empty()) return InvalidArgument("calibration: no requests");
  Calibration cal;
  for (int pass = 1; pass <= (ranges_only ? 1 : 2); ++pass) {
    Observer obs(&cal, pass, max_sample_rows);
    SessionOptions opts;
    opts.observer = &obs;
    DTRN_ASSIGN_OR_RETURN(auto session, Session::Create(model, opts));
    Scores scores;
    for (size_t i = 0; i < requests.size(); ++i) {
      Status st = session->Score(requests[i], &scores);
      if (!st.ok())
        return Status(st.code(),
                      "calibration request " + std::to_string(i + 1) + " ('" + requests[i].id + "'): " + st.message());
      if (!obs.shape_error().empty()) return Internal("calibration: " + obs.shape_error());
      if (progress) progress(i + 1, requests.size(), pass);
    }
  }
  for (const auto& [name, c] : cal.layers) {
    if (c.in_range.nonfinite || c.out_range.nonfinite) {
      return InvalidArgument("calibration: layer '" + name + "' produced " +
                             std::to_string(c.in_range.nonfinite + c.out_range.nonfinite) +
                             " non-finite activations on the calibration requests (weights too large?)");
    }
  }
  return cal;
}

Result<std::vector<Scores>> ScoreAll(std::shared_ptr<const Model> model, const std::vector<Request>& requests) {
  DTRN_ASSIGN_OR_RETURN(auto session, Session::Create(model, {}));
  std::vector<Scores> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    Status st = session->Score(requests[i], &out[i]);
    if (!st.ok())
      return Status(st.code(), "request " + std::to_string(i + 1) + " ('" + requests[i].id + "'): " + st.message());
  }
  return out;
}

}  // namespace dtrn::convert
