// dtrn-convert: a DTRN safetensors checkpoint -> a .dtrn model (f32 or int8).
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>

#include "convert.h"
#include "dtrn/tools/cli.h"

namespace {

const char kUsage[] = R"(usage: dtrn-convert --checkpoint CKPT.safetensors --output MODEL.dtrn [options]

Converts a DTRN checkpoint (safetensors with dtrn_config metadata) into a .dtrn
model for the runtime. The hypernetwork is folded into per-(task, behaviour)
LayerNorm parameters; the output is written atomically (nothing is left behind
on failure).

options:
  --precision f32|int8       dense layers (default f32). int8 layers quantize their
                             inputs per row at run time and output f32 (no requantized
                             logits, no clamped activations). int8 needs --calibration:
                             which layers run int8 is measured on real requests.
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
  --int8-layers measured|all measured (default): keep layers f32 where int8 costs
                             accuracy; all: every candidate layer int8.
  --no-equalize              int8: skip the exact power-of-two rescaling of field
                             embeddings that gives the TRM input and r_k one common
                             range before calibration (on by default).
  --quiet                    no progress output.
  --help                     this text.

The output never replaces an input: --output (or --report) naming the checkpoint or a
requests file, also through a symlink or a hard link, is refused. The checkpoint's
SHA-256 is printed and recorded in the model (dtrn-inspect shows it).

exit codes: 0 ok; 2 bad input (unreadable/corrupt checkpoint, invalid config,
missing/mis-shaped tensor, NaN weights, bad requests, bad flags); 1 other
failures (cannot write the output, internal errors).
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace dtrn::convert;
  dtrn::tools::Flags flags("dtrn-convert", kUsage);
  for (const char* v : {"--checkpoint", "--output", "--precision", "--calibration", "--holdout", "--embeddings",
                        "--report", "--int8-layers"})
    flags.Value(v);
  flags.Switch("--quiet").Switch("--no-equalize");
  if (int rc = flags.Parse(argc, argv); rc >= 0) return rc;
  ConvertOptions o;
  o.verbose = !flags.Has("--quiet");
  o.equalize = !flags.Has("--no-equalize");
  if (!flags.Has("--checkpoint")) return flags.UsageError("--checkpoint is required");
  if (!flags.Has("--output")) return flags.UsageError("--output is required");
  o.checkpoint = flags.Get("--checkpoint");
  o.output = flags.Get("--output");
  std::string precision, policy;
  if (!flags.Choice("--precision", {"f32", "int8"}, "f32", &precision)) return 2;
  o.int8 = precision == "int8";
  if (flags.Has("--embeddings")) {
    auto e = ParseEmbeddingType(flags.Get("--embeddings"));
    if (!e.ok()) return flags.UsageError(e.status().message());
    o.embeddings = e.value();
  }
  if (!flags.Choice("--int8-layers", {"measured", "all"}, "measured", &policy)) return 2;
  o.policy = policy == "all" ? Int8Policy::kAll : Int8Policy::kMeasured;
  o.calibration = flags.Get("--calibration");
  o.holdout = flags.Get("--holdout");
  o.report = flags.Get("--report");
  if (!o.int8 && flags.Has("--int8-layers")) return flags.UsageError("--int8-layers needs --precision int8");
  auto r = Convert(o, std::cerr);
  if (!r.ok()) {
    std::cerr << "dtrn-convert: error: " << r.status().message() << "\n";
    return dtrn::tools::ExitCode(r.status());
  }
  return 0;
}
