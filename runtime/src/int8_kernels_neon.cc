// int8_kernels.h on aarch64 with the ARMv8.2 dot product (sdot). sdot multiplies signed
// bytes, so each input byte is flipped to q - 128 and the accumulator starts at
// 128 · wsum[o]: acc = Σ (q - 128) w + 128 Σ w = Σ q w, the same int32 as every other ISA.
// The packed layout is the portable one: [blocks][k4][16 channels][4 inputs].
#include "int8_kernels.h"

#if defined(__aarch64__) && defined(__GNUC__)
#include <arm_neon.h>

#include <cstring>

#if defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#define DTRN_NEON_DOT __attribute__((target("arch=armv8.2-a+dotprod")))

namespace dtrn::int8::detail {

bool NeonDotCompiled() {
#if defined(__linux__) && defined(HWCAP_ASIMDDP)
  static const bool ok = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
  return ok;
#elif defined(__APPLE__)
  // Apple cores before A13 / M1 (iPhone 8 to XS, A11-A12) lack the dot product: ask the
  // kernel (the key exists from iOS 15 / macOS 12; without it, the portable kernel runs).
  static const bool ok = [] {
    int v = 0;
    size_t n = sizeof v;
    return sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &n, nullptr, 0) == 0 && v != 0;
  }();
  return ok;
#else
  return false;
#endif
}

namespace {

template <int MR>
DTRN_NEON_DOT void Tile(const GemmArgs& a, size_t r0, size_t b) {
  const PackedWeights& w = *a.w;
  const Epilogue& e = *a.e;
  const size_t c0 = b * 16;
  int32x4_t acc[MR][4];
  for (int j = 0; j < 4; ++j) {
    const int32x4_t init = vshlq_n_s32(vld1q_s32(w.wsum + c0 + 4 * j), 7);  // 128 · wsum
    for (int r = 0; r < MR; ++r) acc[r][j] = init;
  }
  const int8_t* wp = static_cast<const int8_t*>(w.w) + b * w.k_steps * 64;
  const uint8x16_t flip = vdupq_n_u8(0x80);
  for (size_t k = 0; k < w.k_steps; ++k) {
    const int8x16_t w0 = vld1q_s8(wp + k * 64), w1 = vld1q_s8(wp + k * 64 + 16), w2 = vld1q_s8(wp + k * 64 + 32),
                    w3 = vld1q_s8(wp + k * 64 + 48);
    for (int r = 0; r < MR; ++r) {
      uint32_t xi;
      std::memcpy(&xi, a.q + (r0 + r) * a.ldq + 4 * k, 4);
      const int8x16_t x = vreinterpretq_s8_u8(veorq_u8(vreinterpretq_u8_u32(vdupq_n_u32(xi)), flip));
      acc[r][0] = vdotq_s32(acc[r][0], w0, x);
      acc[r][1] = vdotq_s32(acc[r][1], w1, x);
      acc[r][2] = vdotq_s32(acc[r][2], w2, x);
      acc[r][3] = vdotq_s32(acc[r][3], w3, x);
    }
  }
  const size_t out = static_cast<size_t>(w.out());
  for (int r = 0; r < MR; ++r) {
    const size_t row = r0 + r;
    alignas(16) int32_t lanes[16];
    for (int j = 0; j < 4; ++j) vst1q_s32(lanes + 4 * j, acc[r][j]);
    for (size_t l = 0; l < 16 && c0 + l < out; ++l) a.out[row * a.ldo + c0 + l] = Finish(a, row, c0 + l, lanes[l]);
  }
  (void)e;
}

}  // namespace

DTRN_NEON_DOT void GemmNeonDot(const GemmArgs& a, size_t b0, size_t b1) {
  for (size_t b = b0; b < b1; ++b) {
    size_t r = 0;
    for (; r + 4 <= a.rows; r += 4) Tile<4>(a, r, b);
    for (; r < a.rows; ++r) Tile<1>(a, r, b);
  }
}

}  // namespace dtrn::int8::detail

#else

namespace dtrn::int8::detail {
bool NeonDotCompiled() { return false; }
void GemmNeonDot(const GemmArgs& a, size_t b0, size_t b1) { GemmPortable(a, b0, b1); }
}  // namespace dtrn::int8::detail

#endif
