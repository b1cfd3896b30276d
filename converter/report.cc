#include "report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "dtrn/metrics.h"

namespace dtrn::convert {

double CompareMetrics::max_auc_delta() const {
  double m = 0;
  for (size_t k = 0; k < auc_ref.size(); ++k) {
    if (std::isfinite(auc_ref[k]) && std::isfinite(auc_test[k])) m = std::max(m, std::fabs(auc_ref[k] - auc_test[k]));
  }
  return m;
}

bool CompareMetrics::Meets(const Targets& t, double margin) const {
  return max_auc_delta() <= t.auc_delta * margin && mean_abs_dp <= t.mean_abs_dp * margin &&
         (tau_requests == 0 || mean_tau >= 1.0 - (1.0 - t.kendall_tau) * margin);
}

namespace {

// Per task, candidates of one request whose probability is not unique.
double Ties(const Scores& s) {
  double t = 0;
  for (size_t k = 0; k < s.num_tasks; ++k) {
    std::set<float> seen;
    for (size_t i = 0; i < s.num_candidates; ++i) seen.insert(s.prob(i, k));
    t += static_cast<double>(s.num_candidates - seen.size());
  }
  return t;
}

}  // namespace

CompareMetrics Compare(const std::vector<Request>& requests, const std::vector<Scores>& ref,
                       const std::vector<Scores>& test) {
  CompareMetrics m;
  m.requests = requests.size();
  const size_t K = ref.empty() ? 0 : ref[0].num_tasks;
  std::vector<std::vector<float>> pr(K), pt(K), lab(K);
  bool labels = true;
  double sum_dp = 0, sum_tau = 0, sum_overlap = 0, sum_ndcg = 0;
  size_t ranked = 0;
  for (size_t r = 0; r < requests.size(); ++r) {
    const Scores& a = ref[r];
    const Scores& b = test[r];
    const std::vector<float>& w = requests[r].weights;
    std::vector<float> fa(a.num_candidates, 0.f), fb(a.num_candidates, 0.f);
    labels = labels && requests[r].labels.size() == a.num_candidates;
    for (size_t i = 0; i < a.num_candidates; ++i) {
      for (size_t k = 0; k < K; ++k) {
        const float wk = w.empty() ? 1.f : w[k];
        const double dp = std::fabs(static_cast<double>(a.prob(i, k)) - b.prob(i, k));
        sum_dp += dp;
        m.max_abs_dp = std::max(m.max_abs_dp, dp);
        fa[i] += wk * a.prob(i, k);  // summed in task order, as Rank does
        fb[i] += wk * b.prob(i, k);
        pr[k].push_back(a.prob(i, k));
        pt[k].push_back(b.prob(i, k));
        if (labels) lab[k].push_back(requests[r].labels[i][k]);
      }
    }
    m.candidates += a.num_candidates;
    m.ties_ref += Ties(a);
    m.ties_test += Ties(b);
    // Top 10 by the fused score: overlap and NDCG@10 (gains: the f32 fused scores).
    const size_t top = std::min<size_t>(10, a.num_candidates);
    auto ra = TopK(a, w, top), rb = TopK(b, w, top);
    if (ra.ok() && rb.ok() && top > 0) {
      size_t both = 0;
      double dcg = 0, idcg = 0;
      for (size_t j = 0; j < top; ++j) {
        both += std::count(ra.value().begin(), ra.value().end(), rb.value()[j]);
        dcg += fa[rb.value()[j]] / std::log2(j + 2.0);
        idcg += fa[ra.value()[j]] / std::log2(j + 2.0);
      }
      sum_overlap += static_cast<double>(both) / top;
      sum_ndcg += idcg > 0 ? dcg / idcg : 1.0;
      ++ranked;
    }
    const double tau = metrics::KendallTau(fa, fb);
    if (std::isfinite(tau)) {
      sum_tau += tau;
      ++m.tau_requests;
    }
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (size_t k = 0; k < K; ++k) {
    m.auc_ref.push_back(labels ? metrics::Auc(pr[k], lab[k]) : nan);
    m.auc_test.push_back(labels ? metrics::Auc(pt[k], lab[k]) : nan);
  }
  m.mean_abs_dp = m.candidates && K ? sum_dp / (m.candidates * K) : 0;
  if (ranked) m.top10_overlap = sum_overlap / ranked, m.ndcg10 = sum_ndcg / ranked;
  if (m.requests) m.ties_ref /= m.requests, m.ties_test /= m.requests;
  // The ceiling: candidates at the test model's per-task maximum whose reference values differ.
  size_t stuck = 0;
  for (size_t k = 0; k < K; ++k) {
    if (pt[k].empty()) continue;
    const float top = *std::max_element(pt[k].begin(), pt[k].end());
    std::set<float> refs;
    size_t at = 0;
    for (size_t i = 0; i < pt[k].size(); ++i)
      if (pt[k][i] == top) ++at, refs.insert(pr[k][i]);
    if (refs.size() > 1) stuck += at;
  }
  m.at_ceiling = m.candidates ? static_cast<double>(stuck) / m.candidates : 0;
  m.mean_tau = m.tau_requests ? sum_tau / m.tau_requests : std::numeric_limits<double>::quiet_NaN();
  return m;
}

std::string FormatReport(const CompareMetrics& m, const std::vector<std::string>& tasks, const Targets& t) {
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "int8 vs f32 on %zu requests, %zu candidates\n", m.requests, m.candidates);
  out += buf;
  std::snprintf(buf, sizeof buf, "  %-14s %10s %10s %10s  %s\n", "task", "AUC f32", "AUC int8", "|delta|", "target");
  out += buf;
  for (size_t k = 0; k < tasks.size() && k < m.auc_ref.size(); ++k) {
    if (std::isfinite(m.auc_ref[k]) && std::isfinite(m.auc_test[k])) {
      const double d = std::fabs(m.auc_ref[k] - m.auc_test[k]);
      std::snprintf(buf, sizeof buf, "  %-14s %10.5f %10.5f %10.5f  <= %.3f %s\n", tasks[k].c_str(), m.auc_ref[k],
                    m.auc_test[k], d, t.auc_delta, d <= t.auc_delta ? "ok" : "MISSED");
    } else {
      std::snprintf(buf, sizeof buf, "  %-14s %10s %10s %10s  (no labels or one class)\n", tasks[k].c_str(), "-", "-",
                    "-");
    }
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "  mean |dp|      %10.6f                        <= %.3f %s\n", m.mean_abs_dp,
                t.mean_abs_dp, m.mean_abs_dp <= t.mean_abs_dp ? "ok" : "MISSED");
  out += buf;
  std::snprintf(buf, sizeof buf, "  max |dp|       %10.6f\n", m.max_abs_dp);
  out += buf;
  if (m.tau_requests) {
    std::snprintf(buf, sizeof buf, "  Kendall tau    %10.5f (mean of %zu requests)  >= %.2f %s\n", m.mean_tau,
                  m.tau_requests, t.kendall_tau, m.mean_tau >= t.kendall_tau ? "ok" : "MISSED");
  } else {
    std::snprintf(buf, sizeof buf,
                  "  Kendall tau    undefined (every request has < 2 candidates or constant scores)\n");
  }
  out += buf;
  std::snprintf(buf, sizeof buf, "  tied probabilities per request: f32 %.2f, int8 %.2f\n", m.ties_ref, m.ties_test);
  out += buf;
  std::snprintf(buf, sizeof buf, "  top-10 overlap %10.4f   NDCG@10 %.4f   candidates at a ceiling %.4f\n",
                m.top10_overlap, m.ndcg10, m.at_ceiling);
  out += buf;
  return out;
}

std::string ReportJson(const CompareMetrics& m, const std::vector<std::string>& tasks, const Targets& t,
                       const std::string& extra_json) {
  using json = nlohmann::json;
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json j = json::parse(extra_json.empty() ? "{}" : extra_json, nullptr, false);
  if (!j.is_object()) j = json::object();
  json per_task = json::array();
  for (size_t k = 0; k < tasks.size() && k < m.auc_ref.size(); ++k) {
    per_task.push_back({{"task", tasks[k]},
                        {"auc_f32", num(m.auc_ref[k])},
                        {"auc_int8", num(m.auc_test[k])},
                        {"auc_delta", num(std::fabs(m.auc_ref[k] - m.auc_test[k]))}});
  }
  j["comparison"] = {{"requests", m.requests},
                     {"candidates", m.candidates},
                     {"tasks", per_task},
                     {"mean_abs_dp", m.mean_abs_dp},
                     {"max_abs_dp", m.max_abs_dp},
                     {"mean_kendall_tau", num(m.mean_tau)},
                     {"tau_requests", m.tau_requests},
                     {"ties_per_request_f32", m.ties_ref},
                     {"ties_per_request_int8", m.ties_test},
                     {"top10_overlap", m.top10_overlap},
                     {"ndcg10", m.ndcg10},
                     {"fraction_at_ceiling", m.at_ceiling}};
  j["targets"] = {{"auc_delta", t.auc_delta}, {"mean_abs_dp", t.mean_abs_dp}, {"kendall_tau", t.kendall_tau}};
  j["meets_targets"] = m.Meets(t);
  return j.dump(2) + "\n";
}

}  // namespace dtrn::convert
