// The spec's exact rewrite of a head MLP's first layer (experts, gates, towers of the
// `towers` head): since r_k = concat_i(a_i · x_i),
//   W · r_k + c = c + W_rest · r_rest + Σ_{i ∈ user, context} a_i · (W_i · x_i),
// and W_i · x_i depends on the request only. PrepareRequest computes those products once;
// per candidate only the item and interest columns (r_rest) go through the GEMM, whose
// epilogue adds Σ a_i·P_i and applies relu.
//   F32:  W_rest on XNNPACK, then the products added (GemmNNAdd), relu.
//   INT8: W_rest on our int8 kernel (r_rest quantized per row), the products and relu in
//         its epilogue; P_i = W_i · x_i uses the dequantized weights s_w[o]·q.
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
                                                    const std::vector<int>& uc_slot, WeightCache* cache);
  ~SplitDense();
  // uc: [n_uc, d] user/context embeddings by uc slot.
  void PrepareRequest(const float* uc);
  // Uses `prepared`'s per-request products (another worker's copy of this layer).
  void ShareRequest(const SplitDense& prepared) { p_view_ = prepared.p_view_; }
  // Rows [row0, row0 + rows) of r_rest [*, rest_width] (item fields then interests, r_k
  // order; INT8 layers read its quantized copy q_rest); a_uc [rows, n_uc] (the TRM weights
  // of the uc fields, by uc slot, for those rows); out [rows, out]. mix non-null (INT8):
  // out[r] += mix[r * ldmix] · layer(r) instead of out[r] = layer(r).
  Status Run(size_t row0, size_t rows, const float* r_rest, const QuantizedRows* q_rest, const float* a_uc, float* out,
             pthreadpool_t pool, const float* mix = nullptr, size_t ldmix = 0);
  bool int8() const { return rest_i8_layer_ != nullptr; }
  int out_features() const { return spec_.out; }
  int rest_width() const { return rest_width_; }
  // The rest columns' weights [out, rest_width] (valid for the layer's life).
  const float* rest_weight_f32() const { return rest_weight_.empty() ? nullptr : rest_weight_.data(); }
  const int8_t* rest_weight_i8() const { return rest_i8_.empty() ? nullptr : rest_i8_.data(); }

 private:
  SplitDense(const LinearSpec& spec) : spec_(spec) {}
  const LinearSpec& spec_;
  int d_ = 0, n_uc_ = 0, rest_width_ = 0;
  std::vector<int> uc_field_;      // uc slot -> field index i
  std::vector<float> p_;           // [n_uc, out]: W_i · x_i of the prepared request
  const float* p_view_ = nullptr;  // p_, or a sharing worker's
  // The GEMM over the rest columns; its weights live as long as the layer.
  LinearSpec rest_spec_;
  std::vector<float> rest_weight_;  // F32: [out, rest_width]
  std::vector<int8_t> rest_i8_;     // INT8: [out, rest_width]
  std::unique_ptr<DenseLayer> rest_f32_;
  std::unique_ptr<Int8Linear> rest_i8_layer_;
  std::vector<int8_t> uc_weight_;  // INT8: [n_uc * d, out]: W_iᵀ by uc slot
};

}  // namespace dtrn
