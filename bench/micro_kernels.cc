// Google Benchmark rows for the runtime's own kernels and for whole stages, with MAC and
// byte counters: the int8 GEMM on every ISA this CPU runs (standard's expert and item
// shapes), row quantization, target attention, LayerNorm, self-attention (the transformer
// block's core), embedding gathers per storage type, and a request's two stages on the
// spec workloads built in memory (bench/dtrn_bench's model, no files).
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <random>
#include <sstream>
#include <vector>

#include "convert.h"
#include "dtrn/runtime.h"
#include "int8_kernels.h"
#include "kernels.h"
#include "synthetic.h"

namespace {

using dtrn::int8::Isa;

std::vector<float> Normal(size_t n, float sd, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// rows x (in -> out) on one ISA: quantized inputs prepared once, the GEMM + epilogue timed.
void BM_Int8Gemm(benchmark::State& state, Isa isa) {
  if (!dtrn::int8::IsaAvailable(isa)) {
    state.SkipWithError("ISA not available on this CPU");
    return;
  }
  const size_t rows = state.range(0), in = state.range(1), out = state.range(2);
  std::mt19937 rng(1);
  std::vector<int8_t> w(in * out);
  for (int8_t& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  std::vector<float> scale(out, 0.01f), bias = Normal(out, 0.1f, 2), x = Normal(rows * in, 1.f, 3);
  auto packed = dtrn::int8::PackedWeights::Pack("bench", w.data(), scale.data(), bias.data(), out, in, isa);
  const size_t ldq = dtrn::int8::QuantizedStride(*packed.value());
  std::vector<uint8_t> q(rows * ldq);
  std::vector<float> s(rows), y(rows * out);
  std::vector<int32_t> zp(rows);
  dtrn::int8::QuantizeRows(rows, in, x.data(), in, q.data(), ldq, s.data(), zp.data());
  dtrn::int8::Epilogue e;
  e.relu = true;
  for (auto _ : state) {
    dtrn::int8::Gemm(*packed.value(), rows, q.data(), ldq, s.data(), zp.data(), e, y.data(), out, nullptr);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GMAC/s"] = benchmark::Counter(1e-9 * rows * in * out, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bytes"] = static_cast<double>(in * out + rows * (ldq + 4 * out));
}

// rows: K·T; in, out: the standard expert layers (interest columns 96, hidden 256 -> 128), an
// item slot's product (32 -> 256), `large`'s expert layer 2.
#define DTRN_GEMM_SHAPES ->Args({96, 96, 256})->Args({96, 256, 128})->Args({32, 32, 256})->Args({128, 512, 256})
BENCHMARK_CAPTURE(BM_Int8Gemm, portable, Isa::kPortable) DTRN_GEMM_SHAPES;
BENCHMARK_CAPTURE(BM_Int8Gemm, avx2, Isa::kAvx2) DTRN_GEMM_SHAPES;
BENCHMARK_CAPTURE(BM_Int8Gemm, avx512_vnni, Isa::kAvx512Vnni) DTRN_GEMM_SHAPES;
BENCHMARK_CAPTURE(BM_Int8Gemm, neon_dotprod, Isa::kNeonDot) DTRN_GEMM_SHAPES;

void BM_QuantizeRows(benchmark::State& state) {
  const size_t rows = state.range(0), n = state.range(1), ldq = (n + 3) / 4 * 4;
  std::vector<float> x = Normal(rows * n, 1.f, 4);
  std::vector<uint8_t> q(rows * ldq);
  std::vector<float> s(rows);
  std::vector<int32_t> zp(rows);
  for (auto _ : state) {
    dtrn::int8::QuantizeRows(rows, n, x.data(), n, q.data(), ldq, s.data(), zp.data());
    benchmark::DoNotOptimize(q.data());
  }
  state.SetBytesProcessed(state.iterations() * rows * n * 5);
}
BENCHMARK(BM_QuantizeRows)->Args({96, 256})->Args({96, 96})->Args({128, 32});

// T candidates against one behaviour sequence of l positions, width d.
void BM_TargetAttention(benchmark::State& state) {
  const size_t T = state.range(0), l = state.range(1), d = state.range(2);
  std::vector<float> q = Normal(T * d, 1.f, 5), h = Normal(l * d, 1.f, 6), ht(d * l), u(T * d), sc(T * l);
  dtrn::kernels::Transpose(l, d, h.data(), d, ht.data(), l);
  for (auto _ : state) {
    dtrn::kernels::TargetAttention(T, q.data(), d, 1.f / std::sqrt(float(d)), ht.data(), h.data(), l, d, u.data(), d,
                                   sc.data());
    benchmark::DoNotOptimize(u.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(1e-9 * 2.0 * T * l * d, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_TargetAttention)->Args({32, 50, 32})->Args({32, 100, 64})->Args({32, 20, 16});

void BM_AddLayerNorm(benchmark::State& state) {
  const size_t rows = state.range(0), d = state.range(1);
  std::vector<float> x = Normal(rows * d, 1.f, 7), y = Normal(rows * d, 1.f, 8), g = Normal(d, 1.f, 9),
                     b = Normal(d, 1.f, 10), out(rows * d);
  for (auto _ : state) {
    dtrn::kernels::AddLayerNorm(x.data(), y.data(), rows, d, g.data(), b.data(), out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * rows * d * 12);
}
BENCHMARK(BM_AddLayerNorm)->Args({150, 32})->Args({400, 64});

// One sequence's multi-head self-attention (the block's core; its projections are dense layers).
void BM_SelfAttention(benchmark::State& state) {
  const size_t l = state.range(0), d = state.range(1), heads = state.range(2);
  std::vector<float> qkv = Normal(l * 3 * d, 1.f, 11), out(l * d),
                     scratch(dtrn::kernels::AttentionScratch(l, d, heads));
  for (auto _ : state) {
    dtrn::kernels::SelfAttention(qkv.data(), 3 * d, l, d, heads, out.data(), d, scratch.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(1e-9 * 2.0 * l * l * d, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_SelfAttention)->Args({50, 32, 2})->Args({100, 64, 4});

// Random rows of a vocab x d table: F32, F16, INT8 with a scale per row.
void BM_Gather(benchmark::State& state) {
  const size_t vocab = state.range(0), d = state.range(1), type = state.range(2), rows = 512;
  std::mt19937_64 rng(12);
  std::vector<int64_t> ids(rows);
  for (int64_t& i : ids) i = static_cast<int64_t>(rng() % vocab);
  std::vector<float> f32(type == 0 ? vocab * d : 0), scales(vocab, 0.01f), out(d);
  std::vector<uint16_t> f16(type == 1 ? vocab * d : 0, 0x3c00);
  std::vector<int8_t> i8(type == 2 ? vocab * d : 0, 3);
  for (auto _ : state) {
    for (int64_t id : ids) {
      if (type == 0) dtrn::kernels::RowF32(f32.data(), id, d, out.data());
      if (type == 1) dtrn::kernels::RowF16(f16.data(), id, d, out.data());
      if (type == 2) dtrn::kernels::RowInt8(i8.data(), scales.data(), id, d, out.data());
      benchmark::DoNotOptimize(out.data());
    }
  }
  state.SetBytesProcessed(state.iterations() * rows * d * (type == 0 ? 4 : type == 1 ? 2 : 1));
  state.SetLabel(type == 0 ? "f32" : type == 1 ? "f16" : "int8");
}
BENCHMARK(BM_Gather)->Args({100000, 32, 0})->Args({100000, 32, 1})->Args({100000, 32, 2})->Args({1000000, 64, 2});

// A request's stages on a spec workload (int8), built once per process.
struct Workload {
  std::shared_ptr<const dtrn::Model> model;
  std::vector<dtrn::Request> requests;
  std::unique_ptr<dtrn::Session> session;
};

Workload* Build(const char* name, size_t n) {
  auto* w = new Workload();
  auto config = dtrn::convert::WorkloadConfig(name);
  auto ck = dtrn::convert::SyntheticCheckpoint(config.value(), 1);
  dtrn::convert::ConvertOptions o;
  o.verbose = false;
  o.int8 = true;
  o.policy = dtrn::convert::Int8Policy::kAll;
  std::ostringstream log;
  auto c = dtrn::convert::ConvertBytes(
      std::move(ck).value(), o,
      [](const dtrn::Model& m) {
        return dtrn::Result<std::vector<dtrn::Request>>(dtrn::convert::SyntheticRequests(m, 16, 20, 2));
      },
      nullptr, log);
  if (!c.ok()) return nullptr;
  w->model = dtrn::Model::FromBuffer(c.value().model.data(), c.value().model.size()).value();
  w->requests = dtrn::convert::SyntheticRequests(*w->model, 16, n, 3);
  w->session = std::move(dtrn::Session::Create(w->model).value());
  return w;
}

void BM_Stage(benchmark::State& state, const char* workload, bool candidates) {
  static Workload* small = Build("small", 50);
  static Workload* standard = Build("standard", 100);
  Workload* w = std::string(workload) == "small" ? small : standard;
  if (w == nullptr) {
    state.SkipWithError("workload build failed");
    return;
  }
  dtrn::Scores s;
  size_t i = 0;
  for (auto _ : state) {
    const dtrn::Request& r = w->requests[i++ % w->requests.size()];
    if (candidates) {
      state.PauseTiming();
      (void)w->session->Prepare(r);
      state.ResumeTiming();
      (void)w->session->ScoreCandidates(r, &s);
    } else {
      (void)w->session->Prepare(r);
    }
    benchmark::DoNotOptimize(s.probabilities.data());
  }
}
BENCHMARK_CAPTURE(BM_Stage, small_prepare, "small", false);
BENCHMARK_CAPTURE(BM_Stage, small_candidates, "small", true);
BENCHMARK_CAPTURE(BM_Stage, standard_prepare, "standard", false);
BENCHMARK_CAPTURE(BM_Stage, standard_candidates, "standard", true);

}  // namespace
