// The core's own dense peak, to read micro_dense's GMAC/s against: independent chains of
// f32 FMA (AVX-512 and AVX2) and int8 dot products (AVX-512 VNNI vpdpbusd, 64 MACs each),
// enough of them to hide latency. x86-64 only; skipped where the CPU lacks the extension.
#include <benchmark/benchmark.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

namespace {

constexpr int kChains = 16;  // > latency x ports for FMA and VPDPBUSD on current cores
constexpr int kSteps = 256;
volatile float g_seed = 1.0f;  // read at run time: nothing can be folded at compile time

__attribute__((target("avx512f"))) float F32Avx512(float seed) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(seed * c);
  const __m512 a = _mm512_set1_ps(seed * 0.999f), b = _mm512_set1_ps(seed * 1e-3f);
  for (int s = 0; s < kSteps; ++s)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  __m512 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  alignas(64) float out[16];
  _mm512_store_ps(out, sum);
  return out[0] + out[15];
}

__attribute__((target("avx2,fma"))) float F32Avx2(float seed) {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(seed * c);
  const __m256 a = _mm256_set1_ps(seed * 0.999f), b = _mm256_set1_ps(seed * 1e-3f);
  for (int s = 0; s < kSteps; ++s)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  __m256 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  float out[8];
  _mm256_storeu_ps(out, sum);
  return out[0] + out[7];
}

__attribute__((target("avx512f,avx512vnni"))) int Int8Vnni(int seed) {
  __m512i acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_epi32(seed + c);
  const __m512i a = _mm512_set1_epi8(static_cast<char>(seed + 2)), b = _mm512_set1_epi8(static_cast<char>(-seed));
  for (int s = 0; s < kSteps; ++s)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
  __m512i sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_epi32(sum, acc[c]);
  alignas(64) int out[16];  // (not _mm512_reduce_add_epi32: GCC 12 warns inside it)
  _mm512_store_si512(out, sum);
  return out[0] + out[15];
}

template <class F>
void RunPeak(benchmark::State& state, const char* feature_ok, bool supported, double macs_per_call, F body) {
  if (!supported) {
    state.SkipWithError(feature_ok);
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(body());
  state.counters["GMAC/s"] = benchmark::Counter(macs_per_call * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_PeakF32Avx512Fma(benchmark::State& state) {
  RunPeak(state, "no AVX-512F", __builtin_cpu_supports("avx512f"), 16.0 * kChains * kSteps,
          [] { return F32Avx512(g_seed); });
}
void BM_PeakF32Avx2Fma(benchmark::State& state) {
  RunPeak(state, "no AVX2/FMA", __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"), 8.0 * kChains * kSteps,
          [] { return F32Avx2(g_seed); });
}
void BM_PeakInt8Avx512Vnni(benchmark::State& state) {
  RunPeak(state, "no AVX-512 VNNI", __builtin_cpu_supports("avx512vnni"), 64.0 * kChains * kSteps,
          [] { return Int8Vnni(static_cast<int>(g_seed)); });
}

BENCHMARK(BM_PeakF32Avx512Fma);
BENCHMARK(BM_PeakF32Avx2Fma);
BENCHMARK(BM_PeakInt8Avx512Vnni);

}  // namespace
#endif  // __x86_64__
