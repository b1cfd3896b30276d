#include "int8_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <map>

#include "dtrn_writer.h"
#include "linear_sim.h"
#include "strfmt.h"

namespace dtrn::convert {
namespace {

Result<std::vector<Scores>> ScoreDesc(const ModelDesc& d, const std::vector<Request>& requests) {
  DTRN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, SerializeDtrn(d));
  auto model = Model::FromBuffer(bytes.data(), bytes.size());
  if (!model.ok())
    return Status(model.status().code(), "the runtime refused a converted model: " + model.status().message());
  return ScoreAll(model.value(), requests);
}

double LayerSqnr(const ModelDesc& q, const LinearDesc& l, const LayerCalibration& c) {
  if (c.sample_rows == 0) return 0;
  const TensorDesc& w = q.tensors[l.weight];
  const TensorDesc& b = q.tensors[l.bias];
  quant::Int8LinearParams p;
  p.in = l.in;
  p.out = l.out;
  p.relu = l.relu;
  p.weight = reinterpret_cast<const int8_t*>(w.data->data());
  p.weight_scales = w.scales.data();
  p.bias = reinterpret_cast<const float*>(b.data->data());
  std::vector<float> y(c.sample_rows * l.out);
  quant::SimulateInt8Linear(p, c.sample_in.data(), c.sample_rows, y.data());
  return quant::SqnrDb(c.sample_out.data(), y.data(), y.size());
}

std::string MetricsStr(const CompareMetrics& m) {
  return Fmt(
      "mean|dp| %.3g, max|dp| %.3g, tau %.4f, max dAUC %s", m.mean_abs_dp, m.max_abs_dp, m.mean_tau,
      m.auc_ref.empty() || !std::isfinite(m.auc_ref[0]) ? "n/a (no labels)" : Fmt("%.4f", m.max_auc_delta()).c_str());
}

}  // namespace

Result<Int8Result> PlanInt8(const ModelDesc& f32, const Calibration& cal, const std::vector<Request>& requests,
                            const std::vector<Scores>& f32_scores, const Int8Options& o, const LogFn& log) {
  ModelDesc base = f32;
  const size_t n_solo = std::min(o.solo_eval_requests, requests.size());
  const std::vector<Request> solo_req(requests.begin(), requests.begin() + n_solo);
  const std::vector<Scores> solo_ref(f32_scores.begin(), f32_scores.begin() + n_solo);

  // Step 2: each layer alone.
  Int8Result res;
  const std::vector<LinearDesc*> cands = base.Candidates();
  for (size_t i = 0; i < cands.size(); ++i) {
    const LinearDesc& l = *cands[i];
    LayerMeasurement lm;
    lm.layer = l.name;
    lm.weights = static_cast<double>(l.in) * l.out;
    ModelDesc solo = f32;
    LinearDesc* sl = solo.FindLinear(l.name);
    Status st = QuantizeLinear(&solo, sl);
    if (!st.ok()) {
      if (o.policy == Int8Policy::kAll) return st;
      lm.why_not = st.message();
    } else {
      lm.eligible = true;
      auto it = cal.layers.find(l.name);
      lm.sqnr_db = it == cal.layers.end() ? 0 : LayerSqnr(solo, *sl, it->second);
      if (o.policy == Int8Policy::kMeasured) {
        DTRN_ASSIGN_OR_RETURN(std::vector<Scores> s, ScoreDesc(solo, solo_req));
        CompareMetrics cm = Compare(solo_req, solo_ref, s);
        lm.solo_mean_dp = cm.mean_abs_dp;
        lm.solo_tau = cm.mean_tau;
      }
    }
    if (log) {
      log(lm.eligible
              ? Fmt("  [%zu/%zu] %-26s SQNR %5.1f dB, alone: mean|dp| %.3g, tau %.4f", i + 1, cands.size(),
                    l.name.c_str(), lm.sqnr_db, lm.solo_mean_dp, lm.solo_tau)
              : Fmt("  [%zu/%zu] %-26s stays f32: %s", i + 1, cands.size(), l.name.c_str(), lm.why_not.c_str()));
    }
    res.layers.push_back(lm);
  }

  // Step 3: everything eligible int8; revert the worst layers until the margin holds.
  std::vector<bool> int8(res.layers.size());
  for (size_t i = 0; i < res.layers.size(); ++i) int8[i] = res.layers[i].eligible;
  std::vector<std::string> revert_note(res.layers.size());
  for (;;) {
    ModelDesc m = f32;
    DTRN_RETURN_IF_ERROR(SetEmbeddings(&m, o.embeddings));
    for (size_t i = 0; i < res.layers.size(); ++i) {
      if (!int8[i]) continue;
      DTRN_RETURN_IF_ERROR(QuantizeLinear(&m, m.FindLinear(res.layers[i].layer)));
    }
    DTRN_ASSIGN_OR_RETURN(std::vector<Scores> s, ScoreDesc(m, requests));
    CompareMetrics cm = Compare(requests, f32_scores, s);
    size_t n8 = std::count(int8.begin(), int8.end(), true);
    if (log) log(Fmt("  whole model with %zu int8 layers: %s", n8, MetricsStr(cm).c_str()));
    size_t worst = res.layers.size();
    if (o.policy == Int8Policy::kMeasured && !cm.Meets(o.targets, o.margin)) {
      // Knapsack-style: give back the layer with the largest error per int8 weight byte
      // saved, so small noisy layers go before the big ones that carry size and speed.
      auto cost = [&](size_t i) { return res.layers[i].solo_mean_dp / std::max<double>(1.0, res.layers[i].weights); };
      for (size_t i = 0; i < res.layers.size(); ++i) {
        if (int8[i] && (worst == res.layers.size() || cost(i) > cost(worst))) worst = i;
      }
    }
    if (worst == res.layers.size()) {
      if (!cm.Meets(o.targets, o.margin) && log) {
        log(Fmt("  warning: the int8 model misses the targets at the %.0f%% margin with %zu int8 layers%s",
                o.margin * 100, n8,
                o.embeddings == EmbeddingType::kF32 ? "" : " (the embedding quantization alone may be the cause)"));
      }
      for (size_t i = 0; i < res.layers.size(); ++i) {
        LayerMeasurement& lm = res.layers[i];
        lm.int8 = int8[i];
        DecisionDesc d;
        d.layer = lm.layer;
        d.precision = int8[i] ? fb::Precision::INT8 : fb::Precision::F32;
        if (!lm.eligible) {
          d.reason = "f32: " + lm.why_not;
        } else {
          const std::string solo =
              Fmt("SQNR %.1f dB; int8 alone: mean|dp| %.3g, tau %.4f", lm.sqnr_db, lm.solo_mean_dp, lm.solo_tau);
          d.reason = int8[i] ? Fmt("int8: %s; whole int8 model on %zu calibration requests: %s", solo.c_str(),
                                   requests.size(), MetricsStr(cm).c_str())
                             : "f32: " + solo + "; " + revert_note[i];
        }
        m.decisions.push_back(d);
      }
      res.model = std::move(m);
      res.final_metrics = cm;
      return res;
    }
    int8[worst] = false;
    revert_note[worst] =
        Fmt("reverted: the largest int8 error per weight left while the int8 model missed the "
            "targets at %.0f%% of the tolerances (%s)",
            o.margin * 100, MetricsStr(cm).c_str());
    if (log) log("  -> " + res.layers[worst].layer + " back to f32 (largest int8 error per weight)");
  }
}

}  // namespace dtrn::convert
