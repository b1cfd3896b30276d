// Rank / TopK by the fused score Σ_k w_k · p_k (the spec's "Output"), computed here only.
#include <algorithm>
#include <cmath>
#include <new>
#include <numeric>

#include "dtrn/runtime.h"

namespace dtrn {

const char* DenseKernelsName(DenseKernels k) {
  switch (k) {
    case DenseKernels::kAuto: return "auto";
    case DenseKernels::kPortable: return "portable";
    case DenseKernels::kAvx2: return "avx2";
    case DenseKernels::kAvx512Vnni: return "avx512-vnni";
    case DenseKernels::kNeonDot: return "neon-dotprod";
  }
  return "?";
}

bool ParseDenseKernels(const std::string& name, DenseKernels* out) {
  for (DenseKernels k : {DenseKernels::kAuto, DenseKernels::kPortable, DenseKernels::kAvx2, DenseKernels::kAvx512Vnni,
                         DenseKernels::kNeonDot})
    if (name == DenseKernelsName(k)) return *out = k, true;
  return false;
}

float FusedScore(const Scores& scores, const std::vector<float>& weights, size_t i) {
  const size_t k = scores.num_tasks;
  float s = 0.f;
  for (size_t t = 0; t < k; ++t) s += (weights.empty() ? 1.f : weights[t]) * scores.probabilities[i * k + t];
  return s;
}

namespace {

// Fused score per candidate: sum_k w_k * p_k, summed in task order.
Result<std::vector<float>> Fused(const Scores& scores, const std::vector<float>& weights) {
  const size_t n = scores.num_candidates, k = scores.num_tasks;
  if (scores.probabilities.size() != n * k)
    return InvalidArgument("scores: " + std::to_string(scores.probabilities.size()) + " probabilities for " +
                           std::to_string(n) + " candidates x " + std::to_string(k) + " tasks");
  if (!weights.empty() && weights.size() != k)
    return InvalidArgument("weights: " + std::to_string(weights.size()) + " values, expected one per task (" +
                           std::to_string(k) + ")");
  for (size_t t = 0; t < weights.size(); ++t)
    if (!std::isfinite(weights[t])) return InvalidArgument("weights[" + std::to_string(t) + "] is not finite");
  std::vector<float> fused(n, 0.f);
  for (size_t i = 0; i < n; ++i) fused[i] = FusedScore(scores, weights, i);
  return fused;
}

// Best first, ties (and NaN, placed last) to the lower index: a strict total order.
struct Better {
  const std::vector<float>* f;
  bool operator()(int a, int b) const {
    float x = (*f)[a], y = (*f)[b];
    bool xn = std::isnan(x), yn = std::isnan(y);
    if (xn != yn) return yn;
    if (!xn && x != y) return x > y;
    return a < b;
  }
};

}  // namespace

Result<std::vector<int>> TopK(const Scores& scores, const std::vector<float>& weights, size_t k) {
  try {
    DTRN_ASSIGN_OR_RETURN(std::vector<float> fused, Fused(scores, weights));
    std::vector<int> order(fused.size());
    std::iota(order.begin(), order.end(), 0);
    k = std::min(k, order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(), Better{&fused});
    order.resize(k);
    return order;
  } catch (const std::bad_alloc&) {
    return Internal("out of memory while ranking");
  }
}

Result<std::vector<int>> Rank(const Scores& scores, const std::vector<float>& weights) {
  return TopK(scores, weights, scores.num_candidates);
}

}  // namespace dtrn
