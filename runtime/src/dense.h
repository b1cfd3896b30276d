// Dense layers y = x·Wᵀ + b (+ relu), f32 in and f32 out, one implementation chosen per
// layer at session creation: F32 layers on XNNPACK's fully-connected operator, INT8 layers
// on our int8 kernels (int8_kernels.h: activations quantized per row, f32 output).
#pragma once

#include <pthreadpool.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "buffer.h"
#include "dtrn/runtime.h"
#include "int8_kernels.h"
#include "model_impl.h"

namespace dtrn {

// The int8 kernel a session uses (SessionOptions::kernels).
Result<int8::Isa> ChooseIsa(DenseKernels kernels);

// Packed int8 weights shared by everything in a session that runs the same layer (the
// candidate-tile workers of a multi-threaded session).
class WeightCache {
 public:
  explicit WeightCache(int8::Isa isa) : isa_(isa) {}
  int8::Isa isa() const { return isa_; }
  // Weights w [out, in] with scales [out] and bias [out] (or null), keyed by `key`.
  Result<std::shared_ptr<const int8::PackedWeights>> Get(const void* key, const std::string& name, const int8_t* w,
                                                         const float* scale, const float* bias, int out, int in);

 private:
  int8::Isa isa_;
  std::map<const void*, std::shared_ptr<const int8::PackedWeights>> packed_;
};

// Rows quantized for the int8 kernels (int8_kernels.h), reusable by every layer that reads
// the same input (the split first layers of all experts and gates read the same r_rest).
struct QuantizedRows {
  Buffer<uint8_t> q;
  Buffer<float> scale;
  Buffer<int32_t> zp;
  size_t ldq = 0, n = 0, rows = 0;
  // x [rows, n] (stride ldx).
  Status Quantize(size_t rows, size_t n, const float* x, size_t ldx);
  // Room for `rows` rows of n values, filled in parts by QuantizeInto.
  Status Reserve(size_t rows, size_t n);
  // Rows [row0, row0 + count) from x [count, n] (stride ldx).
  void QuantizeInto(size_t row0, size_t count, const float* x, size_t ldx);
};

// One INT8 layer on our kernels, with the scratch for its quantized input.
class Int8Linear {
 public:
  static Result<std::unique_ptr<Int8Linear>> Create(const LinearSpec& spec, WeightCache* cache);
  // Packs rest-of-layer weights the caller owns (the split first layers).
  static Result<std::unique_ptr<Int8Linear>> Create(const void* key, const std::string& name, const int8_t* w,
                                                    const float* scale, const float* bias, int out, int in,
                                                    WeightCache* cache);
  // out [rows, ldo] = the layer on in [rows, ldin] with the epilogue's extras.
  Status Run(size_t rows, const float* in, size_t ldin, float* out, size_t ldo, const int8::Epilogue& e,
             pthreadpool_t pool);
  // The same on rows [row0, row0 + rows) of input quantized beforehand (q.n == in()).
  void Run(const QuantizedRows& q, size_t row0, size_t rows, float* out, size_t ldo, const int8::Epilogue& e,
           pthreadpool_t pool) const;
  int in() const { return w_->in(); }
  int out() const { return w_->out(); }

 private:
  std::shared_ptr<const int8::PackedWeights> w_;
  QuantizedRows in_;
};

class DenseLayer {
 public:
  explicit DenseLayer(const LinearSpec& spec) : spec_(spec) {}
  virtual ~DenseLayer() = default;
  const LinearSpec& spec() const { return spec_; }
  // in [rows, in] -> out [rows, out], bias and relu applied.
  virtual Status Run(size_t rows, const float* in, float* out, pthreadpool_t pool) = 0;

 protected:
  const LinearSpec& spec_;
};

// The implementation for `spec` (weights are packed here, once).
Result<std::unique_ptr<DenseLayer>> CreateDenseLayer(const LinearSpec& spec, WeightCache* cache);

// Ping-pong scratch shared by every chain of a session worker (chains run one at a time).
struct ChainScratch {
  Buffer<float> f32[2];
};

// What every component's Run needs from its session: the intra-request thread pool, the
// calibration observer (or null), the chains' shared scratch.
struct Exec {
  pthreadpool_t pool = nullptr;
  ActivationObserver* observer = nullptr;
  ChainScratch* scratch = nullptr;
};

// A sequence of Linears run as one MLP, f32 in and f32 out.
class DenseChain {
 public:
  static Result<std::unique_ptr<DenseChain>> Create(const std::vector<const LinearSpec*>& layers, WeightCache* cache);
  // in: [rows, in_features] (XNN_EXTRA_BYTES readable after it); out: [rows, out_features].
  // The observer (x.observer) sees every layer's input and output.
  Status Run(size_t rows, const float* in, float* out, const Exec& x);
  int in_features() const { return layers_.front()->spec().in; }
  int out_features() const { return layers_.back()->spec().out; }

 private:
  std::vector<std::unique_ptr<DenseLayer>> layers_;
};

}  // namespace dtrn
