#include "dense.h"

#include <xnnpack.h>

#include <limits>

namespace dtrn {
namespace {

Status XnnError(const std::string& layer, const char* call, xnn_status st) {
  return Internal("layer '" + layer + "': " + call + " failed (xnn_status " + std::to_string(static_cast<int>(st)) +
                  ")");
}

struct OpDeleter {
  void operator()(xnn_operator_t op) const {
    if (op) xnn_delete_operator(op);
  }
};
using OpPtr = std::unique_ptr<xnn_operator, OpDeleter>;

// XNNPACK f32 fully-connected: y = x·Wᵀ + b, relu as the [0, inf) clamp.
class XnnF32Layer : public DenseLayer {
 public:
  explicit XnnF32Layer(const LinearSpec& spec) : DenseLayer(spec) {}
  Status Init() {
    const float lo = spec_.relu ? 0.f : -std::numeric_limits<float>::infinity();
    const float hi = std::numeric_limits<float>::infinity();
    xnn_operator_t op = nullptr;
    const xnn_status st = xnn_create_fully_connected_nc_f32(spec_.in, spec_.out, spec_.in, spec_.out, spec_.weight_f32,
                                                            spec_.bias_f32, lo, hi, 0, &op);
    if (st != xnn_status_success) return XnnError(spec_.name, "xnn_create_fully_connected_nc_f32", st);
    op_.reset(op);
    return Status::Ok();
  }
  Status Run(size_t rows, const float* in, float* out, pthreadpool_t pool) override {
    if (rows == 0) return Status::Ok();
    xnn_status st = xnn_setup_fully_connected_nc_f32(op_.get(), rows, in, out, pool);
    if (st != xnn_status_success) return XnnError(spec_.name, "xnn_setup_fully_connected_nc_f32", st);
    st = xnn_run_operator(op_.get(), pool);
    if (st != xnn_status_success) return XnnError(spec_.name, "xnn_run_operator", st);
    return Status::Ok();
  }

 private:
  OpPtr op_;
};

class Int8Layer : public DenseLayer {
 public:
  Int8Layer(const LinearSpec& spec, std::unique_ptr<Int8Linear> l) : DenseLayer(spec), l_(std::move(l)) {}
  Status Run(size_t rows, const float* in, float* out, pthreadpool_t pool) override {
    int8::Epilogue e;
    e.relu = spec_.relu;
    return l_->Run(rows, in, spec_.in, out, spec_.out, e, pool);
  }

 private:
  std::unique_ptr<Int8Linear> l_;
};

}  // namespace

Result<int8::Isa> ChooseIsa(DenseKernels kernels) {
  int8::Isa isa = int8::BestIsa();
  switch (kernels) {
    case DenseKernels::kAuto: return isa;
    case DenseKernels::kPortable: isa = int8::Isa::kPortable; break;
    case DenseKernels::kAvx2: isa = int8::Isa::kAvx2; break;
    case DenseKernels::kAvx512Vnni: isa = int8::Isa::kAvx512Vnni; break;
    case DenseKernels::kNeonDot: isa = int8::Isa::kNeonDot; break;
    default:
      return InvalidArgument("SessionOptions.kernels: unknown value " + std::to_string(static_cast<int>(kernels)));
  }
  if (!int8::IsaAvailable(isa))
    return Unimplemented(std::string("SessionOptions.kernels: the ") + int8::IsaName(isa) +
                         " int8 kernel is not available on this CPU or build");
  return isa;
}

Result<std::shared_ptr<const int8::PackedWeights>> WeightCache::Get(const void* key, const std::string& name,
                                                                    const int8_t* w, const float* scale,
                                                                    const float* bias, int out, int in) {
  auto it = packed_.find(key);
  if (it != packed_.end()) return it->second;
  DTRN_ASSIGN_OR_RETURN(auto p, int8::PackedWeights::Pack(name, w, scale, bias, out, in, isa_));
  packed_[key] = p;
  return p;
}

Result<std::unique_ptr<Int8Linear>> Int8Linear::Create(const void* key, const std::string& name, const int8_t* w,
                                                       const float* scale, const float* bias, int out, int in,
                                                       WeightCache* cache) {
  std::unique_ptr<Int8Linear> l(new Int8Linear());
  DTRN_ASSIGN_OR_RETURN(l->w_, cache->Get(key, name, w, scale, bias, out, in));
  return l;
}

Result<std::unique_ptr<Int8Linear>> Int8Linear::Create(const LinearSpec& spec, WeightCache* cache) {
  return Create(&spec, spec.name, spec.weight_i8, spec.weight_scale, spec.bias_f32, spec.out, spec.in, cache);
}

Status QuantizedRows::Quantize(size_t r, size_t width, const float* x, size_t ldx) {
  ldq = (width + 3) / 4 * 4;  // int8::QuantizedStride of any layer with `width` inputs
  n = width;
  rows = r;
  if (!q.Reserve(r * ldq) || !scale.Reserve(r) || !zp.Reserve(r)) return OutOfMemory("quantized activations");
  int8::QuantizeRows(r, width, x, ldx, q.data(), ldq, scale.data(), zp.data());
  return Status::Ok();
}

Status QuantizedRows::Reserve(size_t r, size_t width) {
  ldq = (width + 3) / 4 * 4;
  n = width;
  rows = r;
  if (!q.Reserve(r * ldq) || !scale.Reserve(r) || !zp.Reserve(r)) return OutOfMemory("quantized activations");
  return Status::Ok();
}

void QuantizedRows::QuantizeInto(size_t row0, size_t count, const float* x, size_t ldx) {
  int8::QuantizeRows(count, n, x, ldx, q.data() + row0 * ldq, ldq, scale.data() + row0, zp.data() + row0);
}

Status Int8Linear::Run(size_t rows, const float* in, size_t ldin, float* out, size_t ldo, const int8::Epilogue& e,
                       pthreadpool_t pool) {
  if (rows == 0) return Status::Ok();
  DTRN_RETURN_IF_ERROR(in_.Quantize(rows, w_->in(), in, ldin));
  Run(in_, 0, rows, out, ldo, e, pool);
  return Status::Ok();
}

void Int8Linear::Run(const QuantizedRows& q, size_t row0, size_t rows, float* out, size_t ldo, const int8::Epilogue& e,
                     pthreadpool_t pool) const {
  int8::Gemm(*w_, rows, q.q.data() + row0 * q.ldq, q.ldq, q.scale.data() + row0, q.zp.data() + row0, e, out, ldo, pool);
}

Result<std::unique_ptr<DenseLayer>> CreateDenseLayer(const LinearSpec& spec, WeightCache* cache) {
  if (spec.precision == Precision::INT8) {
    DTRN_ASSIGN_OR_RETURN(auto l, Int8Linear::Create(spec, cache));
    return std::unique_ptr<DenseLayer>(new Int8Layer(spec, std::move(l)));
  }
  auto layer = std::make_unique<XnnF32Layer>(spec);
  DTRN_RETURN_IF_ERROR(layer->Init());
  return std::unique_ptr<DenseLayer>(std::move(layer));
}

Result<std::unique_ptr<DenseChain>> DenseChain::Create(const std::vector<const LinearSpec*>& specs,
                                                       WeightCache* cache) {
  if (specs.empty()) return Internal("empty dense chain");
  std::unique_ptr<DenseChain> chain(new DenseChain());
  for (const LinearSpec* s : specs) {
    DTRN_ASSIGN_OR_RETURN(auto layer, CreateDenseLayer(*s, cache));
    chain->layers_.push_back(std::move(layer));
  }
  return chain;
}

Status DenseChain::Run(size_t rows, const float* in, float* out, const Exec& x) {
  if (rows == 0) return Status::Ok();
  const float* cur = in;
  int slot = -1;  // scratch slot holding the current activation (-1: not in scratch)
  for (size_t j = 0; j < layers_.size(); ++j) {
    DenseLayer& l = *layers_[j];
    const bool last = j + 1 == layers_.size();
    const int next = slot == 0 ? 1 : 0;
    float* dst = last ? out : x.scratch->f32[next].Reserve(rows * l.spec().out);
    if (dst == nullptr) return OutOfMemory(l.spec().name);
    DTRN_RETURN_IF_ERROR(l.Run(rows, cur, dst, x.pool));
    if (x.observer) x.observer->Observe(l.spec().name, cur, rows, l.spec().in, dst, l.spec().out);
    slot = last ? -1 : next;
    cur = dst;
  }
  return Status::Ok();
}

}  // namespace dtrn
