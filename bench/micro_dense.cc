// Debian XNNPACK's dense kernels at the `standard` workload's expert shape: 100 candidate
// rows x (416 -> 256 -> 128), 416 = n * d = 13 fields x 32. f32 fully-connected, qs8
// fully-connected (per-tensor weights) and qc8 1x1 convolution (per-channel weights, what
// int8 layers need). Counter GMAC/s = rows * in * out / time, to set against the core's
// peak (micro_peak.cc measures it).
#include <benchmark/benchmark.h>
#include <xnnpack.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace {

struct Shape {
  size_t rows, in, out;
};

Shape ShapeOf(const benchmark::State& state) {
  return {static_cast<size_t>(state.range(0)), static_cast<size_t>(state.range(1)),
          static_cast<size_t>(state.range(2))};
}

void SetMacs(benchmark::State& state, const Shape& s) {
  const double gmacs = 1e-9 * s.rows * s.in * s.out;
  state.counters["GMAC/s"] = benchmark::Counter(gmacs, benchmark::Counter::kIsIterationInvariantRate);
}

bool InitXnnpack(benchmark::State& state) {
  if (xnn_initialize(nullptr) != xnn_status_success) {
    state.SkipWithError("xnn_initialize failed");
    return false;
  }
  return true;
}

template <class T>
std::vector<T> RandomInts(size_t n, int lo, int hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(d(rng));
  return v;
}

void BM_XnnF32FullyConnected(benchmark::State& state) {
  if (!InitXnnpack(state)) return;
  const Shape s = ShapeOf(state);
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::vector<float> w(s.out * s.in), b(s.out), x(s.rows * s.in), y(s.rows * s.out);
  for (float& v : w) v = d(rng);
  for (float& v : b) v = d(rng);
  for (float& v : x) v = d(rng) * 20;
  xnn_operator_t op = nullptr;
  if (xnn_create_fully_connected_nc_f32(s.in, s.out, s.in, s.out, w.data(), b.data(), 0.0f, INFINITY, 0, &op) !=
          xnn_status_success ||
      xnn_setup_fully_connected_nc_f32(op, s.rows, x.data(), y.data(), nullptr) != xnn_status_success) {
    state.SkipWithError("XNNPACK f32 fully-connected setup failed");
    return;
  }
  for (auto _ : state) {
    xnn_run_operator(op, nullptr);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  SetMacs(state, s);
  xnn_delete_operator(op);
}

void BM_XnnQs8FullyConnected(benchmark::State& state) {
  if (!InitXnnpack(state)) return;
  const Shape s = ShapeOf(state);
  auto w = RandomInts<int8_t>(s.out * s.in, -127, 127, 2);
  auto b = RandomInts<int32_t>(s.out, -1000, 1000, 3);
  auto x = RandomInts<int8_t>(s.rows * s.in, -128, 127, 4);
  std::vector<int8_t> y(s.rows * s.out);
  xnn_operator_t op = nullptr;
  if (xnn_create_fully_connected_nc_qs8(s.in, s.out, s.in, s.out, /*input_zero_point=*/-128, 0.02f,
                                        /*kernel_scale=*/0.004f, w.data(), b.data(), /*output_zero_point=*/-128, 0.5f,
                                        -128, 127, 0, &op) != xnn_status_success ||
      xnn_setup_fully_connected_nc_qs8(op, s.rows, x.data(), y.data(), nullptr) != xnn_status_success) {
    state.SkipWithError("XNNPACK qs8 fully-connected setup failed");
    return;
  }
  for (auto _ : state) {
    xnn_run_operator(op, nullptr);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  SetMacs(state, s);
  xnn_delete_operator(op);
}

// Per-output-channel int8 weights: a 1x1 convolution over `rows` pixels.
void BM_XnnQc8Conv1x1(benchmark::State& state) {
  if (!InitXnnpack(state)) return;
  const Shape s = ShapeOf(state);
  auto w = RandomInts<int8_t>(s.out * s.in, -127, 127, 5);
  auto b = RandomInts<int32_t>(s.out, -1000, 1000, 6);
  auto x = RandomInts<int8_t>(s.rows * s.in, -128, 127, 7);
  std::vector<float> kernel_scale(s.out);
  for (size_t o = 0; o < s.out; ++o) kernel_scale[o] = 0.002f + 0.00001f * o;
  std::vector<int8_t> y(s.rows * s.out);
  xnn_operator_t op = nullptr;
  if (xnn_create_convolution2d_nhwc_qc8(0, 0, 0, 0, 1, 1, 1, 1, 1, 1, /*groups=*/1, s.in, s.out, s.in, s.out,
                                        /*input_zero_point=*/-128, 0.02f, kernel_scale.data(), w.data(), b.data(),
                                        /*output_zero_point=*/-128, 0.5f, -128, 127, 0, &op) != xnn_status_success ||
      xnn_setup_convolution2d_nhwc_qc8(op, /*batch=*/1, /*height=*/1, /*width=*/s.rows, x.data(), y.data(), nullptr) !=
          xnn_status_success) {
    state.SkipWithError("XNNPACK qc8 convolution setup failed");
    return;
  }
  for (auto _ : state) {
    xnn_run_operator(op, nullptr);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  SetMacs(state, s);
  xnn_delete_operator(op);
}

// rows, in, out: the standard expert's two layers, and `large`'s first (n*d = (14 fields + 4 behaviours) x 64).
#define DTRN_DENSE_SHAPES ->Args({100, 416, 256})->Args({100, 256, 128})->Args({500, 1152, 512})

BENCHMARK(BM_XnnF32FullyConnected) DTRN_DENSE_SHAPES;
BENCHMARK(BM_XnnQs8FullyConnected) DTRN_DENSE_SHAPES;
BENCHMARK(BM_XnnQc8Conv1x1) DTRN_DENSE_SHAPES;

}  // namespace
