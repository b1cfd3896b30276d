// Decides, from measurements, which Linear layers run int8, and builds that model.
// An int8 layer quantizes its inputs per row at run time (runtime/src/int8_kernels.h), so
// there are no activation ranges to choose; what is measured is each layer's error.
//  1. Per layer, alone: SQNR of the layer's int8 output on sampled calibration rows, and
//     the end-to-end effect (mean |Δp|, Kendall tau) of making only that layer int8,
//     measured with the runtime on calibration requests.
//  2. All layers int8 (+ the chosen embeddings); while the whole model misses
//     the spec's targets at an internal safety margin, the layer with the largest
//     solo effect per weight goes back to f32. Every decision and its measured reason is recorded.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "activation.h"
#include "calibration.h"
#include "model_build.h"
#include "report.h"

namespace dtrn::convert {

enum class Int8Policy {
  kMeasured,  // keep a layer f32 where measurement says int8 costs accuracy
  kAll,       // every candidate layer int8, nothing measured per layer
};

struct Int8Options {
  Int8Policy policy = Int8Policy::kMeasured;
  EmbeddingType embeddings = EmbeddingType::kInt8;
  Targets targets;
  double margin = 0.75;             // the plan aims at targets scaled by this (headroom for unseen requests)
  size_t solo_eval_requests = 128;  // requests used to measure each layer alone
};

struct LayerMeasurement {
  std::string layer;
  bool eligible = false;  // the layer could be made int8
  std::string why_not;
  double sqnr_db = 0;
  double solo_mean_dp = 0, solo_tau = 1;
  double weights = 0;  // in * out: what int8 saves (bytes x3) and speeds up
  bool int8 = false;
};

struct Int8Result {
  ModelDesc model;  // int8 layers + embeddings applied, decisions recorded
  std::vector<LayerMeasurement> layers;
  CompareMetrics final_metrics;  // the chosen model vs f32 on the calibration requests
};

using LogFn = std::function<void(const std::string&)>;

// f32: the all-f32 description (f32 embeddings) that calibration ran on.
// requests / f32_scores: the calibration requests and the f32 model's scores for them.
Result<Int8Result> PlanInt8(const ModelDesc& f32, const Calibration& cal, const std::vector<Request>& requests,
                            const std::vector<Scores>& f32_scores, const Int8Options& options, const LogFn& log);

}  // namespace dtrn::convert
