// Our int8 GEMM: int8 weights (symmetric, one f32 scale per output channel) times
// activations quantized dynamically per row, with an f32 epilogue. Logits and every other
// output are f32 from the int32 accumulators: nothing is requantized, nothing is clamped
// at a calibrated range (the spec's "int8" section).
//
// The arithmetic, exactly, for an input row x[0..in) and output channel o:
//   lo = min(0, min_j x_j), hi = max(0, max_j x_j)
//   hi == lo:  s = 1, zp = 0, q_j = 0
//   else:      s = (hi - lo) / 255, inv = 1 / s, zp = clamp(rne(-lo · inv), 0, 255),
//              q_j = clamp(rne(x_j · inv) + zp, 0, 255)          (uint8; rne: round half even)
//   acc   = Σ_j q_j · w[o, j]                                     (int32, exact)
//   y     = fma(float(acc - zp · wsum[o]), s · s_w[o], bias[o])   (wsum[o] = Σ_j w[o, j])
//   y     = fma(a[r, u], p[u, o], y) for u = 0, 1, ... (the split layers' per-request products)
//   y     = fma(b[r, i], q[i, r, o], y) for i = 0, 1, ... (their per-candidate products)
//   y     = max(y, 0) if relu
//   out   = y, or out += g[r] · y (fma; the gate-weighted expert mix)
// Every implementation (portable C++, AVX-512 VNNI, AVX2, NEON dot product) computes these
// same operations in this order, so they agree bit for bit (kernels_test checks).
#pragma once

#include <pthreadpool.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dtrn/status.h"

namespace dtrn::int8 {

enum class Isa {
  kPortable = 0,    // plain C++, the reference
  kAvx2 = 1,        // x86-64 AVX2 + FMA (vpmaddwd on widened inputs)
  kAvx512Vnni = 2,  // x86-64 AVX-512 VNNI (vpdpbusd)
  kNeonDot = 3,     // aarch64 ARMv8.2 dot product (sdot)
};
const char* IsaName(Isa isa);
// The best this CPU runs.
Isa BestIsa();
// Whether this build and this CPU can run `isa`.
bool IsaAvailable(Isa isa);

// Weights packed for one ISA, immutable: sessions and threads share them.
class PackedWeights {
 public:
  // w [out, in] int8, scale [out] > 0, bias [out] or null.
  static Result<std::shared_ptr<const PackedWeights>> Pack(const std::string& name, const int8_t* w, const float* scale,
                                                           const float* bias, int out, int in, Isa isa);
  ~PackedWeights();
  PackedWeights(const PackedWeights&) = delete;
  PackedWeights& operator=(const PackedWeights&) = delete;

  const std::string& name() const { return name_; }
  Isa isa() const { return isa_; }
  int in() const { return in_; }
  int out() const { return out_; }

  // Internal layout, for the kernels.
  size_t k_steps = 0;       // padded input length / step (4 for VNNI/NEON/portable, 2 for AVX2)
  size_t blocks = 0;        // output blocks of `lanes` channels
  size_t lanes = 0;         // 16 (VNNI, NEON, portable) or 8 (AVX2)
  void* w = nullptr;        // int8 [blocks][k4][16][4], or int16 [blocks][k2][8][2] (AVX2)
  int32_t* wsum = nullptr;  // [blocks * lanes]
  float* scale = nullptr;   // [blocks * lanes]
  float* bias = nullptr;    // [blocks * lanes] (zeros when none)

 private:
  PackedWeights() = default;
  std::string name_;
  Isa isa_ = Isa::kPortable;
  int in_ = 0, out_ = 0;
};

// Per-row dynamic quantization of rows x [rows, n] (stride ldx) into q [rows, ldq >= n]
// (uint8; bytes [n, ldq) zeroed), scale[rows], zp[rows]. The same on every ISA.
void QuantizeRows(size_t rows, size_t n, const float* x, size_t ldx, uint8_t* q, size_t ldq, float* scale, int32_t* zp);

// The epilogue's extras (see the top of this file).
struct Epilogue {
  bool relu = false;
  const float* add_a = nullptr;  // [rows, lda]: per-row coefficients of the added products
  size_t lda = 0;
  const float* add_p = nullptr;  // [add_n, ldp]: the products (per output channel)
  size_t ldp = 0;
  size_t add_n = 0;
  const float* radd_a = nullptr;  // [rows, ldra]: per-row coefficients of the per-row products
  size_t ldra = 0;
  const float* radd_p = nullptr;  // [radd_n][rows]: product i of row r at radd_p + i * ldrp_f + r * ldrp_r
  size_t ldrp_f = 0, ldrp_r = 0;
  size_t radd_n = 0;
  const float* mix = nullptr;  // non-null: out[r, o] += mix[r * ldmix] · y
  size_t ldmix = 0;
};

// out[rows, ldo] from q (QuantizeRows' output, row stride ldq >= packed in, padded to the
// ISA's step with zeros) with the packed weights. pool: split across output-channel groups.
void Gemm(const PackedWeights& w, size_t rows, const uint8_t* q, size_t ldq, const float* scale, const int32_t* zp,
          const Epilogue& e, float* out, size_t ldo, pthreadpool_t pool);

// Row stride QuantizeRows must use for these weights (the input padded to the ISA's step).
size_t QuantizedStride(const PackedWeights& w);

// Implementations, selected by Gemm (internal).
namespace detail {
struct GemmArgs {
  const PackedWeights* w;
  size_t rows;
  const uint8_t* q;
  size_t ldq;
  const float* scale;
  const int32_t* zp;
  const Epilogue* e;
  float* out;
  size_t ldo;
};
// Output blocks [b0, b1) for every row.
void GemmPortable(const GemmArgs& a, size_t b0, size_t b1);
void GemmAvx2(const GemmArgs& a, size_t b0, size_t b1);
void GemmAvx512Vnni(const GemmArgs& a, size_t b0, size_t b1);
void GemmNeonDot(const GemmArgs& a, size_t b0, size_t b1);
bool Avx2Compiled();
bool Avx512VnniCompiled();
bool NeonDotCompiled();
// QuantizeRows' implementations (identical results); QuantizeRows picks the fastest.
void QuantizeRowsPortable(size_t rows, size_t n, const float* x, size_t ldx, uint8_t* q, size_t ldq, float* scale,
                          int32_t* zp);
void QuantizeRowsAvx512(size_t rows, size_t n, const float* x, size_t ldx, uint8_t* q, size_t ldq, float* scale,
                        int32_t* zp);
void QuantizeRowsAvx2(size_t rows, size_t n, const float* x, size_t ldx, uint8_t* q, size_t ldq, float* scale,
                      int32_t* zp);
// The row's (s, zp, inv) from its range, as the top of the file (shared by every ISA).
inline bool RowParams(float lo, float hi, float* s, int32_t* zp, float* inv);
// The epilogue for one (row, channel) from its int32 accumulator, as the top of the file.
float Finish(const GemmArgs& a, size_t r, size_t o, int32_t acc);
}  // namespace detail

// False for an all-zero row (s = 1, zp = 0, every q = 0) and for a row whose range is not a
// finite float (an infinity in it, or +-huge values: earlier layers overflowed): s = NaN,
// zp = 0, every q = 0, so the row's outputs are NaN, as the f32 arithmetic would give, and
// no float-to-int conversion sees a value out of range (fuzz/fuzz_score finding).
inline bool detail::RowParams(float lo, float hi, float* s, int32_t* zp, float* inv) {
  if (!(hi - lo <= __FLT_MAX__)) {
    *s = __builtin_nanf(""), *zp = 0, *inv = 0.f;
    return false;
  }
  if (hi == lo) {
    *s = 1.f, *zp = 0, *inv = 0.f;
    return false;
  }
  *s = (hi - lo) / 255.f;
  *inv = 1.f / *s;
  const float z = __builtin_nearbyintf(-lo * *inv);
  *zp = !(z > 0.f) ? 0 : z > 255.f ? 255 : static_cast<int32_t>(z);
  return true;
}

}  // namespace dtrn::int8
