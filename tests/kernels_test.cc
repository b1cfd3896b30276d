// Our kernels and the dense-layer dispatch vs straightforward loops in double.
#include <gtest/gtest.h>
#include <xnnpack.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "dense.h"
#include "int8_kernels.h"
#include "kernels.h"
#include "split_dense.h"

namespace dtrn {
namespace {

namespace k = kernels;

std::vector<float> Rand(size_t n, std::mt19937_64& rng, float a = 1.f) {
  std::vector<float> v(n);
  for (float& x : v) x = std::uniform_real_distribution<float>(-a, a)(rng);
  return v;
}

TEST(Kernels, GemmNNMatchesLoops) {
  std::mt19937_64 rng(1);
  for (size_t M : {1, 3, 4, 7, 13})
    for (size_t N : {1, 5, 16, 33})
      for (size_t K : {1, 8, 19}) {
        const size_t lda = K + 2, ldb = N + 3, ldc = N + 1;
        auto A = Rand(M * lda, rng), B = Rand(K * ldb, rng);
        std::vector<float> C(M * ldc, 123.f);
        k::GemmNN(M, N, K, 0.5f, A.data(), lda, B.data(), ldb, C.data(), ldc);
        for (size_t m = 0; m < M; ++m) {
          for (size_t n = 0; n < N; ++n) {
            double ref = 0;
            for (size_t q = 0; q < K; ++q) ref += double(A[m * lda + q]) * B[q * ldb + n];
            EXPECT_NEAR(C[m * ldc + n], 0.5 * ref, 1e-5) << M << "x" << N << "x" << K;
          }
          if (ldc > N) {
            EXPECT_EQ(C[m * ldc + N], 123.f);  // padding untouched
          }
        }
      }
}

TEST(Kernels, GemmNNAddGemvDotRelu) {
  std::mt19937_64 rng(9);
  const size_t M = 6, N = 37, K = 5, lda = 7, ldb = 40, ldc = 38;
  auto A = Rand(M * lda, rng), B = Rand(K * ldb, rng), C = Rand(M * ldc, rng);
  auto C0 = C;
  k::GemmNNAdd(M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc);
  for (size_t m = 0; m < M; ++m)
    for (size_t n = 0; n < N; ++n) {
      double ref = C0[m * ldc + n];
      for (size_t q = 0; q < K; ++q) ref += double(A[m * lda + q]) * B[q * ldb + n];
      EXPECT_NEAR(C[m * ldc + n], ref, 1e-5);
    }
  for (size_t n : {0, 1, 7, 8, 9, 33}) {
    auto a = Rand(n, rng), b = Rand(n, rng);
    double ref = 0;
    for (size_t i = 0; i < n; ++i) ref += double(a[i]) * b[i];
    EXPECT_NEAR(k::Dot(n, a.data(), b.data()), ref, 1e-5) << n;
    if (n) {
      double mean = 0;
      for (float v : a) mean += v;
      EXPECT_NEAR(k::Mean(a.data(), n), mean / n, 1e-6) << n;
    }
  }
  auto W = Rand(5 * 21, rng), x = Rand(19, rng);
  std::vector<float> y(5);
  k::Gemv(5, 19, W.data(), 21, x.data(), y.data());
  for (size_t o = 0; o < 5; ++o) {
    double ref = 0;
    for (size_t c = 0; c < 19; ++c) ref += double(W[o * 21 + c]) * x[c];
    EXPECT_NEAR(y[o], ref, 1e-5);
  }
  std::vector<float> r = {-1.f, 0.f, 2.f, -0.f, 3.5f};
  k::Relu(r.size(), r.data());
  EXPECT_EQ(r, (std::vector<float>{0.f, 0.f, 2.f, 0.f, 3.5f}));
}

TEST(Kernels, Transpose) {
  std::mt19937_64 rng(2);
  auto src = Rand(5 * 9, rng);
  std::vector<float> dst(7 * 6, -1.f);
  k::Transpose(5, 7, src.data(), 9, dst.data(), 6);
  for (size_t r = 0; r < 5; ++r)
    for (size_t c = 0; c < 7; ++c) EXPECT_EQ(dst[c * 6 + r], src[r * 9 + c]);
}

TEST(Kernels, SoftmaxRows) {
  std::mt19937_64 rng(3);
  auto x = Rand(3 * 10, rng, 5.f);
  x[0] = 1000.f;  // large values do not overflow
  x[11] = -1000.f;
  auto orig = x;
  k::SoftmaxRows(x.data(), 3, 7, 10);
  for (size_t r = 0; r < 3; ++r) {
    double mx = -INFINITY, sum = 0;
    for (size_t i = 0; i < 7; ++i) mx = std::max(mx, double(orig[r * 10 + i]));
    for (size_t i = 0; i < 7; ++i) sum += std::exp(orig[r * 10 + i] - mx);
    for (size_t i = 0; i < 7; ++i) EXPECT_NEAR(x[r * 10 + i], std::exp(orig[r * 10 + i] - mx) / sum, 1e-6);
    for (size_t i = 7; i < 10; ++i) EXPECT_EQ(x[r * 10 + i], orig[r * 10 + i]);
  }
  float one = 3.f;
  k::SoftmaxRows(&one, 1, 1, 1);
  EXPECT_EQ(one, 1.f);
}

TEST(Kernels, AddLayerNorm) {
  std::mt19937_64 rng(4);
  const size_t rows = 5, d = 24;
  auto x = Rand(rows * d, rng, 3.f), y = Rand(rows * d, rng), g = Rand(d, rng), b = Rand(d, rng);
  for (size_t i = 0; i < d; ++i) x[i] = 2.f;  // row 0: x constant; var comes from y only
  std::vector<float> out(rows * d);
  k::AddLayerNorm(x.data(), y.data(), rows, d, g.data(), b.data(), out.data());
  for (size_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (size_t i = 0; i < d; ++i) mean += double(x[r * d + i]) + y[r * d + i];
    mean /= d;
    for (size_t i = 0; i < d; ++i) var += std::pow(double(x[r * d + i]) + y[r * d + i] - mean, 2);
    var /= d;
    for (size_t i = 0; i < d; ++i) {
      double ref = (double(x[r * d + i]) + y[r * d + i] - mean) / std::sqrt(var + 1e-5) * g[i] + b[i];
      EXPECT_NEAR(out[r * d + i], ref, 2e-5);
    }
  }
  // out may alias x.
  auto x2 = x;
  k::AddLayerNorm(x2.data(), y.data(), rows, d, g.data(), b.data(), x2.data());
  EXPECT_EQ(x2, out);
  // A constant row: var = 0, output = beta (eps keeps it finite).
  std::vector<float> c(d, 7.f), zero(d, 0.f), o(d);
  k::AddLayerNorm(c.data(), zero.data(), 1, d, g.data(), b.data(), o.data());
  for (size_t i = 0; i < d; ++i) EXPECT_NEAR(o[i], b[i], 1e-6);
}

TEST(Kernels, SelfAttentionMatchesLoops) {
  std::mt19937_64 rng(5);
  for (size_t l : {1, 2, 9, 33})
    for (size_t heads : {1, 2, 4}) {
      const size_t d = 16, dh = d / heads, ldq = 3 * d + 5, ldo = d + 3;
      auto qkv = Rand(l * ldq, rng, 2.f);
      std::vector<float> out(l * ldo, 0.f), scratch(k::AttentionScratch(l, d, heads));
      k::SelfAttention(qkv.data(), ldq, l, d, heads, out.data(), ldo, scratch.data());
      for (size_t h = 0; h < heads; ++h)
        for (size_t i = 0; i < l; ++i) {
          std::vector<double> s(l);
          double mx = -INFINITY, sum = 0;
          for (size_t j = 0; j < l; ++j) {
            double dot = 0;
            for (size_t c = 0; c < dh; ++c) dot += double(qkv[i * ldq + h * dh + c]) * qkv[j * ldq + d + h * dh + c];
            s[j] = dot / std::sqrt(double(dh));
            mx = std::max(mx, s[j]);
          }
          for (size_t j = 0; j < l; ++j) sum += (s[j] = std::exp(s[j] - mx));
          for (size_t c = 0; c < dh; ++c) {
            double ref = 0;
            for (size_t j = 0; j < l; ++j) ref += s[j] / sum * qkv[j * ldq + 2 * d + h * dh + c];
            EXPECT_NEAR(out[i * ldo + h * dh + c], ref, 1e-5) << "l=" << l << " heads=" << heads;
          }
        }
    }
}

TEST(Kernels, HalfToFloatAllValues) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint32_t exp = (h >> 10) & 31, mant = h & 1023;
    const double sign = (h & 0x8000) ? -1.0 : 1.0;
    const float got = k::HalfToFloat(static_cast<uint16_t>(h));
    if (exp == 31) {
      if (mant == 0)
        EXPECT_EQ(got, float(sign * INFINITY)) << h;
      else
        EXPECT_TRUE(std::isnan(got)) << h;
      continue;
    }
    const double ref =
        exp == 0 ? sign * std::ldexp(double(mant), -24) : sign * std::ldexp(1.0 + mant / 1024.0, int(exp) - 15);
    EXPECT_EQ(double(got), ref) << h;
    if (h == 0x8000) {
      EXPECT_TRUE(std::signbit(got));
    }
  }
}

TEST(Kernels, EmbeddingRows) {
  std::vector<float> f32 = {1, 2, 3, 4, 5, 6};
  std::vector<float> out(3);
  k::RowF32(f32.data(), 1, 3, out.data());
  EXPECT_EQ(out, (std::vector<float>{4, 5, 6}));
  std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x3800, 0x0001, 0x7BFF, 0x0000};  // 1 -2 .5 | 2^-24 65504 0
  k::RowF16(f16.data(), 0, 3, out.data());
  EXPECT_EQ(out, (std::vector<float>{1.f, -2.f, 0.5f}));
  k::RowF16(f16.data(), 1, 3, out.data());
  EXPECT_EQ(out, (std::vector<float>{std::ldexp(1.f, -24), 65504.f, 0.f}));
  std::vector<int8_t> q = {127, -127, 0, 1, 2, -3};
  std::vector<float> scales = {0.5f, 0.25f};
  k::RowInt8(q.data(), scales.data(), 0, 3, out.data());
  EXPECT_EQ(out, (std::vector<float>{63.5f, -63.5f, 0.f}));
  k::RowInt8(q.data(), scales.data(), 1, 3, out.data());
  EXPECT_EQ(out, (std::vector<float>{0.25f, 0.5f, -0.75f}));
}

TEST(Kernels, SigmoidMeanAxpy) {
  for (float x : {-100.f, -20.f, -1.f, 0.f, 0.5f, 20.f, 100.f})
    EXPECT_NEAR(k::Sigmoid(x), 1.0 / (1.0 + std::exp(-double(x))), 1e-7);
  EXPECT_EQ(k::Sigmoid(-1000.f), 0.f);
  EXPECT_EQ(k::Sigmoid(1000.f), 1.f);
  std::vector<float> x = {1, 2, 3, 6};
  EXPECT_FLOAT_EQ(k::Mean(x.data(), 4), 3.f);
  std::vector<float> y = {1, 1, 1, 1};
  k::Axpy(4, 2.f, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{3, 5, 7, 13}));
}

// ------------------------------------------------------------------ dense layers

class Dense : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(xnn_initialize(nullptr), xnn_status_success); }
};

// A Linear's tensors, owned by the test.
struct LinearData {
  LinearSpec spec;
  std::vector<float> w, b, ws;
  std::vector<int8_t> wq;
  std::vector<int32_t> bq;
};

LinearData F32Linear(const std::string& name, int in, int out, bool relu, std::mt19937_64& rng) {
  LinearData l;
  l.w = Rand(size_t(in) * out, rng, 0.5f);
  l.b = Rand(out, rng, 0.3f);
  l.spec.name = name;
  l.spec.in = in, l.spec.out = out, l.spec.relu = relu;
  l.spec.weight_f32 = l.w.data();
  l.spec.bias_f32 = l.b.data();
  return l;
}

TEST_F(Dense, F32ChainMatchesLoops) {
  std::mt19937_64 rng(6);
  WeightCache cache(int8::BestIsa());
  LinearData l1 = F32Linear("a", 13, 21, true, rng), l2 = F32Linear("b", 21, 5, false, rng);
  auto chain = DenseChain::Create({&l1.spec, &l2.spec}, &cache);
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  EXPECT_EQ(chain.value()->in_features(), 13);
  EXPECT_EQ(chain.value()->out_features(), 5);
  ChainScratch cs;
  for (size_t rows : {1, 7, 64}) {
    Buffer<float> in;
    float* x = in.Reserve(rows * 13);
    auto xv = Rand(rows * 13, rng, 2.f);
    std::memcpy(x, xv.data(), xv.size() * 4);
    std::vector<float> y(rows * 5);
    ASSERT_TRUE(chain.value()->Run(rows, x, y.data(), Exec{nullptr, nullptr, &cs}).ok());
    for (size_t r = 0; r < rows; ++r) {
      std::vector<double> h(21);
      for (int o = 0; o < 21; ++o) {
        double acc = l1.b[o];
        for (int i = 0; i < 13; ++i) acc += double(x[r * 13 + i]) * l1.w[o * 13 + i];
        h[o] = std::max(0.0, acc);
      }
      for (int o = 0; o < 5; ++o) {
        double acc = l2.b[o];
        for (int i = 0; i < 21; ++i) acc += h[i] * l2.w[o * 21 + i];
        EXPECT_NEAR(y[r * 5 + o], acc, 1e-4);
      }
    }
  }
}

LinearData Int8Linear(const std::string& name, int in, int out, bool relu, std::mt19937_64& rng) {
  LinearData l;
  l.wq.resize(size_t(in) * out);
  for (auto& v : l.wq) v = static_cast<int8_t>(int(rng() % 255) - 127);
  l.ws = Rand(out, rng, 0.01f);
  for (auto& s : l.ws) s = std::fabs(s) + 0.001f;
  l.b = Rand(out, rng, 0.3f);
  l.spec.name = name;
  l.spec.in = in, l.spec.out = out, l.spec.relu = relu;
  l.spec.precision = Precision::INT8;
  l.spec.weight_i8 = l.wq.data();
  l.spec.bias_f32 = l.b.data();
  l.spec.weight_scale = l.ws.data();
  return l;
}

// The arithmetic of int8_kernels.h, written out plainly (no packing, no SIMD).
std::vector<float> Int8Reference(const LinearData& l, const std::vector<float>& x, size_t rows, const int8::Epilogue& e,
                                 const std::vector<float>& out0) {
  const LinearSpec& s = l.spec;
  std::vector<float> y = out0;
  for (size_t r = 0; r < rows; ++r) {
    float lo = 0, hi = 0;
    for (int i = 0; i < s.in; ++i) lo = std::min(lo, x[r * s.in + i]), hi = std::max(hi, x[r * s.in + i]);
    float sc = 1.f, inv = 0.f;
    int32_t zp = 0;
    std::vector<int32_t> q(s.in, 0);
    if (hi != lo) {
      sc = (hi - lo) / 255.f;
      inv = 1.f / sc;
      zp = std::clamp(int32_t(std::nearbyint(-lo * inv)), 0, 255);
      for (int i = 0; i < s.in; ++i) q[i] = std::clamp(int32_t(std::nearbyint(x[r * s.in + i] * inv)) + zp, 0, 255);
    }
    for (int o = 0; o < s.out; ++o) {
      int32_t acc = 0, wsum = 0;
      for (int i = 0; i < s.in; ++i) acc += q[i] * s.weight_i8[o * s.in + i], wsum += s.weight_i8[o * s.in + i];
      float v = std::fma(float(acc - zp * wsum), sc * s.weight_scale[o], s.bias_f32[o]);
      for (size_t u = 0; u < e.add_n; ++u) v = std::fma(e.add_a[r * e.lda + u], e.add_p[u * e.ldp + o], v);
      for (size_t i = 0; i < e.radd_n; ++i)
        v = std::fma(e.radd_a[r * e.ldra + i], e.radd_p[i * e.ldrp_f + r * e.ldrp_r + o], v);
      if (e.relu) v = v > 0.f ? v : 0.f;
      if (e.mix) v = std::fma(e.mix[r * e.ldmix], v, y[r * s.out + o]);
      y[r * s.out + o] = v;
    }
  }
  return y;
}

// Every int8 kernel this CPU runs gives the reference's bits, for odd shapes, every
// epilogue extra, zero rows and rows of one sign; the bits also stay within quantization
// error of the f32 product (so the reference itself computes the layer).
TEST(Int8Kernels, EveryIsaMatchesTheReferenceBitForBit) {
  std::mt19937_64 rng(10);
  struct Shape {
    int in, out;
  };
  int isas = 0;
  for (int8::Isa isa : {int8::Isa::kPortable, int8::Isa::kAvx2, int8::Isa::kAvx512Vnni, int8::Isa::kNeonDot}) {
    if (!int8::IsaAvailable(isa)) continue;
    ++isas;
    for (const Shape& sh :
         {Shape{13, 7}, Shape{64, 16}, Shape{224, 256}, Shape{33, 50}, Shape{7, 1}, Shape{256, 129}, Shape{1, 3}}) {
      for (int variant = 0; variant < 4; ++variant) {
        LinearData l = Int8Linear("k", sh.in, sh.out, variant % 2 == 1, rng);
        auto packed = int8::PackedWeights::Pack("k", l.wq.data(), l.ws.data(), l.b.data(), sh.out, sh.in, isa);
        ASSERT_TRUE(packed.ok()) << packed.status().ToString();
        for (size_t rows : {1, 3, 4, 5, 6, 7, 13, 37}) {
          std::vector<float> x = Rand(rows * sh.in, rng, 3.f);
          if (rows > 2) std::fill(x.begin(), x.begin() + sh.in, 0.f);  // a zero row
          if (rows > 3)
            for (int i = 0; i < sh.in; ++i) x[sh.in + i] = std::fabs(x[sh.in + i]);  // relu-like
          const size_t n_add = variant >= 2 ? 3 : 0;
          std::vector<float> a = Rand(rows * 4, rng, 2.f), p = Rand(4 * (sh.out + 5), rng, 1.f),
                             g = Rand(rows * 2, rng, 1.f);
          int8::Epilogue e;
          e.relu = l.spec.relu;
          e.add_a = a.data(), e.lda = 4, e.add_p = p.data(), e.ldp = sh.out + 5, e.add_n = n_add;
          // Per-row products: 2 of them, [2][rows][out + 3].
          std::vector<float> rb = Rand(rows * 3, rng, 1.5f), rp = Rand(2 * rows * (sh.out + 3), rng, 1.f);
          if (variant >= 2)
            e.radd_a = rb.data(), e.ldra = 3, e.radd_p = rp.data(), e.ldrp_f = rows * (sh.out + 3),
            e.ldrp_r = sh.out + 3, e.radd_n = 2;
          if (variant == 3) e.mix = g.data(), e.ldmix = 2;
          std::vector<float> out0 = Rand(rows * sh.out, rng, 1.f);
          const size_t ldq = int8::QuantizedStride(*packed.value());
          std::vector<uint8_t> q(rows * ldq);
          std::vector<float> s(rows);
          std::vector<int32_t> zp(rows);
          int8::QuantizeRows(rows, sh.in, x.data(), sh.in, q.data(), ldq, s.data(), zp.data());
          std::vector<float> y = out0;
          y.resize(rows * sh.out + 16, 99.f);
          int8::Gemm(*packed.value(), rows, q.data(), ldq, s.data(), zp.data(), e, y.data(), sh.out, nullptr);
          const std::vector<float> want = Int8Reference(l, x, rows, e, out0);
          for (size_t i = 0; i < want.size(); ++i)
            ASSERT_EQ(y[i], want[i]) << int8::IsaName(isa) << " " << sh.in << "->" << sh.out << " rows " << rows
                                     << " variant " << variant << " value " << i;
          for (size_t i = want.size(); i < y.size(); ++i) ASSERT_EQ(y[i], 99.f) << "wrote past the output";
          if (variant == 0) {  // plain layer: close to the f32 product
            for (size_t r = 0; r < rows; ++r)
              for (int o = 0; o < sh.out; ++o) {
                double exact = l.b[o], bound = 0;
                for (int i = 0; i < sh.in; ++i) {
                  const double w = double(l.wq[o * sh.in + i]) * l.ws[o];
                  exact += double(x[r * sh.in + i]) * w;
                  bound += std::fabs(w) * s[r] * 0.5;  // each input within half a step
                }
                EXPECT_NEAR(want[r * sh.out + o], exact, bound * 1.001 + 1e-5);
              }
          }
        }
      }
    }
  }
  EXPECT_GE(isas, 1);
}

// fuzz/fuzz_score found huge (finite) dense inputs overflowing to an infinite row range: the
// row must quantize to zeros with a NaN scale on every path (its outputs NaN, as in f32),
// with no undefined float-to-int conversion (the sanitizer build checks that). A NaN
// element in a finite row must not crash either (its byte is unspecified).
TEST(Int8Kernels, QuantizeRowsWithNonFiniteRanges) {
  const size_t n = 19, rows = 4, ldq = 24;
  const float big = std::numeric_limits<float>::max(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> x(rows * n, 1.f);
  x[0 * n + 3] = big, x[0 * n + 7] = -big;  // range overflows
  x[1 * n + 5] = inf;
  x[2 * n + 2] = -inf;
  x[3 * n + 4] = std::numeric_limits<float>::quiet_NaN();  // finite range, a NaN inside
  using Fn = void (*)(size_t, size_t, const float*, size_t, uint8_t*, size_t, float*, int32_t*);
  std::vector<Fn> fns = {int8::detail::QuantizeRowsPortable, int8::detail::QuantizeRowsAvx2,
                         int8::detail::QuantizeRowsAvx512};
  for (Fn fn : fns) {
    std::vector<uint8_t> q(rows * ldq, 7);
    std::vector<float> s(rows);
    std::vector<int32_t> z(rows);
    fn(rows, n, x.data(), n, q.data(), ldq, s.data(), z.data());
    for (size_t r = 0; r < 3; ++r) {
      EXPECT_TRUE(std::isnan(s[r])) << r;
      EXPECT_EQ(z[r], 0) << r;
      for (size_t j = 0; j < ldq; ++j) EXPECT_EQ(q[r * ldq + j], 0) << r << " " << j;
    }
    // The NaN element's byte is unspecified (0 here, 255 where a SIMD conversion saturates);
    // the row's other bytes are the ordinary ones.
    EXPECT_EQ(q[3 * ldq + 0], q[3 * ldq + 1]);
  }
}

TEST(Int8Kernels, QuantizeRowsIsTheSameOnEveryPath) {
  std::mt19937_64 rng(12);
  for (size_t n : {1, 3, 15, 16, 17, 100, 256}) {
    std::vector<float> x = Rand(9 * n, rng, 5.f);
    for (size_t i = 0; i < n; ++i) x[i] = 0.f;                               // zero row
    for (size_t i = 0; i < n; ++i) x[n + i] = std::fabs(x[n + i]);           // non-negative
    for (size_t i = 0; i < n; ++i) x[2 * n + i] = -std::fabs(x[2 * n + i]);  // non-positive
    const size_t ldq = (n + 3) / 4 * 4 + 4;
    std::vector<uint8_t> q0(9 * ldq, 7), q1(9 * ldq, 7);
    std::vector<float> s0(9), s1(9);
    std::vector<int32_t> z0(9), z1(9);
    int8::detail::QuantizeRowsPortable(9, n, x.data(), n, q0.data(), ldq, s0.data(), z0.data());
    for (auto fn : {int8::detail::QuantizeRowsAvx2, int8::detail::QuantizeRowsAvx512}) {
      std::fill(q1.begin(), q1.end(), 7);
      fn(9, n, x.data(), n, q1.data(), ldq, s1.data(), z1.data());
      EXPECT_EQ(q0, q1) << n;
      EXPECT_EQ(s0, s1) << n;
      EXPECT_EQ(z0, z1) << n;
    }
    // Dequantized values lie within half a step of the inputs; 0 maps exactly.
    for (size_t r = 0; r < 9; ++r)
      for (size_t j = 0; j < n; ++j) {
        const float back = s0[r] * float(int(q0[r * ldq + j]) - z0[r]);
        EXPECT_NEAR(back, x[r * n + j], s0[r] * 0.5001f + 1e-6f);
        if (x[r * n + j] == 0.f) EXPECT_EQ(back, 0.f);
      }
  }
}

// The split first layer's GEMM keeps a reference to the spec that describes W_rest: that
// spec's weights must stay valid as long as the layer (once they pointed at a vector freed
// right after packing; AddressSanitizer reports the read below as heap-use-after-free then).
TEST_F(Dense, SplitLayerSpecDescribesLiveWeights) {
  std::mt19937_64 rng(11);
  const int d = 4, n = 5;  // fields 0 and 3 are user/context, the rest item/interest columns
  const std::vector<bool> is_uc = {true, false, false, true, false};
  const std::vector<int> uc_slot = {0, -1, -1, 1, -1};
  for (bool int8 : {false, true}) {
    LinearData l = int8 ? Int8Linear("split", n * d, 6, true, rng) : F32Linear("split", n * d, 6, true, rng);
    WeightCache cache(int8::BestIsa());
    auto split = SplitDense::Create(l.spec, d, is_uc, uc_slot, {}, &cache);
    ASSERT_TRUE(split.ok()) << split.status().ToString();
    ASSERT_EQ(split.value()->rest_width(), 3 * d);
    const float* rest_f32 = split.value()->rest_weight_f32();
    const int8_t* rest_i8 = split.value()->rest_weight_i8();
    const int rest_fields[] = {1, 2, 4};
    for (int o = 0; o < 6; ++o)
      for (int j = 0; j < 3; ++j)
        for (int e = 0; e < d; ++e) {
          const size_t src = size_t(o) * n * d + rest_fields[j] * d + e, dst = size_t(o) * 3 * d + j * d + e;
          if (int8)
            ASSERT_EQ(rest_i8[dst], l.wq[src]) << o << " " << j << " " << e;
          else
            ASSERT_EQ(rest_f32[dst], l.w[src]) << o << " " << j << " " << e;
        }
  }
}

TEST(BufferTest, GrowsAndPads) {
  Buffer<float> b;
  EXPECT_EQ(b.data(), nullptr);
  float* p = b.Reserve(10);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  EXPECT_EQ(b.Reserve(5), p);  // no shrink, no move
  float* q = b.Reserve(1000);
  EXPECT_GE(b.capacity(), 1000u);
  // XNN_EXTRA_BYTES past the end are readable and zero.
  const unsigned char* pad = reinterpret_cast<const unsigned char*>(q + 1000);
  for (int i = 0; i < XNN_EXTRA_BYTES; ++i) EXPECT_EQ(pad[i], 0);
}

}  // namespace
}  // namespace dtrn
