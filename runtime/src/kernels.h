// Our own small kernels: what Debian's XNNPACK has no operator for (attention's
// batched products, softmax, LayerNorm, embedding gathers). Row-major, explicit
// leading dimensions, no allocation; inner loops run over contiguous memory so the
// compiler vectorises them.
#pragma once

#include <cstddef>
#include <cstdint>

// Hot kernels are compiled for several x86-64 levels and picked at load time (ifunc),
// so a baseline build still runs AVX-512 / AVX2 code where the CPU has it. Elsewhere
// (ARM, other OS) they compile once for the target. Not under ThreadSanitizer: an ifunc
// resolver runs before the sanitizer's runtime is up and crashes the program at load.
#if defined(__SANITIZE_THREAD__)
#define DTRN_NO_MULTIVERSION 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DTRN_NO_MULTIVERSION 1
#endif
#endif
#if defined(__x86_64__) && defined(__linux__) && !defined(__ANDROID__) && defined(__GNUC__) && \
    !defined(DTRN_NO_MULTIVERSION)
#define DTRN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DTRN_MULTIVERSION
#endif

namespace dtrn::kernels {

// C[M x N] = alpha * A[M x K] · B[K x N]  (overwrites C).
void GemmNN(size_t M, size_t N, size_t K, float alpha, const float* A, size_t lda, const float* B, size_t ldb, float* C,
            size_t ldc);

// C[M x N] += A[M x K] · B[K x N].
void GemmNNAdd(size_t M, size_t N, size_t K, const float* A, size_t lda, const float* B, size_t ldb, float* C,
               size_t ldc);

// y[o] = W[o, :] · x for o < rows (W row-major, leading dimension ldw, row length n).
void Gemv(size_t rows, size_t n, const float* W, size_t ldw, const float* x, float* y);

// Dot product, eight partial sums (a fixed order: same result on every call).
float Dot(size_t n, const float* a, const float* b);

// x[i] = max(x[i], 0)
void Relu(size_t n, float* x);

// dst[cols x rows] = src[rows x cols]ᵀ.
void Transpose(size_t rows, size_t cols, const float* src, size_t lds, float* dst, size_t ldd);

// In-place softmax of each of `rows` rows of length n (max-subtracted; n >= 1).
void SoftmaxRows(float* x, size_t rows, size_t n, size_t ld);

// out = LayerNorm(x + y) * gamma + beta per row of width d (eps 1e-5, biased variance).
// out may alias x or y.
void AddLayerNorm(const float* x, const float* y, size_t rows, size_t d, const float* gamma, const float* beta,
                  float* out);

// Self-attention of one sequence of l >= 1 rows: qkv is [l, 3d] (Q | K | V, ld = ldqkv),
// out [l, d] (ld = ldo) = concat_h softmax(Q_h K_hᵀ / sqrt(d/h)) V_h.
// scratch: at least AttentionScratch(l, d, heads) floats.
void SelfAttention(const float* qkv, size_t ldqkv, size_t l, size_t d, size_t heads, float* out, size_t ldo,
                   float* scratch);
size_t AttentionScratch(size_t l, size_t d, size_t heads);

// IEEE binary16 -> float (exact, subnormals and specials included).
float HalfToFloat(uint16_t h);

// Embedding row -> floats: F32 copy, F16 widen, INT8 times its row scale.
void RowF32(const float* table, int64_t row, size_t d, float* out);
void RowF16(const uint16_t* table, int64_t row, size_t d, float* out);
void RowInt8(const int8_t* table, const float* scales, int64_t row, size_t d, float* out);

float Mean(const float* x, size_t n);
// y[i] += a * x[i]
void Axpy(size_t n, float a, const float* x, float* y);

// Numerically safe logistic function.
float Sigmoid(float x);

// y[i] = factor · sigmoid(x[i]) for i < n (vectorised where the CPU allows; y may alias x).
void SigmoidRows(size_t n, const float* x, float factor, float* y);

// Target attention of T queries over one sequence of l >= 1 rows: u_c = softmax(scale ·
// q_c · Hᵀ) H, q [T, ldq], ht = Hᵀ [d, l], h = H [l, d], u [T, ldu]; scores: T · l floats.
void TargetAttention(size_t T, const float* q, size_t ldq, float scale, const float* ht, const float* h, size_t l,
                     size_t d, float* u, size_t ldu, float* scores);

// The AVX-512 versions (attention_avx512.cc); false where they cannot run (then the portable
// ones above run instead).
bool TargetAttentionFast(size_t T, const float* q, size_t ldq, float scale, const float* ht, const float* h, size_t l,
                         size_t d, float* u, size_t ldu, float* scores);
bool SigmoidFast(size_t n, const float* x, float factor, float* y);
bool AxpyInt8Fast(size_t n, float a, const int8_t* x, float* y);
bool RowF16Fast(const uint16_t* row, size_t d, float* out);  // F16C: exact, as HalfToFloat

// y[i] += a · x[i] for int8 x (the split layers' per-request products on int8 weights).
void AxpyInt8(size_t n, float a, const int8_t* x, float* y);

}  // namespace dtrn::kernels
