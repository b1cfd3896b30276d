#include "dtrn/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace dtrn::metrics {

double Auc(const std::vector<float>& scores, const std::vector<float>& labels) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const size_t n = scores.size();
  if (labels.size() != n) return nan;
  for (float s : scores)
    if (std::isnan(s)) return nan;
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mann-Whitney: sum of the positives' ranks, a tie group sharing its average rank.
  double pos_rank_sum = 0, positives = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[idx[j]] == scores[idx[i]]) ++j;
    const double avg_rank = 0.5 * static_cast<double>(i + 1 + j);  // ranks i+1 .. j
    for (size_t t = i; t < j; ++t)
      if (labels[idx[t]] > 0.5f) {
        pos_rank_sum += avg_rank;
        positives += 1;
      }
    i = j;
  }
  const double negatives = static_cast<double>(n) - positives;
  if (positives == 0 || negatives == 0) return nan;
  return (pos_rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

double KendallTau(const std::vector<float>& a, const std::vector<float>& b) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const size_t n = a.size();
  if (b.size() != n || n < 2) return nan;
  for (size_t i = 0; i < n; ++i)
    if (std::isnan(a[i]) || std::isnan(b[i])) return nan;
  // O(n^2): rankings are per request (hundreds of candidates).
  double concordant = 0, discordant = 0, ties_a = 0, ties_b = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) {
      const int da = (a[i] > a[j]) - (a[i] < a[j]), db = (b[i] > b[j]) - (b[i] < b[j]);
      if (da == 0) ties_a += 1;
      if (db == 0) ties_b += 1;
      if (da == 0 || db == 0) continue;
      ((da > 0) == (db > 0) ? concordant : discordant) += 1;
    }
  const double pairs = static_cast<double>(n) * (n - 1) / 2;
  const double denom = std::sqrt((pairs - ties_a) * (pairs - ties_b));
  if (denom == 0 || std::isnan(denom)) return nan;
  return (concordant - discordant) / denom;
}

}  // namespace dtrn::metrics
