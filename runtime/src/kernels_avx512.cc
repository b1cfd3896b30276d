// Target attention, the logistic function and int8-weight AXPY on x86-64 AVX-512: what the
// candidate stage spends on f32 outside the dense layers. The exponential is a Cephes-style polynomial
// (relative error ~2e-7, well inside the spec's 1e-5 on probabilities), vectorised; the
// scalar kernels in kernels.cc are the fallback elsewhere.
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>

#define DTRN_AVX512F __attribute__((target("avx512f,avx512dq,fma")))

namespace dtrn::kernels {
namespace {

DTRN_AVX512F inline __m512 Exp(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.3762626647949f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(y, n);
}

bool HasAvx512() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  }();
  return ok;
}

constexpr size_t kRows = 4;  // candidates per register block

// S[c, j] = scale · q_c · h_j for rows [c0, c0 + R), positions [j0, j0 + 16 NV).
template <int R, int NV>
DTRN_AVX512F void Scores(const float* q, size_t ldq, float scale, const float* ht, size_t l, size_t d, size_t j0,
                         float* s, size_t lds) {
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  const size_t valid = l - j0;
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) {
    const size_t left = valid > 16u * v ? valid - 16u * v : 0;
    mask[v] = static_cast<__mmask16>(left >= 16 ? 0xFFFFu : (1u << left) - 1u);
  }
  for (size_t e = 0; e < d; ++e) {
    __m512 hv[NV];
    for (int v = 0; v < NV; ++v) hv[v] = _mm512_maskz_loadu_ps(mask[v], ht + e * l + j0 + 16 * v);
    for (int r = 0; r < R; ++r) {
      const __m512 qe = _mm512_set1_ps(q[r * ldq + e]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(qe, hv[v], acc[r][v]);
    }
  }
  const __m512 sc = _mm512_set1_ps(scale);
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v)
      _mm512_mask_storeu_ps(s + r * lds + j0 + 16 * v, mask[v], _mm512_mul_ps(acc[r][v], sc));
}

template <int R>
DTRN_AVX512F void ScoresRow(const float* q, size_t ldq, float scale, const float* ht, size_t l, size_t d, float* s,
                            size_t lds) {
  for (size_t j0 = 0; j0 < l; j0 += 64) {
    switch ((std::min<size_t>(64, l - j0) + 15) / 16) {
      case 4: Scores<R, 4>(q, ldq, scale, ht, l, d, j0, s, lds); break;
      case 3: Scores<R, 3>(q, ldq, scale, ht, l, d, j0, s, lds); break;
      case 2: Scores<R, 2>(q, ldq, scale, ht, l, d, j0, s, lds); break;
      default: Scores<R, 1>(q, ldq, scale, ht, l, d, j0, s, lds); break;
    }
  }
}

DTRN_AVX512F void Softmax(float* x, size_t n) {
  __m512 mx = _mm512_set1_ps(-3.4e38f);
  for (size_t j = 0; j < n; j += 16) {
    const __mmask16 m = static_cast<__mmask16>(n - j >= 16 ? 0xFFFFu : (1u << (n - j)) - 1u);
    mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-3.4e38f), m, x + j));
  }
  const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (size_t j = 0; j < n; j += 16) {
    const __mmask16 m = static_cast<__mmask16>(n - j >= 16 ? 0xFFFFu : (1u << (n - j)) - 1u);
    const __m512 e = _mm512_maskz_mov_ps(m, Exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), vmax)));
    sum = _mm512_add_ps(sum, e);
    _mm512_mask_storeu_ps(x + j, m, e);
  }
  const __m512 inv = _mm512_set1_ps(1.f / _mm512_reduce_add_ps(sum));
  for (size_t j = 0; j < n; j += 16) {
    const __mmask16 m = static_cast<__mmask16>(n - j >= 16 ? 0xFFFFu : (1u << (n - j)) - 1u);
    _mm512_mask_storeu_ps(x + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), inv));
  }
}

// u_c = Σ_j p[c, j] h_j for rows [c0, c0 + R), width columns [e0, e0 + 16 DV).
template <int R, int DV>
DTRN_AVX512F void Weighted(const float* p, size_t ldp, const float* h, size_t l, size_t d, size_t e0, float* u,
                           size_t ldu) {
  __m512 acc[R][DV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < DV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (size_t j = 0; j < l; ++j) {
    __m512 hv[DV];
    for (int v = 0; v < DV; ++v) hv[v] = _mm512_loadu_ps(h + j * d + e0 + 16 * v);
    for (int r = 0; r < R; ++r) {
      const __m512 pj = _mm512_set1_ps(p[r * ldp + j]);
      for (int v = 0; v < DV; ++v) acc[r][v] = _mm512_fmadd_ps(pj, hv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < DV; ++v) _mm512_storeu_ps(u + r * ldu + e0 + 16 * v, acc[r][v]);
}

template <int R>
DTRN_AVX512F void WeightedRow(const float* p, size_t ldp, const float* h, size_t l, size_t d, float* u, size_t ldu) {
  for (size_t e0 = 0; e0 < d; e0 += 64) {
    switch (std::min<size_t>(64, d - e0) / 16) {
      case 4: Weighted<R, 4>(p, ldp, h, l, d, e0, u, ldu); break;
      case 3: Weighted<R, 3>(p, ldp, h, l, d, e0, u, ldu); break;
      case 2: Weighted<R, 2>(p, ldp, h, l, d, e0, u, ldu); break;
      default: Weighted<R, 1>(p, ldp, h, l, d, e0, u, ldu); break;
    }
  }
}

DTRN_AVX512F void AttentionAvx512(size_t T, const float* q, size_t ldq, float scale, const float* ht, const float* h,
                                  size_t l, size_t d, float* u, size_t ldu, float* s) {
  size_t c = 0;
  for (; c + kRows <= T; c += kRows) ScoresRow<kRows>(q + c * ldq, ldq, scale, ht, l, d, s + c * l, l);
  for (; c < T; ++c) ScoresRow<1>(q + c * ldq, ldq, scale, ht, l, d, s + c * l, l);
  for (c = 0; c < T; ++c) Softmax(s + c * l, l);
  for (c = 0; c + kRows <= T; c += kRows) WeightedRow<kRows>(s + c * l, l, h, l, d, u + c * ldu, ldu);
  for (; c < T; ++c) WeightedRow<1>(s + c * l, l, h, l, d, u + c * ldu, ldu);
}

DTRN_AVX512F void SigmoidAvx512(size_t n, const float* x, float factor, float* y) {
  const __m512 one = _mm512_set1_ps(1.f), f = _mm512_set1_ps(factor);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = static_cast<__mmask16>(n - i >= 16 ? 0xFFFFu : (1u << (n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    // 1 / (1 + e^-x): e^-x saturates at the clamp, so no inf / inf for large |x|.
    const __m512 e = Exp(_mm512_sub_ps(_mm512_setzero_ps(), v));
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(f, _mm512_div_ps(one, _mm512_add_ps(one, e))));
  }
}

DTRN_AVX512F void AxpyInt8Avx512(size_t n, float a, const int8_t* x, float* y) {
  const __m512 av = _mm512_set1_ps(a);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 xv =
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, xv, _mm512_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * static_cast<float>(x[i]);
}

}  // namespace

__attribute__((target("avx2,f16c"))) bool RowF16Fast(const uint16_t* row, size_t d, float* out) {
  static const bool ok = [] {
    // F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports has no "f16c".
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
    __builtin_cpu_init();
    return f16c && __builtin_cpu_supports("avx2");
  }();
  if (!ok) return false;
  size_t i = 0;
  for (; i + 8 <= d; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + i))));
  for (; i < d; ++i) out[i] = HalfToFloat(row[i]);
  return true;
}

bool AxpyInt8Fast(size_t n, float a, const int8_t* x, float* y) {
  if (!HasAvx512()) return false;
  AxpyInt8Avx512(n, a, x, y);
  return true;
}

bool TargetAttentionFast(size_t T, const float* q, size_t ldq, float scale, const float* ht, const float* h, size_t l,
                         size_t d, float* u, size_t ldu, float* scores) {
  if (!HasAvx512() || d % 16 != 0 || l == 0) return false;
  AttentionAvx512(T, q, ldq, scale, ht, h, l, d, u, ldu, scores);
  return true;
}

bool SigmoidFast(size_t n, const float* x, float factor, float* y) {
  if (!HasAvx512()) return false;
  SigmoidAvx512(n, x, factor, y);
  return true;
}

}  // namespace dtrn::kernels

#else

namespace dtrn::kernels {
bool TargetAttentionFast(size_t, const float*, size_t, float, const float*, const float*, size_t, size_t, float*,
                         size_t, float*) {
  return false;
}
bool SigmoidFast(size_t, const float*, float, float*) { return false; }
bool AxpyInt8Fast(size_t, float, const int8_t*, float*) { return false; }
bool RowF16Fast(const uint16_t*, size_t, float*) { return false; }
}  // namespace dtrn::kernels

#endif
