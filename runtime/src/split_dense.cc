#include "split_dense.h"

#include <algorithm>
#include <cstring>

#include "kernels.h"

namespace dtrn {

SplitDense::~SplitDense() = default;

Result<std::unique_ptr<SplitDense>> SplitDense::Create(const LinearSpec& spec, int d, const std::vector<bool>& is_uc,
                                                       const std::vector<int>& uc_slot,
                                                       const std::vector<int>& item_slot, WeightCache* cache) {
  const bool int8 = spec.precision == Precision::INT8;
  const int n = static_cast<int>(is_uc.size());
  if (spec.in != n * d) return Internal("SplitDense: layer '" + spec.name + "' input is not n * d");
  std::unique_ptr<SplitDense> s(new SplitDense(spec));
  s->d_ = d;
  for (int i = 0; i < n; ++i)
    if (is_uc[i]) s->n_uc_ = std::max(s->n_uc_, uc_slot[i] + 1);
  s->uc_field_.assign(s->n_uc_, -1);
  std::vector<int> rest_fields;
  for (int i = 0; i < n; ++i) {
    if (is_uc[i])
      s->uc_field_[uc_slot[i]] = i;
    else
      rest_fields.push_back(i);
  }
  // INT8: item fields leave the per-row GEMM (their products are shared by the tasks).
  std::vector<int> item_fields;  // by item slot
  if (int8 && !item_slot.empty()) {
    std::vector<int> kept;
    for (int i : rest_fields) {
      if (item_slot[i] < 0) {
        kept.push_back(i);
        continue;
      }
      if (static_cast<int>(item_fields.size()) <= item_slot[i]) item_fields.resize(item_slot[i] + 1, -1);
      item_fields[item_slot[i]] = i;
    }
    rest_fields = kept;
  }
  s->n_item_ = static_cast<int>(item_fields.size());
  s->rest_width_ = static_cast<int>(rest_fields.size()) * d;
  // W_rest: the non-uc column blocks, in r_k order.
  const size_t out = spec.out, in = spec.in, rw = s->rest_width_;
  s->rest_spec_ = spec;
  s->rest_spec_.name = spec.name + " (item and interest columns)";
  s->rest_spec_.in = s->rest_width_;
  s->rest_spec_.relu = false;
  if (int8) {
    s->rest_i8_.resize(out * rw);
    for (size_t o = 0; o < out; ++o)
      for (size_t j = 0; j < rest_fields.size(); ++j)
        std::memcpy(&s->rest_i8_[o * rw + j * d], spec.weight_i8 + o * in + rest_fields[j] * d, d);
    s->rest_spec_.weight_i8 = s->rest_i8_.data();
    DTRN_ASSIGN_OR_RETURN(s->rest_i8_layer_,
                          Int8Linear::Create(s.get(), s->rest_spec_.name, s->rest_i8_.data(), spec.weight_scale,
                                             spec.bias_f32, spec.out, s->rest_width_, cache));
    s->item_w_.resize(s->n_item_);
    for (int slot = 0; slot < s->n_item_; ++slot) {
      std::vector<int8_t>& w = s->item_w_[slot];
      w.resize(out * d);
      for (size_t o = 0; o < out; ++o) std::memcpy(&w[o * d], spec.weight_i8 + o * in + item_fields[slot] * d, d);
      DTRN_ASSIGN_OR_RETURN(auto l, Int8Linear::Create(&w, spec.name + " (item slot " + std::to_string(slot) + ")",
                                                       w.data(), spec.weight_scale, nullptr, spec.out, d, cache));
      s->item_layers_.push_back(std::move(l));
    }
    // W_iᵀ, [n_uc * d, out] by uc slot: the per-request products run along out.
    s->uc_weight_.assign(static_cast<size_t>(s->n_uc_) * d * out, 0);
    for (int u = 0; u < s->n_uc_; ++u)
      for (int e = 0; e < d; ++e)
        for (size_t o = 0; o < out; ++o)
          s->uc_weight_[(static_cast<size_t>(u) * d + e) * out + o] = spec.weight_i8[o * in + s->uc_field_[u] * d + e];
  } else {
    s->rest_weight_.resize(out * rw);
    for (size_t o = 0; o < out; ++o)
      for (size_t j = 0; j < rest_fields.size(); ++j)
        std::memcpy(&s->rest_weight_[o * rw + j * d], spec.weight_f32 + o * in + rest_fields[j] * d, d * sizeof(float));
    s->rest_spec_.weight_f32 = s->rest_weight_.data();
    DTRN_ASSIGN_OR_RETURN(s->rest_f32_, CreateDenseLayer(s->rest_spec_, cache));
  }
  s->p_.assign(static_cast<size_t>(s->n_uc_) * out, 0.f);
  s->p_view_ = s->p_.data();
  return s;
}

void SplitDense::PrepareRequest(const float* uc) {
  const size_t out = spec_.out;
  p_view_ = p_.data();
  for (int u = 0; u < n_uc_; ++u) {
    const float* x = uc + static_cast<size_t>(u) * d_;
    if (!uc_weight_.empty()) {  // P_i[o] = s_w[o] · Σ_e q[o, e] · x_i[e]: the dequantized weights
      float* pu = &p_[u * out];
      std::memset(pu, 0, out * sizeof(float));
      for (int e = 0; e < d_; ++e)
        kernels::AxpyInt8(out, x[e], uc_weight_.data() + (static_cast<size_t>(u) * d_ + e) * out, pu);
      for (size_t o = 0; o < out; ++o) pu[o] *= spec_.weight_scale[o];
    } else {
      kernels::Gemv(out, d_, spec_.weight_f32 + static_cast<size_t>(uc_field_[u]) * d_, spec_.in, x, &p_[u * out]);
    }
  }
}

void SplitDense::PrepareTile(size_t T, const QuantizedRows& q_items, uint64_t epoch) {
  if (item_layers_.empty() || (epoch == q_epoch_ && T == q_tile_)) return;
  const size_t out = spec_.out;
  float* q = q_.Reserve(static_cast<size_t>(n_item_) * T * out);
  if (q == nullptr) return;  // Run reports it
  const int8::Epilogue plain;
  for (int slot = 0; slot < n_item_; ++slot)
    item_layers_[slot]->Run(q_items, slot * T, T, q + slot * T * out, out, plain, nullptr);
  q_tile_ = T;
  q_epoch_ = epoch;
}

Status SplitDense::Run(size_t row0, size_t rows, size_t T, const float* r_rest, const QuantizedRows* q_rest,
                       const float* a_uc, const float* a_item, float* out, pthreadpool_t pool, const float* mix,
                       size_t ldmix) {
  if (rows == 0) return Status::Ok();
  const size_t n_out = spec_.out;
  if (rest_i8_layer_) {
    if (n_item_ > 0 && (q_.data() == nullptr || q_tile_ != T))
      return Internal("layer '" + spec_.name + "': item products of the tile missing (out of memory?)");
    // One call per task block: a row's item products are its candidate's.
    for (size_t r = row0; r < row0 + rows;) {
      const size_t block_end = std::min(row0 + rows, (r / T + 1) * T), c = r % T, n = block_end - r;
      int8::Epilogue e;
      e.relu = spec_.relu;
      e.add_a = a_uc + r * n_uc_, e.lda = n_uc_, e.add_p = p_view_, e.ldp = n_out, e.add_n = n_uc_;
      if (n_item_ > 0)
        e.radd_a = a_item + r * n_item_, e.ldra = n_item_, e.radd_p = q_.data() + c * n_out, e.ldrp_f = T * n_out,
        e.ldrp_r = n_out, e.radd_n = n_item_;
      e.mix = mix ? mix + (r - row0) * ldmix : nullptr, e.ldmix = ldmix;
      float* dst = out + (r - row0) * n_out;
      if (q_rest != nullptr)
        rest_i8_layer_->Run(*q_rest, r, n, dst, n_out, e, pool);
      else
        DTRN_RETURN_IF_ERROR(rest_i8_layer_->Run(n, r_rest + r * rest_width_, rest_width_, dst, n_out, e, pool));
      r = block_end;
    }
    return Status::Ok();
  }
  if (mix != nullptr) return Internal("layer '" + spec_.name + "': an f32 split layer takes no mix");
  a_uc += row0 * n_uc_;
  r_rest += row0 * rest_width_;
  DTRN_RETURN_IF_ERROR(rest_f32_->Run(rows, r_rest, out, pool));
  // out += a_uc · P, then the layer's relu.
  kernels::GemmNNAdd(rows, spec_.out, n_uc_, a_uc, n_uc_, p_view_, spec_.out, out, spec_.out);
  if (spec_.relu) kernels::Relu(rows * spec_.out, out);
  return Status::Ok();
}

}  // namespace dtrn
