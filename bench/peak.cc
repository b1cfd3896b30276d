#include "peak.h"

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#if defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
#endif

namespace dtrn::bench {
namespace {

constexpr int kChains = 16;  // > latency x ports of FMA / VPDPBUSD on current cores
constexpr int kSteps = 1024;
volatile int g_seed = 1;  // read at run time: nothing folds at compile time
volatile int64_t g_sink = 0;

double CpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// Best rate over several timed rounds of `body` (each call does macs_per_call MACs).
template <class F>
double Rate(double macs_per_call, F body) {
  body();  // warm up (and on x86, raise the vector unit's clock state)
  double best = 0;
  for (int round = 0; round < 5; ++round) {
    int calls = 0;
    const double t0 = CpuSeconds();
    double t1 = t0;
    do {
      g_sink = g_sink + body();
      ++calls;
      t1 = CpuSeconds();
    } while (t1 - t0 < 0.012);
    best = std::max(best, macs_per_call * calls / (t1 - t0) * 1e-9);
  }
  return best;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f,avx512vnni"))) int64_t Vnni512() {
  __m512i acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_epi32(g_seed + c);
  const __m512i a = _mm512_set1_epi8(static_cast<char>(g_seed + 2)), b = _mm512_set1_epi8(static_cast<char>(-g_seed));
  for (int s = 0; s < kSteps; ++s)
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
  __m512i sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_epi32(sum, acc[c]);
  alignas(64) int32_t out[16];
  _mm512_store_si512(out, sum);
  return out[0] + out[15];
}
__attribute__((target("avx2"))) int64_t Avx2Madd() {
  __m256i acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_epi32(g_seed + c);
  const __m256i a = _mm256_set1_epi16(static_cast<short>(g_seed + 2)),
                b = _mm256_set1_epi16(static_cast<short>(-g_seed));
  for (int s = 0; s < kSteps; ++s)
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(a, b));
  __m256i sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm256_add_epi32(sum, acc[c]);
  alignas(32) int32_t out[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), sum);
  return out[0] + out[7];
}
__attribute__((target("avx512f"))) int64_t F32Avx512() {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(g_seed * c));
  const __m512 a = _mm512_set1_ps(0.999f * g_seed), b = _mm512_set1_ps(1e-3f * g_seed);
  for (int s = 0; s < kSteps; ++s)
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  __m512 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  alignas(64) float out[16];
  _mm512_store_ps(out, sum);
  return static_cast<int64_t>(out[0] + out[15]);
}
__attribute__((target("avx2,fma"))) int64_t F32Avx2() {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(static_cast<float>(g_seed * c));
  const __m256 a = _mm256_set1_ps(0.999f * g_seed), b = _mm256_set1_ps(1e-3f * g_seed);
  for (int s = 0; s < kSteps; ++s)
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  __m256 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  alignas(32) float out[8];
  _mm256_store_ps(out, sum);
  return static_cast<int64_t>(out[0] + out[7]);
}
#define Has(feature) (__builtin_cpu_init(), __builtin_cpu_supports(feature))
#endif

#if defined(__aarch64__)
bool HasDot() {
#if defined(__linux__) && defined(HWCAP_ASIMDDP)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
  return false;
#endif
}
__attribute__((target("arch=armv8.2-a+dotprod"))) int64_t NeonDot() {
  int32x4_t acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = vdupq_n_s32(g_seed + c);
  const int8x16_t a = vdupq_n_s8(static_cast<int8_t>(g_seed + 2)), b = vdupq_n_s8(static_cast<int8_t>(-g_seed));
  for (int s = 0; s < kSteps; ++s)
    for (int c = 0; c < kChains; ++c) acc[c] = vdotq_s32(acc[c], a, b);
  int32x4_t sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = vaddq_s32(sum, acc[c]);
  return vgetq_lane_s32(sum, 0);
}
int64_t NeonFma() {
  float32x4_t acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = vdupq_n_f32(static_cast<float>(g_seed * c));
  const float32x4_t a = vdupq_n_f32(0.999f * g_seed), b = vdupq_n_f32(1e-3f * g_seed);
  for (int s = 0; s < kSteps; ++s)
    for (int c = 0; c < kChains; ++c) acc[c] = vfmaq_f32(b, acc[c], a);
  float32x4_t sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = vaddq_f32(sum, acc[c]);
  return static_cast<int64_t>(vgetq_lane_f32(sum, 0));
}
#endif

constexpr double kCall = static_cast<double>(kChains) * kSteps;

}  // namespace

#if defined(__x86_64__) && defined(__GNUC__)
double PeakInt8Vnni512() { return Has("avx512vnni") ? Rate(64 * kCall, Vnni512) : 0; }
double PeakInt8Avx2Madd() { return Has("avx2") ? Rate(16 * kCall, Avx2Madd) : 0; }
double PeakF32Avx512() { return Has("avx512f") ? Rate(16 * kCall, F32Avx512) : 0; }
double PeakF32Avx2() { return Has("avx2") && Has("fma") ? Rate(8 * kCall, F32Avx2) : 0; }
#else
double PeakInt8Vnni512() { return 0; }
double PeakInt8Avx2Madd() { return 0; }
double PeakF32Avx512() { return 0; }
double PeakF32Avx2() { return 0; }
#endif
#if defined(__aarch64__)
double PeakInt8NeonDot() { return HasDot() ? Rate(16 * kCall, NeonDot) : 0; }
double PeakF32Neon() { return Rate(4 * kCall, NeonFma); }
#else
double PeakInt8NeonDot() { return 0; }
double PeakF32Neon() { return 0; }
#endif

Peak MeasurePeak(const std::string& int8_isa) {
  Peak p;
  auto add = [](std::vector<PeakRate>* v, const char* name, double r) {
    if (r > 0) v->push_back({name, r});
  };
  const double vnni = PeakInt8Vnni512(), madd = PeakInt8Avx2Madd(), sdot = PeakInt8NeonDot();
  add(&p.int8, "int8 avx512-vnni (vpdpbusd zmm)", vnni);
  add(&p.int8, "int8 avx2 (vpmaddwd ymm)", madd);
  add(&p.int8, "int8 neon-dotprod (sdot)", sdot);
  add(&p.f32, "f32 avx512 fma (zmm)", PeakF32Avx512());
  add(&p.f32, "f32 avx2 fma (ymm)", PeakF32Avx2());
  add(&p.f32, "f32 neon fma", PeakF32Neon());
  for (const PeakRate& r : p.f32)
    if (r.gmacs > p.f32_gmacs) p.f32_gmacs = r.gmacs, p.f32_name = r.name;
  // The int8 peak that bounds the kernel in use; the portable kernel is measured against
  // the best the CPU has (what it could reach).
  const std::string want = int8_isa == "avx512-vnni"    ? "int8 avx512"
                           : int8_isa == "avx2"         ? "int8 avx2"
                           : int8_isa == "neon-dotprod" ? "int8 neon"
                                                        : "";
  for (const PeakRate& r : p.int8)
    if ((!want.empty() && r.name.rfind(want, 0) == 0) || (want.empty() && r.gmacs > p.int8_gmacs))
      p.int8_gmacs = r.gmacs, p.int8_name = r.name;
  return p;
}

double MeasureReadBandwidth() {
  // A 64 MiB buffer (larger than the caches) summed a few times; the loads vectorise.
  const size_t n = (64u << 20) / sizeof(uint64_t);
  std::vector<uint64_t> buf(n, 1);
  double best = 0;
  for (int round = 0; round < 3; ++round) {
    const double t0 = CpuSeconds();
    uint64_t s = 0;
    for (size_t i = 0; i < n; ++i) s += buf[i];
    const double t = CpuSeconds() - t0;
    g_sink = g_sink + static_cast<int64_t>(s);
    if (t > 0) best = std::max(best, n * sizeof(uint64_t) / t * 1e-9);
  }
  return best;
}

}  // namespace dtrn::bench
