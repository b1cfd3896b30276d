// The spec's exact rewrite of a head MLP's first layer (experts, gates, towers of the
// `towers` head): since r_k = concat_i(a_i · x_i),
//   W · r_k + c = c + W_rest · r_rest + Σ_{i ∈ user, context} a_i · (W_i · x_i),
// and W_i · x_i depends on the request only. PrepareRequest computes those products once;
// per candidate only the item and interest columns (r_rest) go through the GEMM, whose
// epilogue adds Σ a_i·P_i and applies relu.
//   F32:  W_rest on XNNPACK, then the products added (GemmNNAdd), relu.
//   INT8: the item fields' products Q_i = W_i · x_i do not depend on the task either (only
//         a_{k,i} does): PrepareTile computes them once per candidate (x_i quantized per
//         row), and the per-(task, candidate) GEMM runs on the interest columns only; its
//         epilogue adds Σ a_i·P_i + Σ a_i·Q_i and applies relu. P_i uses the dequantized
//         weights s_w[o]·q.
#pragma once

#include <memory>
#include <vector>

#include "dense.h"

namespace dtrn {

class SplitDense {
 public:
  // is_uc[i], i < n: field i of r_k is a user/context field (constant per request);
  // uc_slot[i]: its row in the per-request embedding block; item_slot[i]: its item slot
  // (group order) for item fields, -1 for the others (INT8 layers share their products
  // across tasks; empty: no field is shared).
  static Result<std::unique_ptr<SplitDense>> Create(const LinearSpec& spec, int d, const std::vector<bool>& is_uc,
                                                    const std::vector<int>& uc_slot, const std::vector<int>& item_slot,
                                                    WeightCache* cache);
  ~SplitDense();
  // uc: [n_uc, d] user/context embeddings by uc slot.
  void PrepareRequest(const float* uc);
  // Uses `prepared`'s per-request products (another worker's copy of this layer).
  void ShareRequest(const SplitDense& prepared) { p_view_ = prepared.p_view_; }
  // INT8: the item products Q_i of a tile of T candidates; q_items holds each item slot's
  // embeddings quantized per row, slot-major (row s·T + c). Once per tile: a repeat with
  // the same epoch is a no-op.
  void PrepareTile(size_t T, const QuantizedRows& q_items, uint64_t epoch);
  // Rows [row0, row0 + rows) of the K x T stack of r_k, T the tile. The inputs are the whole
  // stack: F32 layers read r_rest [*, rest_width] (item fields then interests, r_k order),
  // INT8 ones q_rest (the interest columns, quantized); a_uc [*, n_uc] and a_item [*, n_item]
  // the TRM weights of the uc and item fields. out [rows, out]. mix non-null (INT8):
  // out[r] += mix[r * ldmix] · layer(r) instead of out[r] = layer(r).
  Status Run(size_t row0, size_t rows, size_t T, const float* r_rest, const QuantizedRows* q_rest, const float* a_uc,
             const float* a_item, float* out, pthreadpool_t pool, const float* mix = nullptr, size_t ldmix = 0);
  bool int8() const { return rest_i8_layer_ != nullptr; }
  // The columns the per-row GEMM reads: item + interest (F32) or interest only (INT8).
  int out_features() const { return spec_.out; }
  int rest_width() const { return rest_width_; }
  // The rest columns' weights [out, rest_width] (valid for the layer's life).
  const float* rest_weight_f32() const { return rest_weight_.empty() ? nullptr : rest_weight_.data(); }
  const int8_t* rest_weight_i8() const { return rest_i8_.empty() ? nullptr : rest_i8_.data(); }

 private:
  SplitDense(const LinearSpec& spec) : spec_(spec) {}
  const LinearSpec& spec_;
  int d_ = 0, n_uc_ = 0, n_item_ = 0, rest_width_ = 0;
  // INT8: one layer per item slot (W_i, no bias) and their products for the current tile.
  std::vector<std::unique_ptr<Int8Linear>> item_layers_;
  std::vector<std::vector<int8_t>> item_w_;
  Buffer<float> q_;  // [n_item, T, out]
  size_t q_tile_ = 0;
  uint64_t q_epoch_ = 0;
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
