// int8_kernels.h on x86-64 AVX2 + FMA (CPUs without AVX-512 VNNI). AVX2 has no exact
// uint8 x int8 dot product (vpmaddubsw saturates), so the weights are packed as int16 pairs
// and each tile's input rows are widened to uint16 once; vpmaddwd then sums two exact
// products into int32. A tile is MR = 4 rows x NB = 3 blocks of 8 channels.
#include "int8_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <cstring>

#define DTRN_AVX2 __attribute__((target("avx2,fma")))

namespace dtrn::int8::detail {

bool Avx2Compiled() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
}

namespace {

constexpr size_t kChunk = 256;  // k2 steps widened at a time (a 4 x 512 uint16 stack buffer)

template <int MR, int NB>
DTRN_AVX2 void Tile(const GemmArgs& a, size_t r0, size_t b0) {
  const PackedWeights& w = *a.w;
  const Epilogue& e = *a.e;
  __m256i acc[MR][NB];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc[r][b] = _mm256_setzero_si256();
  const size_t bstride = w.k_steps * 16;  // int16 per block: k2 steps x 8 lanes x 2
  const int16_t* wp = static_cast<const int16_t*>(w.w) + b0 * bstride;
  alignas(32) uint16_t x16[MR][2 * kChunk];
  for (size_t k0 = 0; k0 < w.k_steps; k0 += kChunk) {
    const size_t nk = w.k_steps - k0 < kChunk ? w.k_steps - k0 : kChunk;
    for (int r = 0; r < MR; ++r) {
      const uint8_t* q = a.q + (r0 + r) * a.ldq + 2 * k0;
      // 2·nk is a multiple of 2; the rows are padded to a multiple of 4 bytes, so read in
      // 16-byte steps only while whole, then finish bytewise.
      size_t j = 0;
      for (; j + 16 <= 2 * nk; j += 16)
        _mm256_store_si256(reinterpret_cast<__m256i*>(&x16[r][j]),
                           _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + j))));
      for (; j < 2 * nk; ++j) x16[r][j] = q[j];
    }
    for (size_t k = 0; k < nk; ++k) {
      __m256i wv[NB];
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b)
        wv[b] = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + b * bstride + (k0 + k) * 16));
#pragma GCC unroll 4
      for (int r = 0; r < MR; ++r) {
        int32_t xi;
        std::memcpy(&xi, &x16[r][2 * k], 4);
        const __m256i x = _mm256_set1_epi32(xi);
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) acc[r][b] = _mm256_add_epi32(acc[r][b], _mm256_madd_epi16(x, wv[b]));
      }
    }
  }
  alignas(32) int32_t sums[MR][NB][8];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) _mm256_store_si256(reinterpret_cast<__m256i*>(sums[r][b]), acc[r][b]);
  const size_t out = static_cast<size_t>(w.out());
  for (int b = 0; b < NB; ++b) {
    const size_t c0 = (b0 + b) * 8;
    const size_t valid = out - c0 < 8 ? out - c0 : 8;
    const __m256i wsum = _mm256_load_si256(reinterpret_cast<const __m256i*>(w.wsum + c0));
    const __m256 ws = _mm256_load_ps(w.scale + c0);
    const __m256 bias = _mm256_load_ps(w.bias + c0);
    alignas(32) int32_t lane_mask[8];
    for (int l = 0; l < 8; ++l) lane_mask[l] = l < static_cast<int>(valid) ? -1 : 0;
    const __m256i mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(lane_mask));
    __m256 y[MR];
    for (int r = 0; r < MR; ++r) {
      const size_t row = r0 + r;
      const __m256i c = _mm256_sub_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(sums[r][b])),
                                         _mm256_mullo_epi32(_mm256_set1_epi32(a.zp[row]), wsum));
      const __m256 s = _mm256_mul_ps(_mm256_set1_ps(a.scale[row]), ws);
      y[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c), s, bias);
    }
    for (size_t u = 0; u < e.add_n; ++u) {
      const __m256 p = _mm256_maskload_ps(e.add_p + u * e.ldp + c0, mask);
      for (int r = 0; r < MR; ++r) y[r] = _mm256_fmadd_ps(_mm256_set1_ps(e.add_a[(r0 + r) * e.lda + u]), p, y[r]);
    }
    for (size_t i = 0; i < e.radd_n; ++i)
      for (int r = 0; r < MR; ++r)
        y[r] = _mm256_fmadd_ps(_mm256_set1_ps(e.radd_a[(r0 + r) * e.ldra + i]),
                               _mm256_maskload_ps(e.radd_p + i * e.ldrp_f + (r0 + r) * e.ldrp_r + c0, mask), y[r]);
    for (int r = 0; r < MR; ++r) {
      float* dst = a.out + (r0 + r) * a.ldo + c0;
      if (e.relu) y[r] = _mm256_max_ps(y[r], _mm256_setzero_ps());
      if (e.mix) y[r] = _mm256_fmadd_ps(_mm256_set1_ps(e.mix[(r0 + r) * e.ldmix]), y[r], _mm256_maskload_ps(dst, mask));
      _mm256_maskstore_ps(dst, mask, y[r]);
    }
  }
}

template <int MR>
DTRN_AVX2 void Rows(const GemmArgs& a, size_t r0, size_t b0, size_t nb) {
  switch (nb) {
    case 3: Tile<MR, 3>(a, r0, b0); break;
    case 2: Tile<MR, 2>(a, r0, b0); break;
    default: Tile<MR, 1>(a, r0, b0); break;
  }
}

constexpr size_t kMR = 4, kNB = 3;

}  // namespace

DTRN_AVX2 void QuantizeRowsAvx2(size_t rows, size_t n, const float* x, size_t ldx, uint8_t* q, size_t ldq, float* scale,
                                int32_t* zp) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    uint8_t* qr = q + r * ldq;
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const __m256 v = _mm256_loadu_ps(xr + j);
      lo = _mm256_min_ps(lo, v);
      hi = _mm256_max_ps(hi, v);
    }
    float l = 0.f, h = 0.f;
    alignas(32) float tl[8], th[8];
    _mm256_store_ps(tl, lo);
    _mm256_store_ps(th, hi);
    for (int i = 0; i < 8; ++i) l = tl[i] < l ? tl[i] : l, h = th[i] > h ? th[i] : h;
    for (; j < n; ++j) l = xr[j] < l ? xr[j] : l, h = xr[j] > h ? xr[j] : h;
    float inv;
    if (!RowParams(l, h, &scale[r], &zp[r], &inv)) {
      std::memset(qr, 0, ldq);
      continue;
    }
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i vz = _mm256_set1_epi32(zp[r]), v0 = _mm256_setzero_si256(), v255 = _mm256_set1_epi32(255);
    alignas(32) int32_t t[8];
    for (j = 0; j + 8 <= n; j += 8) {
      const __m256i v = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + j), vinv)), vz);
      _mm256_store_si256(reinterpret_cast<__m256i*>(t), _mm256_min_epi32(_mm256_max_epi32(v, v0), v255));
      for (int i = 0; i < 8; ++i) qr[j + i] = static_cast<uint8_t>(t[i]);
    }
    for (; j < n; ++j) {
      const int32_t v = static_cast<int32_t>(__builtin_nearbyintf(xr[j] * inv)) + zp[r];
      qr[j] = static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    if (ldq > n) std::memset(qr + n, 0, ldq - n);
  }
}

DTRN_AVX2 void GemmAvx2(const GemmArgs& a, size_t b0, size_t b1) {
  for (size_t g = b0; g < b1; g += kNB) {
    const size_t nb = b1 - g < kNB ? b1 - g : kNB;
    size_t r = 0;
    for (; r + kMR <= a.rows; r += kMR) Rows<4>(a, r, g, nb);
    switch (a.rows - r) {
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
bool Avx2Compiled() { return false; }
void QuantizeRowsAvx2(size_t rows, size_t n, const float* x, size_t ldx, uint8_t* q, size_t ldq, float* scale,
                      int32_t* zp) {
  QuantizeRowsPortable(rows, n, x, ldx, q, ldq, scale, zp);
}
void GemmAvx2(const GemmArgs& a, size_t b0, size_t b1) { GemmPortable(a, b0, b1); }
}  // namespace dtrn::int8::detail

#endif
