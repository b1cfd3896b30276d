#include "split_dense.h"

#include <cstring>

#include "kernels.h"

namespace dtrn {

SplitDense::~SplitDense() = default;

Result<std::unique_ptr<SplitDense>> SplitDense::Create(const LinearSpec& spec, int d, const std::vector<bool>& is_uc,
                                                       const std::vector<int>& uc_slot, DenseKernels kernels) {
  if (spec.precision != Precision::kF32) return Internal("SplitDense: layer '" + spec.name + "' is not F32");
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
  s->rest_width_ = static_cast<int>(rest_fields.size()) * d;
  // W_rest: the non-uc column blocks, in r_k order. XNNPACK packs it at creation.
  const size_t out = spec.out, in = spec.in;
  s->rest_weight_.resize(out * s->rest_width_);
  for (size_t o = 0; o < out; ++o)
    for (size_t j = 0; j < rest_fields.size(); ++j)
      std::memcpy(&s->rest_weight_[o * s->rest_width_ + j * d], spec.weight_f32 + o * in + rest_fields[j] * d,
                  d * sizeof(float));
  s->rest_spec_ = spec;
  s->rest_spec_.name = spec.name + " (item and interest columns)";
  s->rest_spec_.in = s->rest_width_;
  s->rest_spec_.relu = false;
  s->rest_spec_.weight_f32 = s->rest_weight_.data();
  DTRN_ASSIGN_OR_RETURN(s->rest_, CreateDenseLayer(s->rest_spec_, kernels));
  s->rest_weight_.clear();
  s->rest_weight_.shrink_to_fit();
  s->p_.assign(static_cast<size_t>(s->n_uc_) * out, 0.f);
  return s;
}

void SplitDense::PrepareRequest(const float* uc) {
  const size_t out = spec_.out, in = spec_.in;
  for (int u = 0; u < n_uc_; ++u)
    kernels::Gemv(out, d_, spec_.weight_f32 + static_cast<size_t>(uc_field_[u]) * d_, in,
                  uc + static_cast<size_t>(u) * d_, &p_[u * out]);
}

Status SplitDense::Run(size_t rows, const float* r_rest, const float* a_uc, float* out, pthreadpool_t pool) {
  DTRN_RETURN_IF_ERROR(rest_->RunF32(rows, r_rest, out, pool));
  // out += a_uc · P, then the layer's relu.
  kernels::GemmNNAdd(rows, spec_.out, n_uc_, a_uc, n_uc_, p_.data(), spec_.out, out, spec_.out);
  if (spec_.relu) kernels::Relu(rows * spec_.out, out);
  return Status::Ok();
}

}  // namespace dtrn
