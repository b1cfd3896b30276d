// int8 vs f32 on the same requests: per-task AUC (when labels exist), mean and max
// |Δp|, mean Kendall tau of the fused ranking, and what a ranking team looks at: tied
// probabilities per request, top-10 overlap and NDCG@10 of the int8 order against the f32
// order, candidates stuck at a common ceiling. Printed as a table, written as JSON.
#pragma once

#include <string>
#include <vector>

#include "dtrn/runtime.h"

namespace dtrn::convert {

// The spec's int8 tolerances.
struct Targets {
  double auc_delta = 0.002;
  double mean_abs_dp = 0.01;
  double kendall_tau = 0.95;
};

struct CompareMetrics {
  size_t requests = 0, candidates = 0;
  std::vector<double> auc_ref, auc_test;  // per task; NaN when labels are absent or one class
  double mean_abs_dp = 0, max_abs_dp = 0;
  double mean_tau = 1;  // over requests where tau is defined
  size_t tau_requests = 0;
  // Per request, summed over tasks: candidates whose probability another candidate of the
  // request also has (0 when all differ), for each model.
  double ties_ref = 0, ties_test = 0;
  // The int8 top 10 by fused score against the f32 top 10 (min(10, N) when N < 10):
  // overlap = |both| / min(10, N); NDCG@10 with the f32 fused scores as gains.
  double top10_overlap = 1, ndcg10 = 1;
  // Candidates whose probability equals the largest the test model gave that task over all
  // compared candidates while their reference probabilities differ: a ceiling, as a
  // calibrated clamp makes it (fraction of candidates).
  double at_ceiling = 0;
  double max_auc_delta() const;  // max over tasks with an AUC, 0 if none
  // Whether all three hold with the targets scaled by `margin` (1 = the spec's, 0.5 = twice as strict).
  bool Meets(const Targets& t, double margin = 1.0) const;
};

// ref and test: the same requests scored by two models.
CompareMetrics Compare(const std::vector<Request>& requests, const std::vector<Scores>& ref,
                       const std::vector<Scores>& test);

std::string FormatReport(const CompareMetrics& m, const std::vector<std::string>& tasks, const Targets& t);
// JSON with the metrics, the targets and extra top-level facts (sizes, decisions), given as a JSON object text.
std::string ReportJson(const CompareMetrics& m, const std::vector<std::string>& tasks, const Targets& t,
                       const std::string& extra_json);

}  // namespace dtrn::convert
