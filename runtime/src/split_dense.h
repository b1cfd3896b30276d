// The spec's exact rewrite of a head MLP's first layer (experts, gates, towers of the
// `towers` head): since r_k = concat_i(a_i · x_i),
//   W · r_k + c = c + W_rest · r_rest + Σ_{i ∈ user, context} a_i · (W_i · x_i),
// and W_i · x_i depends on the request only. Prepare computes those products once;
// per candidate only the item and interest columns (r_rest) go through the GEMM.
// F32 layers on XNNPACK. INT8 layers where the kernel outputs dequantized accumulators
// (VNNI): r_rest is quantized with the layer's input params, the int8 product over the
// rest columns (bias included) is dequantized in the kernel's epilogue, which also adds
// Σ a_i·P_i and applies relu; P_i = W_i · x_i uses the dequantized weights s_w[o]·q. The output is f32 after relu; a
// following int8 layer quantizes it with its input params (= this layer's output params).
#pragma once

#include <memory>
#include <vector>

#include "dense.h"

namespace dtrn {

class SplitDense {
 public:
  // Whether Create accepts `spec` with these kernels (else run the layer whole).
  static bool Supports(const LinearSpec& spec, DenseKernels kernels);
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
  // The GEMM over the rest columns (its spec describes W_rest, valid for the layer's life).
  const DenseLayer& rest_layer() const { return *rest_; }

 private:
  SplitDense(const LinearSpec& spec) : spec_(spec) {}
  const LinearSpec& spec_;
  int d_ = 0, n_uc_ = 0, rest_width_ = 0;
  std::vector<int> uc_field_;         // uc slot -> field index i
  std::vector<float> p_;              // [n_uc, out]: W_i · x_i of the prepared request
  std::unique_ptr<DenseLayer> rest_;  // W_rest with bias, no relu (applied after the sum)
  // rest_ keeps a reference to rest_spec_, whose weight pointers point into these two:
  // they live as long as the layer (the kernels pack their own copy, but the spec must
  // never describe freed memory).
  LinearSpec rest_spec_;
  std::vector<float> rest_weight_;  // F32: [out, rest_width]
  std::vector<int8_t> rest_i8_;     // INT8: [out, rest_width]
  // INT8 only.
  std::vector<int8_t> uc_weight_;  // [n_uc * d, out]: W_iᵀ by uc slot (int8: a quarter of the bytes to stream)
  std::unique_ptr<Qs8ConvertOp> quantize_;  // r_rest -> qs8 with the layer's input params
  Buffer<int8_t> rest_q_;
};

}  // namespace dtrn
