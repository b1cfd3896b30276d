// Dense layers: one small interface, one implementation chosen per layer at session
// creation. Today: XNNPACK f32 fully-connected and XNNPACK qc8 (per-channel int8)
// 1x1 convolution. A specialised int8 kernel (x86 VNNI, ARM dotprod) slots in by
// implementing RunQs8 with the same requantization; graph code does not change.
#pragma once

#include <pthreadpool.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "buffer.h"
#include "dtrn/runtime.h"
#include "model_impl.h"

struct xnn_operator;

namespace dtrn {

// Per-tensor affine int8 params: real = scale * (q - zero_point).
struct QuantParams {
  float scale = 1.f;
  int32_t zero_point = 0;
  bool operator==(const QuantParams& o) const { return scale == o.scale && zero_point == o.zero_point; }
};

class DenseLayer {
 public:
  explicit DenseLayer(const LinearSpec& spec) : spec_(spec) {}
  virtual ~DenseLayer() = default;
  const LinearSpec& spec() const { return spec_; }
  bool int8() const { return spec_.precision == Precision::INT8; }
  QuantParams input_params() const { return {spec_.input_scale, spec_.input_zero_point}; }
  QuantParams output_params() const { return {spec_.output_scale, spec_.output_zero_point}; }

  // F32 layers: in [rows, in] -> out [rows, out], bias and relu applied.
  virtual Status RunF32(size_t rows, const float* in, float* out, pthreadpool_t pool);
  // INT8 layers: qs8 in (input params) -> qs8 out (output params), relu as a clamp.
  virtual Status RunQs8(size_t rows, const int8_t* in, int8_t* out, pthreadpool_t pool);
  // INT8 layers whose kernel has it (supports_f32_output()): qs8 in (input params) ->
  // f32 out[r, o] = s_in·s_w[o]·(bias[o] + Σ (x - zp_in)·w) + Σ_u add.a[r·lda + u]·add.p[u·ldp + o],
  // then max(0, ·) if relu (the spec's relu flag is ignored here). No requantization.
  struct RowUpdate {
    const float* a = nullptr;  // [rows, lda]
    size_t lda = 0;
    const float* p = nullptr;  // [n, ldp]
    size_t ldp = 0;
    size_t n = 0;  // 0: no update
  };
  virtual bool supports_f32_output() const { return false; }
  virtual Status RunQs8ToF32(size_t rows, const int8_t* in, const RowUpdate& add, bool relu, float* out,
                             pthreadpool_t pool);

 protected:
  const LinearSpec& spec_;
};

// The implementation for `spec` (weights are packed here, once): INT8 layers on the
// VNNI kernel where the CPU has it (unless kernels == kXnnpack), else XNNPACK.
Result<std::unique_ptr<DenseLayer>> CreateDenseLayer(const LinearSpec& spec, DenseKernels kernels);
// Always XNNPACK (f32 fully-connected / qc8 1x1 convolution).
Result<std::unique_ptr<DenseLayer>> CreateXnnpackDenseLayer(const LinearSpec& spec);

// f32 <-> qs8 per-tensor activation quantization (XNNPACK convert operators).
class Qs8ConvertOp {
 public:
  static Result<std::unique_ptr<Qs8ConvertOp>> ToQs8(size_t channels, QuantParams p);
  static Result<std::unique_ptr<Qs8ConvertOp>> ToF32(size_t channels, QuantParams p);
  ~Qs8ConvertOp();
  Status Quantize(size_t rows, const float* in, int8_t* out, pthreadpool_t pool);
  Status Dequantize(size_t rows, const int8_t* in, float* out, pthreadpool_t pool);

 private:
  Qs8ConvertOp() = default;
  xnn_operator* op_ = nullptr;
};

// Ping-pong scratch shared by every chain of a session (chains run one at a time).
struct ChainScratch {
  Buffer<float> f32[2];
  Buffer<int8_t> i8[2];
};

// What every component's Run needs from its session: the intra-request thread pool, the
// calibration observer (or null) and the chains' shared scratch.
struct Exec {
  pthreadpool_t pool = nullptr;
  ActivationObserver* observer = nullptr;
  ChainScratch* scratch = nullptr;
};

// A sequence of Linears run as one MLP, f32 in and f32 out. Between two INT8 layers
// whose params match, activations stay int8; elsewhere they are converted.
class DenseChain {
 public:
  static Result<std::unique_ptr<DenseChain>> Create(const std::vector<const LinearSpec*>& layers, DenseKernels kernels);
  // in: [rows, in_features] (XNN_EXTRA_BYTES readable after it); out: [rows, out_features].
  // The observer (x.observer) sees every F32 layer's input and output.
  Status Run(size_t rows, const float* in, float* out, const Exec& x);
  int in_features() const { return layers_.front()->spec().in; }
  int out_features() const { return layers_.back()->spec().out; }

 private:
  struct Step {
    std::unique_ptr<Qs8ConvertOp> quantize;    // before an INT8 layer whose input is f32
    std::unique_ptr<Qs8ConvertOp> dequantize;  // after an INT8 layer whose consumer wants f32
  };
  std::vector<std::unique_ptr<DenseLayer>> layers_;
  std::vector<Step> steps_;
};

}  // namespace dtrn
