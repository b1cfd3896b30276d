// dtrn-convert's pipeline as a library call (the CLI only parses flags):
// read + validate checkpoint -> f32 ModelDesc (hypernetwork folded) -> the runtime
// loads it (a config it cannot run is refused here) -> [int8: calibrate, measure,
// decide per layer] -> embeddings -> [report] -> atomic write.
#pragma once

#include <optional>
#include <ostream>
#include <string>

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

}  // namespace dtrn::convert
