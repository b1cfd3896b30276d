// The core's own peak (bench/peak.h), as Google Benchmark rows to read micro_dense's
// GMAC/s against. A variant the CPU lacks is skipped, not run.
#include <benchmark/benchmark.h>

#include "peak.h"

namespace {

void Row(benchmark::State& state, double (*probe)(), const char* missing) {
  double gmacs = 0;
  for (auto _ : state) gmacs = probe();
  if (gmacs == 0) {
    state.SkipWithError(missing);
    return;
  }
  state.counters["GMAC/s"] = gmacs;
}

void BM_PeakInt8Avx512Vnni(benchmark::State& s) { Row(s, dtrn::bench::PeakInt8Vnni512, "no AVX-512 VNNI"); }
void BM_PeakInt8Avx2Madd(benchmark::State& s) { Row(s, dtrn::bench::PeakInt8Avx2Madd, "no AVX2"); }
void BM_PeakInt8NeonDot(benchmark::State& s) { Row(s, dtrn::bench::PeakInt8NeonDot, "no ARM dot product"); }
void BM_PeakF32Avx512(benchmark::State& s) { Row(s, dtrn::bench::PeakF32Avx512, "no AVX-512F"); }
void BM_PeakF32Avx2(benchmark::State& s) { Row(s, dtrn::bench::PeakF32Avx2, "no AVX2/FMA"); }
void BM_PeakF32Neon(benchmark::State& s) { Row(s, dtrn::bench::PeakF32Neon, "not aarch64"); }

BENCHMARK(BM_PeakInt8Avx512Vnni)->Iterations(1);
BENCHMARK(BM_PeakInt8Avx2Madd)->Iterations(1);
BENCHMARK(BM_PeakInt8NeonDot)->Iterations(1);
BENCHMARK(BM_PeakF32Avx512)->Iterations(1);
BENCHMARK(BM_PeakF32Avx2)->Iterations(1);
BENCHMARK(BM_PeakF32Neon)->Iterations(1);

}  // namespace
