// Debian XNNPACK's f32 fully-connected (what the runtime's F32 layers run on) at the
// `standard` workload's expert shapes: 100 candidate rows x (416 -> 256 -> 128), 416 = n * d
// = 13 fields x 32. Counter GMAC/s = rows * in * out / time, to set against the core's peak
// (micro_peak.cc). The int8 kernels are micro_kernels.cc's.
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

// rows, in, out: the standard expert's two layers, and `large`'s first (n*d = (14 fields + 4 behaviours) x 64).
#define DTRN_DENSE_SHAPES ->Args({100, 416, 256})->Args({100, 256, 128})->Args({500, 1152, 512})

BENCHMARK(BM_XnnF32FullyConnected) DTRN_DENSE_SHAPES;

}  // namespace
