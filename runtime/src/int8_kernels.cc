// The portable reference of int8_kernels.h, packing, quantization and dispatch. The ISA
// kernels live in int8_kernels_{avx512,avx2,neon}.cc.
#include "int8_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace dtrn::int8 {

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kPortable: return "portable";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512Vnni: return "avx512-vnni";
    case Isa::kNeonDot: return "neon-dotprod";
  }
  return "?";
}

bool IsaAvailable(Isa isa) {
  switch (isa) {
    case Isa::kPortable: return true;
    case Isa::kAvx2: return detail::Avx2Compiled();
    case Isa::kAvx512Vnni: return detail::Avx512VnniCompiled();
    case Isa::kNeonDot: return detail::NeonDotCompiled();
  }
  return false;
}

Isa BestIsa() {
  static const Isa best = [] {
    for (Isa i : {Isa::kAvx512Vnni, Isa::kNeonDot, Isa::kAvx2})
      if (IsaAvailable(i)) return i;
    return Isa::kPortable;
  }();
  return best;
}

namespace {

size_t RoundUp(size_t x, size_t m) { return (x + m - 1) / m * m; }

template <class T>
T* AlignedZeros(size_t count) {
  const size_t bytes = RoundUp(std::max<size_t>(count * sizeof(T), 64), 64);
  void* p = std::aligned_alloc(64, bytes);
  if (p) std::memset(p, 0, bytes);
  return static_cast<T*>(p);
}

}  // namespace

PackedWeights::~PackedWeights() {
  std::free(w);
  std::free(wsum);
  std::free(scale);
  std::free(bias);
}

Result<std::shared_ptr<const PackedWeights>> PackedWeights::Pack(const std::string& name, const int8_t* wt,
                                                                 const float* sc, const float* bi, int out, int in,
                                                                 Isa isa) {
  if (!IsaAvailable(isa)) return Unimplemented("layer '" + name + "': int8 kernel " + IsaName(isa) + " unavailable");
  if (out < 1 || in < 1) return Internal("layer '" + name + "': empty int8 layer");
  std::shared_ptr<PackedWeights> p(new PackedWeights());
  p->name_ = name;
  p->isa_ = isa;
  p->in_ = in;
  p->out_ = out;
  const bool avx2 = isa == Isa::kAvx2;
  p->lanes = avx2 ? 8 : 16;
  const size_t step = avx2 ? 2 : 4;
  const size_t kpad = RoundUp(in, 4);
  p->k_steps = kpad / step;
  p->blocks = RoundUp(out, p->lanes) / p->lanes;
  const size_t chans = p->blocks * p->lanes;
  p->wsum = AlignedZeros<int32_t>(chans);
  p->scale = AlignedZeros<float>(chans);
  p->bias = AlignedZeros<float>(chans);
  if (avx2) {
    p->w = AlignedZeros<int16_t>(chans * kpad);
  } else {
    p->w = AlignedZeros<int8_t>(chans * kpad);
  }
  if (!p->w || !p->wsum || !p->scale || !p->bias)
    return Internal("out of memory (layer '" + name + "' packed weights)");
  for (int o = 0; o < out; ++o) {
    const size_t blk = o / p->lanes, lane = o % p->lanes;
    int32_t sum = 0;
    for (int i = 0; i < in; ++i) {
      const int8_t v = wt[static_cast<size_t>(o) * in + i];
      sum += v;
      const size_t k = i / step, t = i % step;
      const size_t at = ((blk * p->k_steps + k) * p->lanes + lane) * step + t;
      if (avx2)
        static_cast<int16_t*>(p->w)[at] = v;
      else
        static_cast<int8_t*>(p->w)[at] = v;
    }
    p->wsum[o] = sum;
    p->scale[o] = sc[o];
    p->bias[o] = bi ? bi[o] : 0.f;
  }
  return std::shared_ptr<const PackedWeights>(std::move(p));
}

size_t QuantizedStride(const PackedWeights& w) { return RoundUp(w.in(), 4); }

void QuantizeRows(size_t rows, size_t n, const float* x, size_t ldx, uint8_t* q, size_t ldq, float* scale,
                  int32_t* zp) {
  if (detail::Avx512VnniCompiled())
    detail::QuantizeRowsAvx512(rows, n, x, ldx, q, ldq, scale, zp);
  else if (detail::Avx2Compiled())
    detail::QuantizeRowsAvx2(rows, n, x, ldx, q, ldq, scale, zp);
  else
    detail::QuantizeRowsPortable(rows, n, x, ldx, q, ldq, scale, zp);
}

namespace detail {

void QuantizeRowsPortable(size_t rows, size_t n, const float* x, size_t ldx, uint8_t* q, size_t ldq, float* scale,
                          int32_t* zp) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    uint8_t* qr = q + r * ldq;
    float lo = 0.f, hi = 0.f;
    for (size_t j = 0; j < n; ++j) {
      lo = std::min(lo, xr[j]);
      hi = std::max(hi, xr[j]);
    }
    float inv;
    if (!RowParams(lo, hi, &scale[r], &zp[r], &inv)) {
      std::memset(qr, 0, ldq);
      continue;
    }
    const int32_t z = zp[r];
    for (size_t j = 0; j < n; ++j) {
      // A NaN element (min/max may skip it, leaving the range finite) maps to 0: a cast of
      // NaN to int would be undefined. Its byte is unspecified across ISAs (only an overflow
      // in earlier layers makes one; requests with NaN are refused).
      const float t = std::nearbyint(xr[j] * inv);
      qr[j] = t != t ? 0 : static_cast<uint8_t>(std::clamp(static_cast<int32_t>(t) + z, 0, 255));
    }
    if (ldq > n) std::memset(qr + n, 0, ldq - n);
  }
}

float Finish(const GemmArgs& a, size_t r, size_t o, int32_t acc) {
  const PackedWeights& w = *a.w;
  const Epilogue& e = *a.e;
  float y = std::fma(static_cast<float>(acc - a.zp[r] * w.wsum[o]), a.scale[r] * w.scale[o], w.bias[o]);
  for (size_t u = 0; u < e.add_n; ++u) y = std::fma(e.add_a[r * e.lda + u], e.add_p[u * e.ldp + o], y);
  for (size_t i = 0; i < e.radd_n; ++i)
    y = std::fma(e.radd_a[r * e.ldra + i], e.radd_p[i * e.ldrp_f + r * e.ldrp_r + o], y);
  if (e.relu) y = y > 0.f ? y : 0.f;
  if (e.mix) y = std::fma(e.mix[r * e.ldmix], y, a.out[r * a.ldo + o]);
  return y;
}

void GemmPortable(const GemmArgs& a, size_t b0, size_t b1) {
  const PackedWeights& w = *a.w;
  const size_t L = w.lanes, out = static_cast<size_t>(w.out());
  const int8_t* pw = static_cast<const int8_t*>(w.w);
  for (size_t r = 0; r < a.rows; ++r) {
    const uint8_t* q = a.q + r * a.ldq;
    for (size_t b = b0; b < b1; ++b) {
      int32_t acc[16] = {0};
      const int8_t* wb = pw + b * w.k_steps * L * 4;
      for (size_t k = 0; k < w.k_steps; ++k)
        for (size_t l = 0; l < L; ++l)
          for (size_t t = 0; t < 4; ++t) acc[l] += int32_t{q[4 * k + t]} * wb[(k * L + l) * 4 + t];
      for (size_t l = 0; l < L && b * L + l < out; ++l) {
        const size_t o = b * L + l;
        a.out[r * a.ldo + o] = Finish(a, r, o, acc[l]);
      }
    }
  }
}

}  // namespace detail

namespace {

struct Job {
  const detail::GemmArgs* args;
  size_t group;  // blocks per task
  void (*fn)(const detail::GemmArgs&, size_t, size_t);
};

void RunGroup(void* ctx, size_t g) {
  const Job& j = *static_cast<const Job*>(ctx);
  const size_t b0 = g * j.group, b1 = std::min(j.args->w->blocks, b0 + j.group);
  j.fn(*j.args, b0, b1);
}

}  // namespace

void Gemm(const PackedWeights& w, size_t rows, const uint8_t* q, size_t ldq, const float* scale, const int32_t* zp,
          const Epilogue& e, float* out, size_t ldo, pthreadpool_t pool) {
  if (rows == 0) return;
  const detail::GemmArgs a{&w, rows, q, ldq, scale, zp, &e, out, ldo};
  void (*fn)(const detail::GemmArgs&, size_t, size_t) = detail::GemmPortable;
  switch (w.isa()) {
    case Isa::kAvx2: fn = detail::GemmAvx2; break;
    case Isa::kAvx512Vnni: fn = detail::GemmAvx512Vnni; break;
    case Isa::kNeonDot: fn = detail::GemmNeonDot; break;
    case Isa::kPortable: break;
  }
  const size_t group = 4;  // blocks per parallel task: that many channels of packed weights stay in L1
  const size_t groups = (w.blocks + group - 1) / group;
  if (pool != nullptr && groups > 1 && pthreadpool_get_threads_count(pool) > 1) {
    Job job{&a, group, fn};
    pthreadpool_parallelize_1d(pool, RunGroup, &job, groups, 0);
  } else {
    fn(a, 0, w.blocks);
  }
}

}  // namespace dtrn::int8
