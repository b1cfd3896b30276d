// Field embeddings (spec "Inputs"): a sparse field's row of its table (F32, F16, or INT8
// with one scale per row), a dense field's projection x = W·v + c; and every embedding's
// squeeze z_i = mean over d of x_i, the TRM's input. User and context fields once per
// request, item fields per candidate tile.
#pragma once

#include <memory>
#include <vector>

#include "buffer.h"
#include "dense.h"
#include "model_impl.h"
#include "request_check.h"

namespace dtrn {

// out[0, d) = row `row` of table t as floats.
void GatherRow(const TableSpec& t, int64_t row, size_t d, float* out);

class FieldEmbeddings {
 public:
  static Result<std::unique_ptr<FieldEmbeddings>> Create(const ModelView& m, WeightCache* cache);

  // x_i and z_i of every user and context field (ids already mapped in ctx).
  Status EmbedUserContext(const Request& r, const MappedContext& ctx, const Exec& x);
  // x_i and z_i of every item field of candidates [c0, c0 + T).
  Status EmbedItems(const Request& r, const MappedCandidates& cands, size_t c0, size_t T, const Exec& x);

  // Reads the user/context embeddings of `prepared` (another worker's, same model) instead
  // of its own: candidate-tile workers share the request's Prepare.
  void ShareRequest(const FieldEmbeddings& prepared) { uc_view_ = prepared.uc_view_, uc_z_view_ = prepared.uc_z_view_; }

  const float* uc() const { return uc_view_; }          // [n_uc, d] by uc slot
  const float* uc_z() const { return uc_z_view_; }      // [n_uc]
  const float* items() const { return items_.data(); }  // [T, Fi, d] of the last tile
  // x_i of field i (config order) for candidate c of the last tile, and its squeeze z_i.
  const float* Field(int i, size_t c) const;
  float Squeeze(int i, size_t c) const;
  // item_id's embedding of candidate c (the target-attention query's input); row stride
  // item_stride() floats.
  const float* ItemId(size_t c) const { return items_.data() + (c * Fi_ + item_slot_) * d_; }
  size_t item_stride() const { return Fi_ * d_; }

 private:
  explicit FieldEmbeddings(const ModelView& m) : m_(m) {}
  const ModelView& m_;
  size_t d_ = 0, Fu_ = 0, Fi_ = 0, item_slot_ = 0;
  std::vector<int> uc_slot_;                       // per field: uc slot (user/context), else -1
  std::vector<std::unique_ptr<DenseChain>> proj_;  // per field: dense projection (dense fields only)
  Buffer<float> uc_, uc_z_;                        // per request
  const float* uc_view_ = nullptr;                 // uc_, or a sharing worker's
  const float* uc_z_view_ = nullptr;
  Buffer<float> items_, item_z_;    // per tile
  Buffer<float> stage_, proj_out_;  // dense inputs staged (XNNPACK reads past an input's end)
};

}  // namespace dtrn
