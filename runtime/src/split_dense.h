// The spec's exact rewrite of a head MLP's first layer (experts, gates, towers of the
// `towers` head): since r_k = concat_i(a_i · x_i),
//   W · r_k + c = c + W_rest · r_rest + Σ_{i ∈ user, context} a_i · (W_i · x_i),
// and W_i · x_i depends on the request only. Prepare computes those products once;
// per candidate only the item and interest columns (r_rest) go through the GEMM.
// F32 layers only (XNNPACK's int8 operators requantize inside, before the sum).
#pragma once

#include <memory>
#include <vector>

#include "dense.h"

namespace dtrn {

class SplitDense {
 public:
  // is_uc[i], i < n: field i of r_k is a user/context field (constant per request);
  // uc_slot[i]: its row in the per-request embedding block.
  static Result<std::unique_ptr<SplitDense>> Create(const LinearSpec& spec, int d, const std::vector<bool>& is_uc,
                                                    const std::vector<int>& uc_slot, DenseKernels kernels);
  ~SplitDense();
  // uc: [n_uc, d] user/context embeddings by uc slot.
  void PrepareRequest(const float* uc);
  // r_rest [rows, rest_width] (item fields then interests, r_k order); a_uc [rows, n_uc]
  // (the TRM weights of the uc fields, by uc slot); out [rows, out].
  Status Run(size_t rows, const float* r_rest, const float* a_uc, float* out, pthreadpool_t pool);
  int out_features() const { return spec_.out; }
  int rest_width() const { return rest_width_; }

 private:
  SplitDense(const LinearSpec& spec) : spec_(spec) {}
  const LinearSpec& spec_;
  int d_ = 0, n_uc_ = 0, rest_width_ = 0;
  std::vector<int> uc_field_;   // uc slot -> field index i
  std::vector<float> p_;        // [n_uc, out]: W_i · x_i of the prepared request
  std::unique_ptr<DenseLayer> rest_;  // W_rest with bias, no relu (applied after the sum)
  LinearSpec rest_spec_;
  std::vector<float> rest_weight_;
};

}  // namespace dtrn
