#include "convert.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "checkpoint_check.h"
#include "digest.h"
#include "dtrn/io/requests.h"
#include "dtrn/tools/cli.h"
#include "dtrn_writer.h"
#include "equalize.h"

namespace dtrn::convert {
namespace {

using Clock = std::chrono::steady_clock;

class Progress {
 public:
  Progress(std::ostream& out, bool on) : out_(out), on_(on), t0_(Clock::now()) {}
  void operator()(const std::string& msg) const {
    if (!on_) return;
    char buf[32];
    std::snprintf(buf, sizeof buf, "[%7.2fs] ", Seconds());
    out_ << buf << msg << std::endl;
  }
  double Seconds() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }
  bool on() const { return on_; }

 private:
  std::ostream& out_;
  bool on_;
  Clock::time_point t0_;
};

std::string Mib(uint64_t b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f MiB", b / 1048576.0);
  return buf;
}

Result<std::shared_ptr<const Model>> LoadDesc(const ModelDesc& d, std::vector<uint8_t>* bytes_out) {
  DTRN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, SerializeDtrn(d));
  auto model = Model::FromBuffer(bytes.data(), bytes.size());
  if (!model.ok()) {
    return Status(model.status().code() == StatusCode::kInternal ? StatusCode::kInternal : StatusCode::kInvalidArgument,
                  "the runtime cannot run this model: " + model.status().message());
  }
  if (bytes_out) *bytes_out = std::move(bytes);
  return model;
}

Result<std::vector<Request>> ReadRequests(const Model& model, const std::string& path, const char* flag) {
  auto r = io::ReadRequestsFile(model, path);
  if (!r.ok()) return Status(r.status().code(), std::string(flag) + ": " + r.status().message());
  if (r.value().empty()) return InvalidArgument(std::string(flag) + " " + path + ": no requests in the file");
  return r;
}

}  // namespace

Result<Converted> ConvertBytes(std::vector<uint8_t> checkpoint, const ConvertOptions& o,
                               const RequestSource& calibration, const RequestSource& holdout_src,
                               std::ostream& log_stream) {
  Progress log(log_stream, o.verbose);
  Converted result;
  ConvertSummary& sum = result.summary;
  const EmbeddingType emb = o.embeddings.value_or(o.int8 ? EmbeddingType::kInt8 : EmbeddingType::kF32);
  if (o.int8 && !calibration) {
    return InvalidArgument(
        "--precision int8 needs --calibration REQUESTS.jsonl: the per-layer int8 "
        "precision decisions are measured by running the f32 model on representative requests");
  }
  Checkpoint ck;
  ck.bytes = std::move(checkpoint);
  {
    auto st = ParseSafeTensors(ck.bytes.data(), ck.bytes.size());
    if (!st.ok())
      return Status(st.status().code(),
                    (o.checkpoint.empty() ? "checkpoint" : o.checkpoint) + ": " + st.status().message());
    ck.st = std::move(st).value();
  }
  sum.checkpoint_bytes = ck.bytes.size();
  const std::string digest = "sha256:" + Sha256Hex(ck.bytes.data(), ck.bytes.size());
  log("checkpoint digest " + digest);
  DTRN_ASSIGN_OR_RETURN(ModelConfig config, ConfigFromCheckpoint(ck.st));
  DTRN_RETURN_IF_ERROR(CheckCheckpoint(config, ck.st));
  log("checkpoint ok: " + std::to_string(ck.st.tensors.size()) + " tensors, " + Mib(sum.checkpoint_bytes) +
      ", model '" + config.name + "'");
  DTRN_ASSIGN_OR_RETURN(ModelDesc f32, BuildF32Desc(config, ck.st));
  f32.checkpoint_digest = digest;
  ck = Checkpoint();  // the desc holds copies; free the file bytes
  log("hypernetwork folded into " + std::to_string(config.K() * config.B() * config.n_ln()) +
      " LayerNorm (gamma, beta) pairs");
  DTRN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> f32_model, LoadDesc(f32, nullptr));

  ModelDesc out;
  std::vector<Request> calib, holdout;
  if (calibration) {
    DTRN_ASSIGN_OR_RETURN(calib, calibration(*f32_model));
  }
  if (holdout_src) {
    DTRN_ASSIGN_OR_RETURN(holdout, holdout_src(*f32_model));
  }
  Int8Result plan;
  std::string equalization = "off";
  if (o.int8) {
    log("calibrating on " + std::to_string(calib.size()) + " requests (" +
        std::string(o.equalize ? "a range pass for equalization, then " : "") +
        "two passes over the f32 model: ranges, then sampled rows of every layer)");
    size_t step = std::max<size_t>(1, calib.size() / 4);
    ProgressFn progress = [&](size_t done, size_t total, int pass) {
      if (done % step == 0 || done == total)
        log("  pass " + std::to_string(pass) + ": " + std::to_string(done) + "/" + std::to_string(total));
    };
    ModelDesc base = f32;
    std::shared_ptr<const Model> base_model = f32_model;
    if (o.equalize) {
      DTRN_ASSIGN_OR_RETURN(Calibration ranges, Calibrate(f32_model, calib, 0, progress, /*ranges_only=*/true));
      const FieldScaling scaling = ChooseFieldScaling(f32, ranges);
      log("equalizing field ranges (exact power-of-two rewrite): " + scaling.Describe(config));
      if (scaling.any()) {
        DTRN_RETURN_IF_ERROR(ApplyFieldScaling(&base, scaling));
        DTRN_ASSIGN_OR_RETURN(base_model, LoadDesc(base, nullptr));
      }
      equalization = scaling.Describe(config);
    }
    // Sampled rows measure each layer's SQNR; --int8-layers all measures nothing per layer.
    const bool measured = o.policy == Int8Policy::kMeasured;
    DTRN_ASSIGN_OR_RETURN(std::vector<Scores> f32_scores, ScoreAll(f32_model, calib));
    if (base_model != f32_model) {
      // The rewrite is exact up to float rounding; if it is not on some model (a reader of the
      // rescaled rows it does not compensate), it is dropped rather than shipped.
      DTRN_ASSIGN_OR_RETURN(std::vector<Scores> eq_scores, ScoreAll(base_model, calib));
      const CompareMetrics eq = Compare(calib, f32_scores, eq_scores);
      char buf[200];
      const bool exact = eq.max_abs_dp <= 1e-5;
      std::snprintf(buf, sizeof buf, "  the rescaled f32 model differs from the original by max |dp| %.3g%s",
                    eq.max_abs_dp, exact ? "" : ": not exact, equalization dropped");
      log(buf);
      if (!exact) {
        base = f32;
        base_model = f32_model;
        equalization = "none (the rewrite was not exact: max |dp| " + std::to_string(eq.max_abs_dp) + ")";
      }
    }
    DTRN_ASSIGN_OR_RETURN(Calibration cal, Calibrate(base_model, calib, measured ? 2048 : 0, progress, !measured));
    Int8Options iopt;
    iopt.policy = o.policy;
    iopt.embeddings = emb;
    log("measuring each layer's int8 error (" + std::to_string(f32.Candidates().size()) + " candidate layers)");
    DTRN_ASSIGN_OR_RETURN(plan, PlanInt8(base, cal, calib, f32_scores, iopt, [&](const std::string& s) { log(s); }));
    out = std::move(plan.model);
    for (const auto& lm : plan.layers) (lm.int8 ? sum.int8_layers : sum.f32_layers)++;
    log(std::to_string(sum.int8_layers) + " layers int8, " + std::to_string(sum.f32_layers) + " kept f32");
  } else {
    out = f32;
    DTRN_RETURN_IF_ERROR(SetEmbeddings(&out, emb));
    sum.f32_layers = static_cast<int>(out.Candidates().size());
  }
  std::vector<uint8_t>& bytes = result.model;
  DTRN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> out_model, LoadDesc(out, &bytes));
  sum.output_bytes = bytes.size();

  const std::vector<Request>& cmp_req = holdout.empty() ? calib : holdout;
  if (o.int8 && holdout.empty()) {
    sum.comparison = plan.final_metrics;  // PlanInt8 measured exactly this model on these requests
    sum.has_comparison = true;
    if (o.verbose) log_stream << FormatReport(sum.comparison, config.tasks, Targets());
  } else if (!cmp_req.empty() && (o.int8 || !o.report.empty() || emb != EmbeddingType::kF32)) {
    log(std::string("comparing with the f32 model on ") + (holdout.empty() ? "the calibration" : "the holdout") +
        " requests");
    DTRN_ASSIGN_OR_RETURN(std::vector<Scores> ref, ScoreAll(f32_model, cmp_req));
    DTRN_ASSIGN_OR_RETURN(std::vector<Scores> test, ScoreAll(out_model, cmp_req));
    sum.comparison = Compare(cmp_req, ref, test);
    sum.has_comparison = true;
    if (o.verbose) log_stream << FormatReport(sum.comparison, config.tasks, Targets());
  }
  sum.seconds = log.Seconds();

  {
    nlohmann::json extra = {
        {"checkpoint", o.checkpoint},
        {"checkpoint_bytes", sum.checkpoint_bytes},
        {"checkpoint_digest", digest},
        {"output", o.output},
        {"output_bytes", sum.output_bytes},
        {"size_ratio", static_cast<double>(sum.output_bytes) / sum.checkpoint_bytes},
        {"precision", o.int8 ? "int8" : "f32"},
        {"embeddings", EmbeddingTypeName(emb)},
        {"int8_activations", "dynamic per row (uint8 from each row's min and max), f32 outputs"},
        {"equalization", equalization},
        {"compared_on", holdout.empty() ? "calibration" : "holdout"},
        {"conversion_seconds", sum.seconds},
    };
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& lm : plan.layers) {
      layers.push_back(
          {{"layer", lm.layer},
           {"precision", lm.int8 ? "int8" : "f32"},
           {"eligible", lm.eligible},
           {"sqnr_db", lm.eligible ? nlohmann::json(lm.sqnr_db) : nlohmann::json(nullptr)},
           {"solo_mean_abs_dp", lm.solo_mean_dp},
           {"solo_kendall_tau", std::isfinite(lm.solo_tau) ? nlohmann::json(lm.solo_tau) : nlohmann::json(nullptr)},
           {"why_not", lm.why_not}});
    }
    extra["layers"] = layers;
    result.report_json = ReportJson(sum.comparison, config.tasks, Targets(), extra.dump());
  }
  return result;
}

Result<ConvertSummary> Convert(const ConvertOptions& o, std::ostream& log_stream) {
  Progress log(log_stream, o.verbose);
  if (o.int8 && o.calibration.empty()) {
    return InvalidArgument(
        "--precision int8 needs --calibration REQUESTS.jsonl: the per-layer int8 "
        "precision decisions are measured by running the f32 model on representative requests");
  }
  if (!o.report.empty() && o.calibration.empty() && o.holdout.empty()) {
    return InvalidArgument("--report needs requests to compare on: give --calibration or --holdout");
  }

  // The outputs replace their paths: never an input's (nor a link to it).
  auto same = [](const std::string& x, const std::string& y) {
    return !x.empty() && !y.empty() && (x == y || tools::SameFile(x, y));
  };
  const std::pair<const char*, const std::string*> inputs[] = {
      {"--checkpoint", &o.checkpoint}, {"--calibration", &o.calibration}, {"--holdout", &o.holdout}};
  const std::pair<const char*, const std::string*> outputs[] = {{"--output", &o.output}, {"--report", &o.report}};
  for (const auto& out : outputs)
    for (const auto& in : inputs)
      if (same(*in.second, *out.second))
        return InvalidArgument(std::string(out.first) + " '" + *out.second + "' is the same file as " + in.first +
                               " '" + *in.second + "': refusing to overwrite an input");
  if (same(o.report, o.output)) return InvalidArgument("--report and --output are the same file '" + o.output + "'");

  log("reading checkpoint " + o.checkpoint);
  DTRN_ASSIGN_OR_RETURN(Checkpoint ck, ReadCheckpoint(o.checkpoint));
  RequestSource calibration, holdout;
  if (!o.calibration.empty())
    calibration = [&](const Model& m) { return ReadRequests(m, o.calibration, "--calibration"); };
  if (!o.holdout.empty()) holdout = [&](const Model& m) { return ReadRequests(m, o.holdout, "--holdout"); };
  DTRN_ASSIGN_OR_RETURN(Converted c, ConvertBytes(std::move(ck.bytes), o, calibration, holdout, log_stream));
  const ConvertSummary& sum = c.summary;
  DTRN_RETURN_IF_ERROR(WriteFileAtomic(o.output, c.model));
  if (!o.report.empty()) {
    Status st = WriteFileAtomic(o.report, std::vector<uint8_t>(c.report_json.begin(), c.report_json.end()));
    if (!st.ok()) {
      std::remove(o.output.c_str());  // all or nothing
      return st;
    }
  }
  log("wrote " + o.output + ": " + Mib(sum.output_bytes) + " (" +
      std::to_string(static_cast<int>(100.0 * sum.output_bytes / sum.checkpoint_bytes + 0.5)) + "% of the checkpoint)");
  return sum;
}

}  // namespace dtrn::convert
