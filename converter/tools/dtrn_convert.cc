// dtrn-convert: a DTRN safetensors checkpoint -> a .dtrn model (f32 or int8).
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>

#include "convert.h"
#include "dtrn_writer.h"

namespace {

const char kUsage[] = R"(usage: dtrn-convert --checkpoint CKPT.safetensors --output MODEL.dtrn [options]

Converts a DTRN checkpoint (safetensors with dtrn_config metadata) into a .dtrn
model for the runtime. The hypernetwork is folded into per-(task, behaviour)
LayerNorm parameters; the output is written atomically (nothing is left behind
on failure).

options:
  --precision f32|int8       dense layers (default f32). int8 needs --calibration:
                             there is no fallback, because activation scales and
                             the per-layer decisions are measured on real requests.
  --calibration REQ.jsonl    requests (docs/request-format.md) the f32 model is run
                             on to calibrate activations and to measure each layer's
                             int8 error; a layer whose int8 error costs accuracy
                             stays f32 (the reason is recorded in the model).
  --holdout REQ.jsonl        requests for the int8-vs-f32 report (default: the
                             calibration requests).
  --embeddings f32|f16|int8  embedding tables (default: f32 with --precision f32,
                             int8 (one scale per row) with --precision int8).
  --report REPORT.json       write the int8-vs-f32 comparison (per-task AUC when
                             labels exist, mean/max |dp|, Kendall tau of the fused
                             ranking), sizes and per-layer measurements as JSON.
  --calibration-method minmax|percentile|mse
                             how activation ranges are chosen (default percentile,
                             at --percentile 99.99).
  --percentile P             for --calibration-method percentile (default 99.99).
  --int8-layers measured|all measured (default): keep layers f32 where int8 costs
                             accuracy; all: every candidate layer int8, and a layer
                             outside XNNPACK's limits is an error.
  --no-equalize              int8: skip the exact power-of-two rescaling of field
                             embeddings that gives the TRM input and r_k one common
                             range before calibration (on by default).
  --quiet                    no progress output.
  --help                     this text.

exit codes: 0 ok; 2 bad input (unreadable/corrupt checkpoint, invalid config,
missing/mis-shaped tensor, NaN weights, bad requests, bad flags); 1 other
failures (cannot write the output, internal errors).
)";

int ExitCode(const dtrn::Status& s) {
  switch (s.code()) {
    case dtrn::StatusCode::kInvalidArgument:
    case dtrn::StatusCode::kNotFound:
    case dtrn::StatusCode::kDataLoss:
    case dtrn::StatusCode::kUnimplemented:
      return 2;
    default:
      return 1;
  }
}

int UsageError(const std::string& msg) {
  std::cerr << "dtrn-convert: " << msg << "\n(see dtrn-convert --help)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dtrn::convert;
  std::map<std::string, std::string> flags;
  bool quiet = false, no_equalize = false;
  static const char* kValued[] = {"--checkpoint", "--output", "--precision", "--calibration", "--holdout",
                                  "--embeddings", "--report", "--calibration-method", "--percentile", "--int8-layers"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--quiet") {
      quiet = true;
      continue;
    }
    if (a == "--no-equalize") {
      no_equalize = true;
      continue;
    }
    std::string value;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    bool known = false;
    for (const char* k : kValued) known = known || a == k;
    if (!known) return UsageError("unknown argument '" + a + "'");
    if (eq == std::string::npos) {
      if (i + 1 >= argc) return UsageError(a + " needs a value");
      value = argv[++i];
    }
    if (flags.count(a)) return UsageError(a + " given twice");
    flags[a] = value;
  }
  ConvertOptions o;
  o.verbose = !quiet;
  o.equalize = !no_equalize;
  if (!flags.count("--checkpoint")) return UsageError("--checkpoint is required");
  if (!flags.count("--output")) return UsageError("--output is required");
  o.checkpoint = flags["--checkpoint"];
  o.output = flags["--output"];
  if (flags.count("--precision")) {
    const std::string& p = flags["--precision"];
    if (p != "f32" && p != "int8") return UsageError("--precision: expected f32 or int8, got '" + p + "'");
    o.int8 = p == "int8";
  }
  if (flags.count("--embeddings")) {
    auto e = ParseEmbeddingType(flags["--embeddings"]);
    if (!e.ok()) return UsageError(e.status().message());
    o.embeddings = e.value();
  }
  if (flags.count("--calibration-method")) {
    auto m = dtrn::quant::ParseCalibrationMethod(flags["--calibration-method"]);
    if (!m.ok()) return UsageError("--calibration-method: " + m.status().message());
    o.method = m.value();
  }
  if (flags.count("--percentile")) {
    char* end = nullptr;
    o.percentile = std::strtod(flags["--percentile"].c_str(), &end);
    if (!end || *end || !(o.percentile > 50 && o.percentile <= 100)) {
      return UsageError("--percentile: expected a number in (50, 100], got '" + flags["--percentile"] + "'");
    }
  }
  if (flags.count("--int8-layers")) {
    const std::string& p = flags["--int8-layers"];
    if (p != "measured" && p != "all") return UsageError("--int8-layers: expected measured or all, got '" + p + "'");
    o.policy = p == "all" ? Int8Policy::kAll : Int8Policy::kMeasured;
  }
  if (flags.count("--calibration")) o.calibration = flags["--calibration"];
  if (flags.count("--holdout")) o.holdout = flags["--holdout"];
  if (flags.count("--report")) o.report = flags["--report"];
  if (!o.int8 && flags.count("--int8-layers")) {
    return UsageError("--int8-layers needs --precision int8");
  }
  auto r = Convert(o, std::cerr);
  if (!r.ok()) {
    std::cerr << "dtrn-convert: error: " << r.status().message() << "\n";
    return ExitCode(r.status());
  }
  return 0;
}
