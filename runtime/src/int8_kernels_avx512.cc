// int8_kernels.h on x86-64 AVX-512 VNNI: vpdpbusd (uint8 activations x int8 weights).
// A tile is MR rows x NB blocks of 16 channels held in zmm accumulators; per step of 4
// inputs it loads NB weight vectors and broadcasts 4 input bytes per row. The epilogue is
// the reference's operations in the reference's order (int8_kernels.h), vectorised.
#include "int8_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <cstring>

#define DTRN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))

namespace dtrn::int8::detail {

bool Avx512VnniCompiled() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  }();
  return ok;
}

namespace {

template <int MR, int NB>
DTRN_AVX512 void Tile(const GemmArgs& a, size_t r0, size_t b0) {
  const PackedWeights& w = *a.w;
  const Epilogue& e = *a.e;
  // The accumulators live in registers for the whole k loop; the epilogue reads them back
  // from a stack copy (storing once per tile keeps GCC from spilling inside the loop).
  __m512i acc[MR][NB];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_setzero_si512();
  const size_t bstride = w.k_steps * 64;
  const int8_t* wp = static_cast<const int8_t*>(w.w) + b0 * bstride;
  const uint8_t* q = a.q + r0 * a.ldq;
  for (size_t k = 0; k < w.k_steps; ++k) {
    __m512i wv[NB];
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) wv[b] = _mm512_load_si512(wp + b * bstride + k * 64);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      int32_t xi;
      std::memcpy(&xi, q + r * a.ldq + 4 * k, 4);
      const __m512i x = _mm512_set1_epi32(xi);
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], x, wv[b]);
    }
  }
  alignas(64) int32_t sums[MR][NB][16];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) _mm512_store_si512(sums[r][b], acc[r][b]);
  const size_t out = static_cast<size_t>(w.out());
  for (int b = 0; b < NB; ++b) {
    const size_t c0 = (b0 + b) * 16;
    const size_t valid = out - c0 < 16 ? out - c0 : 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
    const __m512i wsum = _mm512_load_si512(w.wsum + c0);
    const __m512 ws = _mm512_load_ps(w.scale + c0);
    const __m512 bias = _mm512_load_ps(w.bias + c0);
    __m512 y[MR];
    for (int r = 0; r < MR; ++r) {
      const size_t row = r0 + r;
      const __m512i c =
          _mm512_sub_epi32(_mm512_load_si512(sums[r][b]), _mm512_mullo_epi32(_mm512_set1_epi32(a.zp[row]), wsum));
      const __m512 s = _mm512_mul_ps(_mm512_set1_ps(a.scale[row]), ws);
      y[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), s, bias);
    }
    for (size_t u = 0; u < e.add_n; ++u) {
      const __m512 p = _mm512_maskz_loadu_ps(mask, e.add_p + u * e.ldp + c0);
      for (int r = 0; r < MR; ++r) y[r] = _mm512_fmadd_ps(_mm512_set1_ps(e.add_a[(r0 + r) * e.lda + u]), p, y[r]);
    }
    for (size_t i = 0; i < e.radd_n; ++i)
      for (int r = 0; r < MR; ++r)
        y[r] = _mm512_fmadd_ps(_mm512_set1_ps(e.radd_a[(r0 + r) * e.ldra + i]),
                               _mm512_maskz_loadu_ps(mask, e.radd_p + i * e.ldrp_f + (r0 + r) * e.ldrp_r + c0), y[r]);
    for (int r = 0; r < MR; ++r) {
      float* dst = a.out + (r0 + r) * a.ldo + c0;
      if (e.relu) y[r] = _mm512_max_ps(y[r], _mm512_setzero_ps());
      if (e.mix)
        y[r] = _mm512_fmadd_ps(_mm512_set1_ps(e.mix[(r0 + r) * e.ldmix]), y[r], _mm512_maskz_loadu_ps(mask, dst));
      _mm512_mask_storeu_ps(dst, mask, y[r]);
    }
  }
}

template <int MR>
DTRN_AVX512 void Rows(const GemmArgs& a, size_t r0, size_t b0, size_t nb) {
  switch (nb) {
    case 4: Tile<MR, 4>(a, r0, b0); break;
    case 3: Tile<MR, 3>(a, r0, b0); break;
    case 2: Tile<MR, 2>(a, r0, b0); break;
    default: Tile<MR, 1>(a, r0, b0); break;
  }
}

constexpr size_t kMR = 6, kNB = 4;

}  // namespace

DTRN_AVX512 void QuantizeRowsAvx512(size_t rows, size_t n, const float* x, size_t ldx, uint8_t* q, size_t ldq,
                                    float* scale, int32_t* zp) {
  const size_t full = n / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - full)) - 1u);
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    uint8_t* qr = q + r * ldq;
    __m512 lo0 = _mm512_setzero_ps(), hi0 = _mm512_setzero_ps(), lo1 = lo0, hi1 = hi0;
    size_t j = 0;
    for (; j + 32 <= full; j += 32) {
      const __m512 v0 = _mm512_loadu_ps(xr + j), v1 = _mm512_loadu_ps(xr + j + 16);
      lo0 = _mm512_min_ps(lo0, v0), hi0 = _mm512_max_ps(hi0, v0);
      lo1 = _mm512_min_ps(lo1, v1), hi1 = _mm512_max_ps(hi1, v1);
    }
    for (; j < full; j += 16) {
      const __m512 v = _mm512_loadu_ps(xr + j);
      lo0 = _mm512_min_ps(lo0, v), hi0 = _mm512_max_ps(hi0, v);
    }
    if (tail) {
      const __m512 v = _mm512_maskz_loadu_ps(tail, xr + full);  // zeros: min/max already include 0
      lo0 = _mm512_min_ps(lo0, v), hi0 = _mm512_max_ps(hi0, v);
    }
    float inv;
    if (!RowParams(_mm512_reduce_min_ps(_mm512_min_ps(lo0, lo1)), _mm512_reduce_max_ps(_mm512_max_ps(hi0, hi1)),
                   &scale[r], &zp[r], &inv)) {
      std::memset(qr, 0, ldq);
      continue;
    }
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i v0 = _mm512_setzero_si512();
    // vpmovusdb saturates at 255; values below 0 are clamped first, except for rows with
    // no negative input (zp 0, relu outputs), whose values cannot go below 0.
    if (zp[r] == 0) {
      for (j = 0; j < full; j += 16)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(qr + j),
                         _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + j), vinv))));
      if (tail)
        _mm_mask_storeu_epi8(
            qr + full, tail,
            _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(tail, xr + full), vinv))));
    } else {
      const __m512i vz = _mm512_set1_epi32(zp[r]);
      for (j = 0; j < full; j += 16) {
        const __m512i t = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + j), vinv)), vz);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(qr + j), _mm512_cvtusepi32_epi8(_mm512_max_epi32(t, v0)));
      }
      if (tail) {
        const __m512i t =
            _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(tail, xr + full), vinv)), vz);
        _mm_mask_storeu_epi8(qr + full, tail, _mm512_cvtusepi32_epi8(_mm512_max_epi32(t, v0)));
      }
    }
    if (ldq > n) std::memset(qr + n, 0, ldq - n);
  }
}

// Weights-stationary: a group of kNB blocks (k_steps x 64 x kNB bytes) stays in L1 while
// the row tiles stream past.
DTRN_AVX512 void GemmAvx512Vnni(const GemmArgs& a, size_t b0, size_t b1) {
  for (size_t g = b0; g < b1; g += kNB) {
    const size_t nb = b1 - g < kNB ? b1 - g : kNB;
    size_t r = 0;
    for (; r + kMR <= a.rows; r += kMR) Rows<6>(a, r, g, nb);
    switch (a.rows - r) {
      case 5: Rows<5>(a, r, g, nb); break;
      case 4: Rows<4>(a, r, g, nb); break;
      case 3: Rows<3>(a, r, g, nb); break;
      case 2: Rows<2>(a, r, g, nb); break;
      case 1: Rows<1>(a, r, g, nb); break;
      default: break;
    }
  }
}

}  // namespace dtrn::int8::detail

#else

namespace dtrn::int8::detail {
bool Avx512VnniCompiled() { return false; }
void QuantizeRowsAvx512(size_t rows, size_t n, const float* x, size_t ldx, uint8_t* q, size_t ldq, float* scale,
                        int32_t* zp) {
  QuantizeRowsPortable(rows, n, x, ldx, q, ldq, scale, zp);
}
void GemmAvx512Vnni(const GemmArgs& a, size_t b0, size_t b1) { GemmPortable(a, b0, b1); }
}  // namespace dtrn::int8::detail

#endif
