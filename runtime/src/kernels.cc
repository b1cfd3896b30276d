#include "kernels.h"

#include <cmath>
#include <cstring>

namespace dtrn::kernels {

DTRN_MULTIVERSION
void GemmNN(size_t M, size_t N, size_t K, float alpha, const float* A, size_t lda, const float* B, size_t ldb, float* C,
            size_t ldc) {
  size_t m = 0;
  // Four rows of C at a time: each row of B is loaded once for four FMAs.
  for (; m + 4 <= M; m += 4) {
    float* __restrict c0 = C + m * ldc;
    float* __restrict c1 = c0 + ldc;
    float* __restrict c2 = c1 + ldc;
    float* __restrict c3 = c2 + ldc;
    std::memset(c0, 0, N * sizeof(float));
    std::memset(c1, 0, N * sizeof(float));
    std::memset(c2, 0, N * sizeof(float));
    std::memset(c3, 0, N * sizeof(float));
    const float* a = A + m * lda;
    for (size_t k = 0; k < K; ++k) {
      const float a0 = alpha * a[k], a1 = alpha * a[lda + k], a2 = alpha * a[2 * lda + k], a3 = alpha * a[3 * lda + k];
      const float* __restrict b = B + k * ldb;
      for (size_t n = 0; n < N; ++n) {
        const float bv = b[n];
        c0[n] += a0 * bv;
        c1[n] += a1 * bv;
        c2[n] += a2 * bv;
        c3[n] += a3 * bv;
      }
    }
  }
  for (; m < M; ++m) {
    float* __restrict c = C + m * ldc;
    std::memset(c, 0, N * sizeof(float));
    const float* a = A + m * lda;
    for (size_t k = 0; k < K; ++k) {
      const float av = alpha * a[k];
      const float* __restrict b = B + k * ldb;
      for (size_t n = 0; n < N; ++n) c[n] += av * b[n];
    }
  }
}

DTRN_MULTIVERSION
void GemmNNAdd(size_t M, size_t N, size_t K, const float* A, size_t lda, const float* B, size_t ldb, float* C,
               size_t ldc) {
  for (size_t m = 0; m < M; ++m) {
    float* __restrict c = C + m * ldc;
    const float* a = A + m * lda;
    for (size_t k = 0; k < K; ++k) {
      const float av = a[k];
      const float* __restrict b = B + k * ldb;
      for (size_t n = 0; n < N; ++n) c[n] += av * b[n];
    }
  }
}

DTRN_MULTIVERSION
float Dot(size_t n, const float* a, const float* b) {
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (size_t j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float tail = 0.f;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

void Gemv(size_t rows, size_t n, const float* W, size_t ldw, const float* x, float* y) {
  for (size_t o = 0; o < rows; ++o) y[o] = Dot(n, W + o * ldw, x);
}

DTRN_MULTIVERSION
void Relu(size_t n, float* x) {
  for (size_t i = 0; i < n; ++i) x[i] = x[i] > 0.f ? x[i] : 0.f;
}

void Transpose(size_t rows, size_t cols, const float* src, size_t lds, float* dst, size_t ldd) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

DTRN_MULTIVERSION
void SoftmaxRows(float* x, size_t rows, size_t n, size_t ld) {
  for (size_t r = 0; r < rows; ++r) {
    float* v = x + r * ld;
    float mx = v[0];
    for (size_t i = 1; i < n; ++i) mx = v[i] > mx ? v[i] : mx;
    float sum = 0.f;
    for (size_t i = 0; i < n; ++i) {
      v[i] = std::exp(v[i] - mx);
      sum += v[i];
    }
    const float inv = 1.f / sum;
    for (size_t i = 0; i < n; ++i) v[i] *= inv;
  }
}

DTRN_MULTIVERSION
void AddLayerNorm(const float* x, const float* y, size_t rows, size_t d, const float* gamma, const float* beta,
                  float* out) {
  const float inv_d = 1.f / static_cast<float>(d);
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    const float* yr = y + r * d;
    float* o = out + r * d;
    float sum = 0.f;
    for (size_t i = 0; i < d; ++i) {
      o[i] = xr[i] + yr[i];
      sum += o[i];
    }
    const float mean = sum * inv_d;
    float var = 0.f;
    for (size_t i = 0; i < d; ++i) {
      const float c = o[i] - mean;
      var += c * c;
    }
    const float inv = 1.f / std::sqrt(var * inv_d + 1e-5f);
    for (size_t i = 0; i < d; ++i) o[i] = (o[i] - mean) * inv * gamma[i] + beta[i];
  }
}

size_t AttentionScratch(size_t l, size_t d, size_t heads) { return 2 * (d / heads) * l + l * l; }

void SelfAttention(const float* qkv, size_t ldqkv, size_t l, size_t d, size_t heads, float* out, size_t ldo,
                   float* scratch) {
  const size_t dh = d / heads;
  const float scale = 1.f / std::sqrt(static_cast<float>(dh));
  float* kt = scratch;      // [dh, l]
  float* vh = kt + dh * l;  // [l, dh]
  float* s = vh + dh * l;   // [l, l]
  for (size_t h = 0; h < heads; ++h) {
    Transpose(l, dh, qkv + d + h * dh, ldqkv, kt, l);
    // Every position attends to the sequence: target attention with the l queries Q_h.
    for (size_t j = 0; j < l; ++j) std::memcpy(vh + j * dh, qkv + 2 * d + h * dh + j * ldqkv, dh * sizeof(float));
    if (TargetAttentionFast(l, qkv + h * dh, ldqkv, scale, kt, vh, l, dh, out + h * dh, ldo, s)) continue;
    GemmNN(l, l, dh, scale, qkv + h * dh, ldqkv, kt, l, s, l);
    SoftmaxRows(s, l, l, l);
    GemmNN(l, dh, l, 1.f, s, l, vh, dh, out + h * dh, ldo);
  }
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: renormalise
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3FFu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

void RowF32(const float* table, int64_t row, size_t d, float* out) {
  std::memcpy(out, table + static_cast<size_t>(row) * d, d * sizeof(float));
}

void RowF16(const uint16_t* table, int64_t row, size_t d, float* out) {
  const uint16_t* r = table + static_cast<size_t>(row) * d;
  if (RowF16Fast(r, d, out)) return;
  for (size_t i = 0; i < d; ++i) out[i] = HalfToFloat(r[i]);
}

DTRN_MULTIVERSION
void RowInt8(const int8_t* table, const float* scales, int64_t row, size_t d, float* out) {
  const int8_t* r = table + static_cast<size_t>(row) * d;
  const float s = scales[row];
  for (size_t i = 0; i < d; ++i) out[i] = s * static_cast<float>(r[i]);
}

float Mean(const float* x, size_t n) {
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (size_t j = 0; j < 8; ++j) acc[j] += x[i + j];
  float tail = 0.f;
  for (; i < n; ++i) tail += x[i];
  const float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
  return s / static_cast<float>(n);
}

DTRN_MULTIVERSION
void Axpy(size_t n, float a, const float* x, float* y) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}

float Sigmoid(float x) {
  if (x >= 0.f) return 1.f / (1.f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.f + e);
}

void AxpyInt8(size_t n, float a, const int8_t* x, float* y) {
  if (AxpyInt8Fast(n, a, x, y)) return;
  for (size_t i = 0; i < n; ++i) y[i] += a * static_cast<float>(x[i]);
}

void SigmoidRows(size_t n, const float* x, float factor, float* y) {
  if (SigmoidFast(n, x, factor, y)) return;
  for (size_t i = 0; i < n; ++i) y[i] = factor * Sigmoid(x[i]);
}

void TargetAttention(size_t T, const float* q, size_t ldq, float scale, const float* ht, const float* h, size_t l,
                     size_t d, float* u, size_t ldu, float* scores) {
  if (TargetAttentionFast(T, q, ldq, scale, ht, h, l, d, u, ldu, scores)) return;
  GemmNN(T, l, d, scale, q, ldq, ht, l, scores, l);
  SoftmaxRows(scores, T, l, l);
  GemmNN(T, d, l, 1.f, scores, l, h, d, u, ldu);
}

}  // namespace dtrn::kernels
