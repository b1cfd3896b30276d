// Ranking metrics shared by dtrn-run, dtrn-convert's report and the tests.
#pragma once

#include <vector>

namespace dtrn::metrics {

// Area under the ROC curve of scores against 0/1 labels (label > 0.5 is positive):
// the probability that a random positive outscores a random negative, ties counted
// half. NaN when there is only one class, the sizes differ, or a score is NaN.
double Auc(const std::vector<float>& scores, const std::vector<float>& labels);

// Kendall's tau-b between two score vectors of the same items (ties handled as tau-b).
// 1 = same order, -1 = reversed. NaN when sizes differ, n < 2, a value is NaN, or a side is constant.
double KendallTau(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace dtrn::metrics
