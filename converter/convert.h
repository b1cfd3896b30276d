// dtrn-convert's pipeline as a library call (the CLI only parses flags):
// read + validate checkpoint -> f32 ModelDesc (hypernetwork folded) -> the runtime
// loads it (a config it cannot run is refused here) -> [int8: calibrate, measure,
// decide per layer] -> embeddings -> [report] -> atomic write.
#pragma once

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "activation.h"
#include "int8_plan.h"
#include "model_build.h"

namespace dtrn::convert {

struct ConvertOptions {
  std::string checkpoint, output;
  bool int8 = false;
  std::optional<EmbeddingType> embeddings;  // default: f32 for f32, int8 for int8
  std::string calibration, holdout, report;
  Int8Policy policy = Int8Policy::kMeasured;
  bool equalize = true;  // int8: exact power-of-two field rescaling before calibration (equalize.h)
  bool verbose = true;   // progress on stderr
};

struct ConvertSummary {
  uint64_t checkpoint_bytes = 0, output_bytes = 0;
  double seconds = 0;
  int int8_layers = 0, f32_layers = 0;
  bool has_comparison = false;
  CompareMetrics comparison;
};

// Writes options.output (and options.report) atomically; on failure neither exists.
Result<ConvertSummary> Convert(const ConvertOptions& options, std::ostream& log);

// Requests made for the f32 model (parsed against its fields, or generated for it).
using RequestSource = std::function<Result<std::vector<Request>>(const Model& f32_model)>;

struct Converted {
  std::vector<uint8_t> model;  // the .dtrn bytes
  std::string report_json;     // the --report JSON
  ConvertSummary summary;
};

// The same pipeline on bytes in memory: nothing is read or written (dtrn-bench --workload,
// tests). options' paths only name things in messages; calibration is required for int8.
Result<Converted> ConvertBytes(std::vector<uint8_t> checkpoint, const ConvertOptions& options,
                               const RequestSource& calibration, const RequestSource& holdout, std::ostream& log);

}  // namespace dtrn::convert
