// This core's own peak: independent chains of the multiply-accumulate instructions the
// runtime's kernels use (int8: AVX-512 VNNI vpdpbusd, AVX2 vpmaddwd, NEON sdot; f32: FMA),
// enough of them to hide latency, timed by the thread's CPU time (not inflated when other
// processes share the machine); and the read bandwidth of a buffer far larger than the
// caches. Every fraction-of-peak that dtrn-bench prints divides by these, measured in the
// same process: machines differ (a Zen 4 core runs 512-bit VNNI at half a Zen 5's rate).
#pragma once

#include <string>
#include <vector>

namespace dtrn::bench {

struct PeakRate {
  std::string name;  // "int8 avx512-vnni (vpdpbusd)", ...
  double gmacs = 0;  // 10^9 multiply-accumulates per second, one core
};

struct Peak {
  std::vector<PeakRate> int8, f32;  // every variant this CPU runs
  double int8_gmacs = 0;            // the variant the runtime's int8 kernel uses here
  std::string int8_name;
  double f32_gmacs = 0;  // the best f32 FMA
  std::string f32_name;
  double read_gbs = 0;  // streaming read bandwidth, GB/s
};

// About 0.3 s. int8_isa: int8::IsaName of the kernel in use ("avx512-vnni", "avx2", ...).
// Leaves read_gbs 0: MeasureReadBandwidth touches 64 MiB, so callers that report peak
// memory run it after taking their reading.
Peak MeasurePeak(const std::string& int8_isa);
double MeasureReadBandwidth();

// One variant's rate, for the Google Benchmark microbenchmarks.
double PeakInt8Vnni512();  // 0 if unsupported
double PeakInt8Avx2Madd();
double PeakInt8NeonDot();
double PeakF32Avx512();
double PeakF32Avx2();
double PeakF32Neon();

}  // namespace dtrn::bench
