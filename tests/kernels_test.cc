// Our kernels and the dense-layer dispatch vs straightforward loops in double.
#include <gtest/gtest.h>
#include <xnnpack.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "dense.h"
#include "dense_vnni.h"
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

LinearData Int8Linear(const std::string& name, int in, int out, bool relu, QuantParams ip, QuantParams op,
                      std::mt19937_64& rng) {
  LinearData l;
  l.wq.resize(size_t(in) * out);
  for (auto& v : l.wq) v = static_cast<int8_t>(int(rng() % 255) - 127);
  l.ws = Rand(out, rng, 0.01f);
  for (auto& s : l.ws) s = std::fabs(s) + 0.001f;
  l.bq.resize(out);
  for (auto& v : l.bq) v = static_cast<int32_t>(rng() % 2001) - 1000;
  l.spec.name = name;
  l.spec.in = in, l.spec.out = out, l.spec.relu = relu;
  l.spec.precision = Precision::INT8;
  l.spec.weight_i8 = l.wq.data();
  l.spec.bias_i32 = l.bq.data();
  l.spec.weight_scale = l.ws.data();
  l.spec.input_scale = ip.scale, l.spec.input_zero_point = ip.zero_point;
  l.spec.output_scale = op.scale, l.spec.output_zero_point = op.zero_point;
  return l;
}

int8_t QuantizeRef(double x, QuantParams p) {
  double q = std::nearbyint(x / p.scale) + p.zero_point;
  return static_cast<int8_t>(std::min(127.0, std::max(-128.0, q)));
}

// qc8 semantics: int32 accumulation, fp32 requantization per channel, clamp (relu at the zero point).
std::vector<int8_t> Int8Ref(const LinearData& l, const std::vector<int8_t>& x, size_t rows) {
  const LinearSpec& s = l.spec;
  std::vector<int8_t> y(rows * s.out);
  for (size_t r = 0; r < rows; ++r)
    for (int o = 0; o < s.out; ++o) {
      int64_t acc = s.bias_i32[o];
      for (int i = 0; i < s.in; ++i) acc += int64_t(x[r * s.in + i] - s.input_zero_point) * s.weight_i8[o * s.in + i];
      double v = std::nearbyint(double(acc) * (double(s.input_scale) * s.weight_scale[o] / s.output_scale)) +
                 s.output_zero_point;
      double lo = s.relu ? s.output_zero_point : -128;
      y[r * s.out + o] = static_cast<int8_t>(std::min(127.0, std::max(lo, v)));
    }
  return y;
}

TEST_F(Dense, F32ChainMatchesLoops) {
  std::mt19937_64 rng(6);
  LinearData l1 = F32Linear("a", 13, 21, true, rng), l2 = F32Linear("b", 21, 5, false, rng);
  auto chain = DenseChain::Create({&l1.spec, &l2.spec}, DenseKernels::kAuto);
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

// Two INT8 layers whose params match stay int8 in between; a third with other input
// params goes through f32. Result = the integer reference (XNNPACK may round a tie
// differently: allow one step of the output grid).
TEST_F(Dense, Int8ChainMatchesIntegerReference) {
  std::mt19937_64 rng(7);
  const QuantParams p_in{0.05f, 3}, p_h{0.04f, -128}, p_o{0.06f, 10}, p_in3{0.07f, -5}, p_o3{0.1f, 2};
  LinearData l1 = Int8Linear("l1", 24, 40, true, p_in, p_h, rng);
  LinearData l2 = Int8Linear("l2", 40, 17, false, p_h, p_o, rng);    // chained: input params = l1's output
  LinearData l3 = Int8Linear("l3", 17, 9, false, p_in3, p_o3, rng);  // mismatch: dequantize + quantize
  auto chain = DenseChain::Create({&l1.spec, &l2.spec, &l3.spec}, DenseKernels::kAuto);
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  ChainScratch cs;
  for (size_t rows : {1, 5, 33}) {
    auto xv = Rand(rows * 24, rng, 6.f);
    Buffer<float> in;
    std::memcpy(in.Reserve(xv.size()), xv.data(), xv.size() * 4);
    std::vector<float> y(rows * 9);
    ASSERT_TRUE(chain.value()->Run(rows, in.data(), y.data(), Exec{nullptr, nullptr, &cs}).ok());
    std::vector<int8_t> q(xv.size());
    for (size_t i = 0; i < xv.size(); ++i) q[i] = QuantizeRef(xv[i], p_in);
    auto h1 = Int8Ref(l1, q, rows);
    auto h2 = Int8Ref(l2, h1, rows);
    std::vector<int8_t> q3(h2.size());
    for (size_t i = 0; i < h2.size(); ++i) q3[i] = QuantizeRef(p_o.scale * (h2[i] - p_o.zero_point), p_in3);
    auto h3 = Int8Ref(l3, q3, rows);
    int exact = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      double ref = p_o3.scale * (h3[i] - p_o3.zero_point);
      EXPECT_NEAR(y[i], ref, p_o3.scale * 1.01) << "rows " << rows << " value " << i;
      exact += y[i] == float(ref);
    }
    EXPECT_GE(exact, int(y.size() * 9 / 10));
  }
}

TEST_F(Dense, Int8LayerWithoutChainNeighbours) {
  std::mt19937_64 rng(8);
  LinearData l = Int8Linear("solo", 16, 8, true, {0.03f, 0}, {0.02f, -128}, rng);
  auto chain = DenseChain::Create({&l.spec}, DenseKernels::kAuto);
  ASSERT_TRUE(chain.ok());
  ChainScratch cs;
  auto xv = Rand(4 * 16, rng, 3.f);
  Buffer<float> in;
  std::memcpy(in.Reserve(xv.size()), xv.data(), xv.size() * 4);
  std::vector<float> y(4 * 8);
  ASSERT_TRUE(chain.value()->Run(4, in.data(), y.data(), Exec{nullptr, nullptr, &cs}).ok());
  std::vector<int8_t> q(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) q[i] = QuantizeRef(xv[i], {0.03f, 0});
  auto h = Int8Ref(l, q, 4);
  for (size_t i = 0; i < y.size(); ++i) {
    EXPECT_GE(y[i], 0.f);  // relu
    EXPECT_NEAR(y[i], 0.02 * (h[i] + 128), 0.0201);
  }
}

// The VNNI kernel must give exactly XNNPACK's qc8 outputs (same requantization), so
// that a model scores the same on every x86 machine.
TEST_F(Dense, VnniMatchesXnnpackBitForBit) {
  if (!VnniAvailable()) GTEST_SKIP() << "CPU without AVX-512 VNNI";
  std::mt19937_64 rng(10);
  struct Shape {
    int in, out;
    bool relu;
    QuantParams ip, op;
  };
  for (const Shape& sh :
       {Shape{13, 7, false, {0.05f, 3}, {0.07f, -4}}, Shape{64, 16, true, {0.02f, -128}, {0.03f, -128}},
        Shape{416, 256, true, {0.031f, 17}, {0.05f, -128}}, Shape{33, 50, false, {0.2f, 0}, {0.9f, 120}},
        Shape{7, 1, false, {0.1f, -7}, {0.04f, 0}}}) {
    LinearData l = Int8Linear("v", sh.in, sh.out, sh.relu, sh.ip, sh.op, rng);
    auto vnni = CreateVnniQc8Layer(l.spec);
    auto xnn = CreateXnnpackDenseLayer(l.spec);
    ASSERT_TRUE(vnni.ok()) << vnni.status().ToString();
    ASSERT_TRUE(xnn.ok()) << xnn.status().ToString();
    for (size_t rows : {1, 3, 4, 5, 37, 100}) {
      Buffer<int8_t> x;
      int8_t* xp = x.Reserve(rows * sh.in);
      for (size_t i = 0; i < rows * sh.in; ++i) xp[i] = static_cast<int8_t>(rng() % 256);
      std::vector<int8_t> a(rows * sh.out + 64, 99), b(rows * sh.out + 64, 99);
      ASSERT_TRUE(vnni.value()->RunQs8(rows, xp, a.data(), nullptr).ok());
      ASSERT_TRUE(xnn.value()->RunQs8(rows, xp, b.data(), nullptr).ok());
      EXPECT_EQ(a, b) << sh.in << "->" << sh.out << " rows " << rows;  // padding after the output untouched too
    }
  }
}

// The f32-output entry (the int8 split of a head's first layer): the int32 accumulator,
// bias included, times s_in·s_w[o], plus the per-row update Σ_u a[r, u]·P[u, o], then
// relu when asked; compared with a plain loop.
TEST_F(Dense, VnniF32OutputMatchesLoop) {
  if (!VnniAvailable()) GTEST_SKIP() << "CPU without AVX-512 VNNI";
  std::mt19937_64 rng(11);
  struct Shape {
    int in, out, n_add;
    bool relu;
    QuantParams ip;
  };
  for (const Shape& sh : {Shape{13, 7, 0, false, {0.05f, 3}}, Shape{224, 256, 6, true, {0.031f, 17}},
                          Shape{64, 33, 2, false, {0.02f, -128}}, Shape{7, 1, 1, true, {0.1f, -7}}}) {
    LinearData l = Int8Linear("f", sh.in, sh.out, /*relu*/ !sh.relu, sh.ip, {0.5f, -128}, rng);  // spec flag ignored
    auto vnni = CreateVnniQc8Layer(l.spec);
    ASSERT_TRUE(vnni.ok()) << vnni.status().ToString();
    ASSERT_TRUE(vnni.value()->supports_f32_output());
    const size_t ldp = sh.out + 3;
    std::vector<float> pm = Rand(sh.n_add * ldp + 1, rng, 2.f);
    for (size_t rows : {1, 3, 4, 5, 37}) {
      Buffer<int8_t> x;
      int8_t* xp = x.Reserve(rows * sh.in);
      for (size_t i = 0; i < rows * sh.in; ++i) xp[i] = static_cast<int8_t>(rng() % 256);
      const size_t lda = sh.n_add + 1;
      std::vector<float> a = Rand(rows * lda + 1, rng, 2.f);
      DenseLayer::RowUpdate add;
      add.a = a.data(), add.lda = lda, add.p = pm.data(), add.ldp = ldp, add.n = sh.n_add;
      std::vector<float> y(rows * sh.out + 16, 99.f);
      ASSERT_TRUE(vnni.value()->RunQs8ToF32(rows, xp, add, sh.relu, y.data(), nullptr).ok());
      int zeros = 0;
      for (size_t r = 0; r < rows; ++r)
        for (int o = 0; o < sh.out; ++o) {
          int32_t acc = l.bq[o];
          for (int i = 0; i < sh.in; ++i) acc += (xp[r * sh.in + i] - sh.ip.zero_point) * l.wq[o * sh.in + i];
          double want = static_cast<float>(acc) * (sh.ip.scale * l.ws[o]);
          for (int u = 0; u < sh.n_add; ++u) want += double(a[r * lda + u]) * pm[u * ldp + o];
          if (sh.relu) want = std::max(0.0, want);
          zeros += want == 0;
          EXPECT_NEAR(y[r * sh.out + o], want, 1e-5 * (1 + std::fabs(want)))
              << sh.in << "->" << sh.out << " row " << r << " out " << o;
        }
      if (sh.relu && rows * sh.out > 100) EXPECT_GT(zeros, 0);                  // relu really clamped something
      for (size_t i = rows * sh.out; i < y.size(); ++i) EXPECT_EQ(y[i], 99.f);  // nothing written past the end
    }
  }
  // XNNPACK layers have no such entry: it says so instead of computing something else.
  LinearData l = Int8Linear("x", 8, 4, false, {0.1f, 0}, {0.1f, 0}, rng);
  auto xnn = CreateXnnpackDenseLayer(l.spec);
  ASSERT_TRUE(xnn.ok());
  EXPECT_FALSE(xnn.value()->supports_f32_output());
  Buffer<int8_t> x;
  std::vector<float> y(4);
  EXPECT_FALSE(xnn.value()->RunQs8ToF32(1, x.Reserve(8), {}, false, y.data(), nullptr).ok());
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
    LinearData l = int8 ? Int8Linear("split", n * d, 6, true, {0.05f, 3}, {0.1f, -128}, rng)
                        : F32Linear("split", n * d, 6, true, rng);
    if (int8 && !SplitDense::Supports(l.spec, DenseKernels::kAuto)) continue;  // no VNNI here
    auto split = SplitDense::Create(l.spec, d, is_uc, uc_slot, DenseKernels::kAuto);
    ASSERT_TRUE(split.ok()) << split.status().ToString();
    const LinearSpec& rest = split.value()->rest_layer().spec();
    ASSERT_EQ(rest.in, 3 * d);
    const int rest_fields[] = {1, 2, 4};
    for (int o = 0; o < 6; ++o)
      for (int j = 0; j < 3; ++j)
        for (int e = 0; e < d; ++e) {
          const size_t src = size_t(o) * n * d + rest_fields[j] * d + e, dst = size_t(o) * 3 * d + j * d + e;
          if (int8)
            ASSERT_EQ(rest.weight_i8[dst], l.wq[src]) << o << " " << j << " " << e;
          else
            ASSERT_EQ(rest.weight_f32[dst], l.w[src]) << o << " " << j << " " << e;
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
