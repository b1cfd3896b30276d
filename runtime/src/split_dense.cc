#include "split_dense.h"

#include <cstring>

#include "dense_vnni.h"
#include "kernels.h"

namespace dtrn {

SplitDense::~SplitDense() = default;

bool SplitDense::Supports(const LinearSpec& spec, DenseKernels kernels) {
  if (spec.precision == Precision::F32) return true;
  // The int8 split needs the f32-output entry, which only the VNNI kernel has.
  return spec.precision == Precision::INT8 && kernels == DenseKernels::kAuto && VnniAvailable();
}

Result<std::unique_ptr<SplitDense>> SplitDense::Create(const LinearSpec& spec, int d, const std::vector<bool>& is_uc,
                                                       const std::vector<int>& uc_slot, DenseKernels kernels) {
  if (!Supports(spec, kernels)) return Internal("SplitDense: layer '" + spec.name + "' cannot run split");
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
  s->rest_width_ = static_cast<int>(rest_fields.size()) * d;
  // W_rest: the non-uc column blocks, in r_k order. The kernel packs it at creation.
  const size_t out = spec.out, in = spec.in;
  if (int8) {
    s->rest_i8_.resize(out * s->rest_width_);
    for (size_t o = 0; o < out; ++o)
      for (size_t j = 0; j < rest_fields.size(); ++j)
        std::memcpy(&s->rest_i8_[o * s->rest_width_ + j * d], spec.weight_i8 + o * in + rest_fields[j] * d, d);
    // W_iᵀ, [n_uc * d, out] by uc slot: the per-request products run along out.
    s->uc_weight_.assign(static_cast<size_t>(s->n_uc_) * d * out, 0);
    for (int u = 0; u < s->n_uc_; ++u)
      for (int e = 0; e < d; ++e)
        for (size_t o = 0; o < out; ++o)
          s->uc_weight_[(static_cast<size_t>(u) * d + e) * out + o] = spec.weight_i8[o * in + s->uc_field_[u] * d + e];
  } else {
    s->rest_weight_.resize(out * s->rest_width_);
    for (size_t o = 0; o < out; ++o)
      for (size_t j = 0; j < rest_fields.size(); ++j)
        std::memcpy(&s->rest_weight_[o * s->rest_width_ + j * d], spec.weight_f32 + o * in + rest_fields[j] * d,
                    d * sizeof(float));
  }
  s->rest_spec_ = spec;
  s->rest_spec_.name = spec.name + " (item and interest columns)";
  s->rest_spec_.in = s->rest_width_;
  s->rest_spec_.relu = false;
  s->rest_spec_.weight_f32 = int8 ? nullptr : s->rest_weight_.data();
  s->rest_spec_.weight_i8 = int8 ? s->rest_i8_.data() : nullptr;
  DTRN_ASSIGN_OR_RETURN(s->rest_, CreateDenseLayer(s->rest_spec_, kernels));
  if (int8) {
    if (!s->rest_->supports_f32_output())
      return Internal("SplitDense: layer '" + spec.name + "': kernel has no int8 -> f32 output");
    DTRN_ASSIGN_OR_RETURN(s->quantize_, Qs8ConvertOp::ToQs8(s->rest_width_, {spec.input_scale, spec.input_zero_point}));
  }
  s->p_.assign(static_cast<size_t>(s->n_uc_) * out, 0.f);
  return s;
}

void SplitDense::PrepareRequest(const float* uc) {
  const size_t out = spec_.out;
  for (int u = 0; u < n_uc_; ++u) {
    const float* x = uc + static_cast<size_t>(u) * d_;
    if (quantize_) {  // P_i[o] = s_w[o] · Σ_e q[o, e] · x_i[e]: the dequantized weights
      float* pu = &p_[u * out];
      std::memset(pu, 0, out * sizeof(float));
      for (int e = 0; e < d_; ++e) {
        const int8_t* w = uc_weight_.data() + (static_cast<size_t>(u) * d_ + e) * out;
        for (size_t o = 0; o < out; ++o) pu[o] += x[e] * static_cast<float>(w[o]);
      }
      for (size_t o = 0; o < out; ++o) pu[o] *= spec_.weight_scale[o];
    } else {
      kernels::Gemv(out, d_, spec_.weight_f32 + static_cast<size_t>(uc_field_[u]) * d_, spec_.in, x, &p_[u * out]);
    }
  }
}

Status SplitDense::Run(size_t rows, const float* r_rest, const float* a_uc, float* out, pthreadpool_t pool) {
  if (rows == 0) return Status::Ok();
  if (quantize_) {
    int8_t* q = rest_q_.Reserve(rows * rest_width_);
    if (q == nullptr) return OutOfMemory("layer '" + spec_.name + "' quantized input");
    DTRN_RETURN_IF_ERROR(quantize_->Quantize(rows, r_rest, q, pool));
    // out = int8 rest product + a_uc · P, relu: one pass in the kernel's epilogue.
    DenseLayer::RowUpdate add;
    add.a = a_uc, add.lda = n_uc_, add.p = p_.data(), add.ldp = spec_.out, add.n = n_uc_;
    return rest_->RunQs8ToF32(rows, q, add, spec_.relu, out, pool);
  }
  DTRN_RETURN_IF_ERROR(rest_->RunF32(rows, r_rest, out, pool));
  // out += a_uc · P, then the layer's relu.
  kernels::GemmNNAdd(rows, spec_.out, n_uc_, a_uc, n_uc_, p_.data(), spec_.out, out, spec_.out);
  if (spec_.relu) kernels::Relu(rows * spec_.out, out);
  return Status::Ok();
}

}  // namespace dtrn
