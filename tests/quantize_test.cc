// Quantization math: rounding, per-channel weight error bounds, int32 bias, f16,
// activation params and calibration methods, the int8 Linear simulation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "activation.h"
#include "half.h"
#include "linear_sim.h"
#include "weights.h"

namespace dtrn::quant {
namespace {

TEST(RoundHalfEven, TiesGoToEven) {
  EXPECT_EQ(RoundHalfEven(0.5), 0.0);
  EXPECT_EQ(RoundHalfEven(1.5), 2.0);
  EXPECT_EQ(RoundHalfEven(2.5), 2.0);
  EXPECT_EQ(RoundHalfEven(-0.5), 0.0);
  EXPECT_EQ(RoundHalfEven(-1.5), -2.0);
  EXPECT_EQ(RoundHalfEven(-2.5), -2.0);
  EXPECT_EQ(RoundHalfEven(2.4999), 2.0);
  EXPECT_EQ(RoundHalfEven(-2.5001), -3.0);
}

TEST(QuantizeRows, PerChannelErrorBound) {
  std::mt19937 rng(7);
  const size_t rows = 37, cols = 53;
  std::vector<float> w(rows * cols);
  for (size_t r = 0; r < rows; ++r) {
    // Rows of very different magnitude: per-channel scales must follow each row.
    std::normal_distribution<float> nd(0.f, std::pow(10.f, static_cast<float>(r % 7) - 3.f));
    for (size_t c = 0; c < cols; ++c) w[r * cols + c] = nd(rng);
  }
  for (size_t c = 0; c < cols; ++c) w[5 * cols + c] = 0.f;  // a zero row
  RowQuantized q = QuantizeRows(w.data(), rows, cols);
  ASSERT_EQ(q.scales.size(), rows);
  ASSERT_EQ(q.q.size(), rows * cols);
  for (size_t r = 0; r < rows; ++r) {
    float max_abs = 0;
    for (size_t c = 0; c < cols; ++c) max_abs = std::max(max_abs, std::fabs(w[r * cols + c]));
    if (max_abs == 0) {
      EXPECT_EQ(q.scales[r], 1.f) << "zero row gets scale 1";
    } else {
      EXPECT_FLOAT_EQ(q.scales[r], max_abs / 127.f) << "row " << r;
    }
    bool hit_127 = max_abs == 0;
    for (size_t c = 0; c < cols; ++c) {
      const int v = q.q[r * cols + c];
      EXPECT_GE(v, -127);
      EXPECT_LE(v, 127);
      hit_127 = hit_127 || std::abs(v) == 127;
      const double err = std::fabs(static_cast<double>(w[r * cols + c]) - v * static_cast<double>(q.scales[r]));
      EXPECT_LE(err, q.scales[r] / 2.0 * (1 + 1e-6)) << "row " << r << " col " << c;
    }
    EXPECT_TRUE(hit_127) << "the largest |w| of row " << r << " maps to +-127";
  }
}

TEST(QuantizeRows, RoundsHalfToEven) {
  // scale = 127/127 = 1: values at exact .5 must round to even.
  std::vector<float> w = {127.f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.49f};
  RowQuantized q = QuantizeRows(w.data(), 1, w.size());
  EXPECT_EQ(q.scales[0], 1.f);
  std::vector<int> expect = {127, 0, 2, 2, 0, -2, -2, 3};
  for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(q.q[i], expect[i]) << "index " << i;
}

TEST(Half, KnownValues) {
  EXPECT_EQ(FloatToHalf(0.f), 0x0000);
  EXPECT_EQ(FloatToHalf(-0.f), 0x8000);
  EXPECT_EQ(FloatToHalf(1.f), 0x3C00);
  EXPECT_EQ(FloatToHalf(-2.f), 0xC000);
  EXPECT_EQ(FloatToHalf(65504.f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(65520.f), 0x7C00);                                         // rounds up to inf
  EXPECT_EQ(FloatToHalf(2049.f), 0x6800);                                          // tie -> even (2048)
  EXPECT_EQ(FloatToHalf(2051.f), 0x6802);                                          // tie -> even (2052)
  EXPECT_EQ(FloatToHalf(std::ldexp(1.f, -24)), 0x0001);                            // smallest subnormal
  EXPECT_EQ(FloatToHalf(std::ldexp(1.f, -25)), 0x0000);                            // tie -> even (0)
  EXPECT_EQ(FloatToHalf(std::ldexp(3.f, -25)), 0x0002);                            // 1.5 ulp -> 2
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.f, -24) + std::ldexp(1.f, -25)), 0x0400);  // carry into normal
  EXPECT_TRUE(FitsHalf(65504.f));
  EXPECT_FALSE(FitsHalf(65520.f));
  EXPECT_FALSE(FitsHalf(-1e6f));
}

TEST(Half, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t hh = static_cast<uint16_t>(h);
    const bool nan = (hh & 0x7C00) == 0x7C00 && (hh & 0x3FF);
    if (nan) {
      EXPECT_TRUE(std::isnan(HalfToFloat(hh)));
      continue;
    }
    ASSERT_EQ(FloatToHalf(HalfToFloat(hh)), hh) << "half 0x" << std::hex << h;
  }
}

TEST(Half, ErrorWithinHalfUlp) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-100.f, 100.f);
  for (int i = 0; i < 100000; ++i) {
    const float f = u(rng);
    const float back = HalfToFloat(FloatToHalf(f));
    const float ulp = std::ldexp(1.f, std::ilogb(std::fabs(f) < 6.1e-5f ? 6.1e-5f : f) - 10);
    ASSERT_LE(std::fabs(back - f), ulp / 2) << f;
  }
}

TEST(Calibration, SkipsNonFinite) {
  std::vector<float> x = {1.f, NAN, -2.f, INFINITY};
  RangeStats r;
  r.Add(x.data(), x.size());
  EXPECT_EQ(r.count, 2u);
  EXPECT_EQ(r.nonfinite, 2u);
  EXPECT_EQ(r.min, -2.0);
  EXPECT_EQ(r.max, 1.0);
}

TEST(LinearSim, CloseToFloatOnRandomLayer) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  const size_t in = 64, out = 32, rows = 200;
  std::vector<float> w(out * in), b(out), x(rows * in), y(rows * out);
  for (float& v : w) v = nd(rng) * 0.2f;
  for (float& v : b) v = nd(rng) * 0.1f;
  for (float& v : x) v = nd(rng);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t o = 0; o < out; ++o) {
      double acc = b[o];
      for (size_t i = 0; i < in; ++i) acc += static_cast<double>(w[o * in + i]) * x[r * in + i];
      y[r * out + o] = static_cast<float>(std::max(acc, 0.0));
    }
  }
  RowQuantized q = QuantizeRows(w.data(), out, in);
  Int8LinearParams p;
  p.in = in;
  p.out = out;
  p.relu = true;
  p.weight = q.q.data();
  p.weight_scales = q.scales.data();
  p.bias = b.data();
  std::vector<float> yq(rows * out);
  SimulateInt8Linear(p, x.data(), rows, yq.data());
  for (float v : yq) EXPECT_GE(v, 0.f) << "relu";
  EXPECT_GT(SqnrDb(y.data(), yq.data(), y.size()), 30.0);
  // Wrong weight scales must show up as a low SQNR: the measurement can fail.
  std::vector<float> wrong(q.scales.size(), 1.f);
  p.weight_scales = wrong.data();
  SimulateInt8Linear(p, x.data(), rows, yq.data());
  EXPECT_LT(SqnrDb(y.data(), yq.data(), y.size()), 5.0);
}

TEST(Sqnr, ExactIsInfinite) {
  std::vector<float> a = {1, 2, 3};
  EXPECT_TRUE(std::isinf(SqnrDb(a.data(), a.data(), 3)));
  std::vector<float> b = {1, 2, 4};
  EXPECT_NEAR(SqnrDb(a.data(), b.data(), 3), 10 * std::log10(14.0), 1e-9);
}

}  // namespace
}  // namespace dtrn::quant
