#include "embed.h"

#include <cstring>

#include "kernels.h"

namespace dtrn {

void GatherRow(const TableSpec& t, int64_t row, size_t d, float* out) {
  switch (t.type) {
    case DType::F32: kernels::RowF32(static_cast<const float*>(t.data), row, d, out); break;
    case DType::F16: kernels::RowF16(static_cast<const uint16_t*>(t.data), row, d, out); break;
    case DType::INT8: kernels::RowInt8(static_cast<const int8_t*>(t.data), t.row_scale, row, d, out); break;
    default: break;  // the verifier admits only the three above
  }
}

Result<std::unique_ptr<FieldEmbeddings>> FieldEmbeddings::Create(const ModelView& m, WeightCache* cache) {
  std::unique_ptr<FieldEmbeddings> e(new FieldEmbeddings(m));
  e->d_ = m.d;
  e->Fu_ = m.group_fields[0].size();
  e->Fi_ = m.group_fields[2].size();
  e->item_slot_ = m.field_specs[m.item_field].group_slot;
  e->uc_slot_.assign(m.F, -1);
  e->proj_.resize(m.F);
  for (int i = 0; i < m.F; ++i) {
    if (m.fields[i].group != FieldGroup::kItem) e->uc_slot_[i] = UcSlot(m, i);
    if (m.fields[i].kind == FieldKind::kDense) {
      DTRN_ASSIGN_OR_RETURN(e->proj_[i], DenseChain::Create({&m.field_specs[i].projection}, cache));
    }
  }
  const size_t n_uc = m.group_fields[0].size() + m.group_fields[1].size();
  if (!e->uc_.Reserve(n_uc * m.d) || !e->uc_z_.Reserve(n_uc)) return OutOfMemory("user/context embeddings");
  e->uc_view_ = e->uc_.data();
  e->uc_z_view_ = e->uc_z_.data();
  return e;
}

Status FieldEmbeddings::EmbedUserContext(const Request& r, const MappedContext& ctx, const Exec& x) {
  float* dst = uc_.data();
  float* zs = uc_z_.data();
  uc_view_ = dst;
  uc_z_view_ = zs;
  for (int g = 0; g < 2; ++g) {
    const std::vector<FieldValue>& values = g == 0 ? r.user : r.context;
    const std::vector<int>& fields = m_.group_fields[g];
    for (size_t s = 0; s < fields.size(); ++s) {
      const int i = fields[s];
      const int slot = uc_slot_[i];
      float* row = dst + static_cast<size_t>(slot) * d_;
      if (m_.fields[i].kind == FieldKind::kSparse) {
        GatherRow(m_.tables[m_.field_specs[i].table], ctx.uc_rows[slot], d_, row);
      } else {
        const std::vector<float>& v = values[s].dense;
        float* in = stage_.Reserve(v.size());
        if (in == nullptr) return OutOfMemory("dense field '" + m_.fields[i].name + "'");
        std::memcpy(in, v.data(), v.size() * sizeof(float));
        DTRN_RETURN_IF_ERROR(proj_[i]->Run(1, in, row, x));
      }
      zs[slot] = kernels::Mean(row, d_);
    }
  }
  return Status::Ok();
}

Status FieldEmbeddings::EmbedItems(const Request& r, const MappedCandidates& cands, size_t c0, size_t T,
                                   const Exec& x) {
  float* it = items_.Reserve(T * Fi_ * d_);
  float* zi = item_z_.Reserve(T * Fi_);
  if (it == nullptr || zi == nullptr) return OutOfMemory("item embeddings");
  const std::vector<int>& fields = m_.group_fields[2];
  for (size_t s = 0; s < Fi_; ++s) {
    const int i = fields[s];
    if (m_.fields[i].kind == FieldKind::kSparse) {
      const TableSpec& t = m_.tables[m_.field_specs[i].table];
      for (size_t c = 0; c < T; ++c) GatherRow(t, cands.rows[(c0 + c) * Fi_ + s], d_, it + (c * Fi_ + s) * d_);
    } else {
      const size_t w = m_.field_specs[i].width;
      float* in = stage_.Reserve(T * w);
      float* pr = proj_out_.Reserve(T * d_);
      if (in == nullptr || pr == nullptr) return OutOfMemory("dense field '" + m_.fields[i].name + "'");
      for (size_t c = 0; c < T; ++c) std::memcpy(in + c * w, r.candidates[c0 + c][s].dense.data(), w * sizeof(float));
      DTRN_RETURN_IF_ERROR(proj_[i]->Run(T, in, pr, x));
      for (size_t c = 0; c < T; ++c) std::memcpy(it + (c * Fi_ + s) * d_, pr + c * d_, d_ * sizeof(float));
    }
    for (size_t c = 0; c < T; ++c) zi[c * Fi_ + s] = kernels::Mean(it + (c * Fi_ + s) * d_, d_);
  }
  return Status::Ok();
}

const float* FieldEmbeddings::Field(int i, size_t c) const {
  if (uc_slot_[i] >= 0) return uc_view_ + static_cast<size_t>(uc_slot_[i]) * d_;
  return items_.data() + (c * Fi_ + m_.field_specs[i].group_slot) * d_;
}

float FieldEmbeddings::Squeeze(int i, size_t c) const {
  if (uc_slot_[i] >= 0) return uc_z_view_[uc_slot_[i]];
  return item_z_.data()[c * Fi_ + m_.field_specs[i].group_slot];
}

}  // namespace dtrn
