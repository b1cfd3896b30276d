// INT8 dense layer on x86 AVX-512 VNNI (vpdpbusd), chosen at session creation when the
// CPU has it. Same contract and the same requantization as XNNPACK's qc8 operator, bit
// for bit (kernels_test checks): acc = bias + Σ (x - zp_in)·w in int32, then
// q = clamp(round_half_even(float(acc) · (s_in·s_w[o]/s_out)) + zp_out, lo, 127).
// vpdpbusd multiplies unsigned by signed bytes: the input is flipped to x + 128 and the
// bias absorbs -(128 + zp_in)·Σw.
// RunQs8ToF32 (the per-request split of a head MLP's first layer) stops before the
// requantization: y = float(acc) · (s_in·s_w[o]) + the caller's per-row update, relu.
#include "dense_vnni.h"

#if DTRN_HAVE_VNNI_KERNEL

#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace dtrn {
namespace {

#define DTRN_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

struct Packed {
  size_t in = 0, out = 0, k4 = 0, blocks = 0;
  int8_t* w = nullptr;        // [blocks][k4][16 channels][4 inputs]
  int32_t* bias = nullptr;    // [blocks * 16], zero-point and +128 corrections folded in
  float* scale = nullptr;     // [blocks * 16]
  float* dq_scale = nullptr;  // [blocks * 16]: s_in·s_w[o] (f32 output)
  float lo = 0, hi = 0;       // output clamp minus the zero point
  int32_t zp = 0;
};

using RowUpdate = DenseLayer::RowUpdate;

constexpr int kMR = 4;  // rows per tile
constexpr int kNB = 4;  // 16-channel blocks per tile

// OutT int8_t: requantized output; float: dequantized accumulators plus `add`, relu
// (add.a points at the tile's first row).
template <int MR, int NB, class OutT>
DTRN_VNNI_TARGET void Tile(const Packed& p, const int8_t* x, size_t ldx, size_t block0, OutT* y, size_t ldy,
                           const RowUpdate& add, bool relu) {
  __m512i acc[MR][NB];
  for (int b = 0; b < NB; ++b) {
    const __m512i bias = _mm512_loadu_si512(p.bias + (block0 + b) * 16);
    for (int r = 0; r < MR; ++r) acc[r][b] = bias;
  }
  const __m512i flip = _mm512_set1_epi32(static_cast<int32_t>(0x80808080u));
  const size_t bstride = p.k4 * 64;
  const int8_t* w = p.w + block0 * bstride;
  for (size_t k = 0; k < p.k4; ++k) {
    __m512i wv[NB];
    for (int b = 0; b < NB; ++b) wv[b] = _mm512_load_si512(w + b * bstride + k * 64);
    for (int r = 0; r < MR; ++r) {
      int32_t xi;
      std::memcpy(&xi, x + r * ldx + 4 * k, 4);
      const __m512i u = _mm512_xor_si512(_mm512_set1_epi32(xi), flip);
      for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], u, wv[b]);
    }
  }
  if constexpr (std::is_same_v<OutT, float>) {
    for (int b = 0; b < NB; ++b) {
      const size_t c0 = (block0 + b) * 16;
      const __m512 scale = _mm512_loadu_ps(p.dq_scale + c0);
      const size_t valid = p.out - c0 < 16 ? p.out - c0 : 16;
      const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
      __m512 f[MR];
      for (int r = 0; r < MR; ++r) f[r] = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][b]), scale);
      for (size_t u = 0; u < add.n; ++u) {
        const __m512 pv = _mm512_maskz_loadu_ps(mask, add.p + u * add.ldp + c0);
        for (int r = 0; r < MR; ++r) f[r] = _mm512_fmadd_ps(_mm512_set1_ps(add.a[r * add.lda + u]), pv, f[r]);
      }
      for (int r = 0; r < MR; ++r) {
        if (relu) f[r] = _mm512_max_ps(f[r], _mm512_setzero_ps());
        _mm512_mask_storeu_ps(y + r * ldy + c0, mask, f[r]);
      }
    }
    return;
  }
  const __m512 lo = _mm512_set1_ps(p.lo), hi = _mm512_set1_ps(p.hi);
  const __m512i zp = _mm512_set1_epi32(p.zp);
  for (int b = 0; b < NB; ++b) {
    const size_t c0 = (block0 + b) * 16;
    const __m512 scale = _mm512_loadu_ps(p.scale + c0);
    const size_t valid = p.out - c0 < 16 ? p.out - c0 : 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
    for (int r = 0; r < MR; ++r) {
      __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][b]), scale);
      f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);
      const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), zp);  // round half to even
      _mm_mask_storeu_epi8(reinterpret_cast<int8_t*>(y) + r * ldy + c0, mask, _mm512_cvtsepi32_epi8(q));
    }
  }
}

template <int MR, class OutT>
DTRN_VNNI_TARGET void Tiles(const Packed& p, const int8_t* x, size_t b0, size_t nb, OutT* y, const RowUpdate& add,
                            bool relu) {
  switch (nb) {
    case 4: Tile<MR, 4>(p, x, p.in, b0, y, p.out, add, relu); break;
    case 3: Tile<MR, 3>(p, x, p.in, b0, y, p.out, add, relu); break;
    case 2: Tile<MR, 2>(p, x, p.in, b0, y, p.out, add, relu); break;
    default: Tile<MR, 1>(p, x, p.in, b0, y, p.out, add, relu); break;
  }
}

template <class OutT>
struct Job {
  const Packed* p;
  const int8_t* x;
  OutT* y;
  size_t rows;
  RowUpdate add;  // f32 output only
  bool relu;      // f32 output only
};

// One group of up to kNB 16-channel blocks over every row: the group's packed weights
// (k4 x 64 x kNB bytes) stay in L1 while the row tiles stream past.
template <class OutT>
void RunGroup(void* ctx, size_t group) {
  const Job<OutT>& j = *static_cast<const Job<OutT>*>(ctx);
  const Packed& p = *j.p;
  const size_t b0 = group * kNB, nb = p.blocks - b0 < kNB ? p.blocks - b0 : kNB;
  for (size_t r0 = 0; r0 < j.rows; r0 += kMR) {
    const int8_t* x = j.x + r0 * p.in;
    OutT* y = j.y + r0 * p.out;
    RowUpdate add = j.add;
    if (add.n > 0) add.a += r0 * add.lda;
    switch (j.rows - r0 < kMR ? j.rows - r0 : kMR) {
      case 4: Tiles<4>(p, x, b0, nb, y, add, j.relu); break;
      case 3: Tiles<3>(p, x, b0, nb, y, add, j.relu); break;
      case 2: Tiles<2>(p, x, b0, nb, y, add, j.relu); break;
      default: Tiles<1>(p, x, b0, nb, y, add, j.relu); break;
    }
  }
}

class VnniQc8Layer : public DenseLayer {
 public:
  explicit VnniQc8Layer(const LinearSpec& spec) : DenseLayer(spec) {}
  ~VnniQc8Layer() override {
    std::free(p_.w);
    std::free(p_.bias);
    std::free(p_.scale);
    std::free(p_.dq_scale);
  }
  Status Init() {
    const size_t in = spec_.in, out = spec_.out;
    p_.in = in;
    p_.out = out;
    p_.k4 = (in + 3) / 4;
    p_.blocks = (out + 15) / 16;
    const size_t wbytes = p_.blocks * p_.k4 * 64, cbytes = (p_.blocks * 16 * 4 + 63) / 64 * 64;
    p_.w = static_cast<int8_t*>(std::aligned_alloc(64, wbytes));
    p_.bias = static_cast<int32_t*>(std::aligned_alloc(64, cbytes));
    p_.scale = static_cast<float*>(std::aligned_alloc(64, cbytes));
    p_.dq_scale = static_cast<float*>(std::aligned_alloc(64, cbytes));
    if (!p_.w || !p_.bias || !p_.scale || !p_.dq_scale) return OutOfMemory("layer '" + spec_.name + "' packed weights");
    std::memset(p_.w, 0, wbytes);
    std::memset(p_.bias, 0, cbytes);
    std::memset(p_.scale, 0, cbytes);
    std::memset(p_.dq_scale, 0, cbytes);
    for (size_t o = 0; o < out; ++o) {
      const size_t blk = o / 16, lane = o % 16;
      int64_t wsum = 0;
      for (size_t i = 0; i < in; ++i) {
        const int8_t v = spec_.weight_i8[o * in + i];
        wsum += v;
        p_.w[blk * p_.k4 * 64 + (i / 4) * 64 + lane * 4 + i % 4] = v;
      }
      const int64_t b = static_cast<int64_t>(spec_.bias_i32[o]) - (128 + int64_t{spec_.input_zero_point}) * wsum;
      if (b < INT32_MIN || b > INT32_MAX) return Internal("layer '" + spec_.name + "': folded bias overflows int32");
      p_.bias[o] = static_cast<int32_t>(b);
      // Evaluated exactly as XNNPACK does (float, left to right).
      p_.scale[o] = spec_.input_scale * spec_.weight_scale[o] / spec_.output_scale;
      p_.dq_scale[o] = spec_.input_scale * spec_.weight_scale[o];
    }
    const int32_t out_min = spec_.relu ? spec_.output_zero_point : -128;
    p_.lo = static_cast<float>(out_min - spec_.output_zero_point);
    p_.hi = static_cast<float>(127 - spec_.output_zero_point);
    p_.zp = spec_.output_zero_point;
    return Status::Ok();
  }
  Status RunQs8(size_t rows, const int8_t* in, int8_t* out, pthreadpool_t pool) override {
    Run(rows, in, out, RowUpdate{}, false, pool);
    return Status::Ok();
  }
  bool supports_f32_output() const override { return true; }
  Status RunQs8ToF32(size_t rows, const int8_t* in, const RowUpdate& add, bool relu, float* out,
                     pthreadpool_t pool) override {
    Run(rows, in, out, add, relu, pool);
    return Status::Ok();
  }

 private:
  template <class OutT>
  void Run(size_t rows, const int8_t* in, OutT* out, const RowUpdate& add, bool relu, pthreadpool_t pool) {
    Job<OutT> job{&p_, in, out, rows, add, relu};
    const size_t groups = (p_.blocks + kNB - 1) / kNB;
    if (pool != nullptr && groups > 1) {
      pthreadpool_parallelize_1d(pool, RunGroup<OutT>, &job, groups, 0);
    } else {
      for (size_t g = 0; g < groups; ++g) RunGroup<OutT>(&job, g);
    }
  }
  Packed p_;
};

}  // namespace

bool VnniAvailable() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  }();
  return ok;
}

Result<std::unique_ptr<DenseLayer>> CreateVnniQc8Layer(const LinearSpec& spec) {
  auto layer = std::make_unique<VnniQc8Layer>(spec);
  DTRN_RETURN_IF_ERROR(layer->Init());
  return std::unique_ptr<DenseLayer>(std::move(layer));
}

}  // namespace dtrn

#else  // !DTRN_HAVE_VNNI_KERNEL

namespace dtrn {
bool VnniAvailable() { return false; }
Result<std::unique_ptr<DenseLayer>> CreateVnniQc8Layer(const LinearSpec& spec) {
  return Unimplemented("layer '" + spec.name + "': no VNNI kernel in this build");
}
}  // namespace dtrn

#endif
