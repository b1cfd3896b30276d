#include "dense.h"

#include <xnnpack.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "dense_vnni.h"

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
    xnn_status st = xnn_create_fully_connected_nc_f32(spec_.in, spec_.out, spec_.in, spec_.out, spec_.weight_f32,
                                                      spec_.bias_f32, lo, hi, 0, &op);
    if (st != xnn_status_success) return XnnError(spec_.name, "xnn_create_fully_connected_nc_f32", st);
    op_.reset(op);
    return Status::Ok();
  }
  Status RunF32(size_t rows, const float* in, float* out, pthreadpool_t pool) override {
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

// XNNPACK qc8 (per-channel int8 weights) 1x1 convolution with batch = rows: the
// fully-connected layer with per-output-channel scales that this XNNPACK offers.
class XnnQc8Layer : public DenseLayer {
 public:
  explicit XnnQc8Layer(const LinearSpec& spec) : DenseLayer(spec) {}
  Status Init() {
    const int8_t out_min = spec_.relu ? static_cast<int8_t>(spec_.output_zero_point) : int8_t{-128};
    xnn_operator_t op = nullptr;
    xnn_status st = xnn_create_convolution2d_nhwc_qc8(
        0, 0, 0, 0, /*kernel*/ 1, 1, /*subsampling*/ 1, 1, /*dilation*/ 1, 1, /*groups*/ 1, spec_.in, spec_.out,
        spec_.in, spec_.out, static_cast<int8_t>(spec_.input_zero_point), spec_.input_scale, spec_.weight_scale,
        spec_.weight_i8, spec_.bias_i32, static_cast<int8_t>(spec_.output_zero_point), spec_.output_scale, out_min,
        int8_t{127}, 0, &op);
    if (st != xnn_status_success) return XnnError(spec_.name, "xnn_create_convolution2d_nhwc_qc8", st);
    op_.reset(op);
    return Status::Ok();
  }
  Status RunQs8(size_t rows, const int8_t* in, int8_t* out, pthreadpool_t pool) override {
    if (rows == 0) return Status::Ok();
    xnn_status st = xnn_setup_convolution2d_nhwc_qc8(op_.get(), rows, 1, 1, in, out, pool);
    if (st != xnn_status_success) return XnnError(spec_.name, "xnn_setup_convolution2d_nhwc_qc8", st);
    st = xnn_run_operator(op_.get(), pool);
    if (st != xnn_status_success) return XnnError(spec_.name, "xnn_run_operator", st);
    return Status::Ok();
  }

 private:
  OpPtr op_;
};

}  // namespace

Status DenseLayer::RunF32(size_t, const float*, float*, pthreadpool_t) {
  return Internal("layer '" + spec_.name + "' is INT8: no f32 entry point");
}
Status DenseLayer::RunQs8(size_t, const int8_t*, int8_t*, pthreadpool_t) {
  return Internal("layer '" + spec_.name + "' is F32: no int8 entry point");
}

Status DenseLayer::RunQs8ToF32(size_t, const int8_t*, const RowUpdate&, bool, float*, pthreadpool_t) {
  return Internal("layer '" + spec_.name + "': no int8 -> f32 entry point on this kernel");
}

Result<std::unique_ptr<DenseLayer>> CreateDenseLayer(const LinearSpec& spec, DenseKernels kernels) {
  if (spec.precision == Precision::INT8 && kernels == DenseKernels::kAuto && VnniAvailable())
    return CreateVnniQc8Layer(spec);
  return CreateXnnpackDenseLayer(spec);
}

Result<std::unique_ptr<DenseLayer>> CreateXnnpackDenseLayer(const LinearSpec& spec) {
  if (spec.precision == Precision::INT8) {
    auto layer = std::make_unique<XnnQc8Layer>(spec);
    DTRN_RETURN_IF_ERROR(layer->Init());
    return std::unique_ptr<DenseLayer>(std::move(layer));
  }
  auto layer = std::make_unique<XnnF32Layer>(spec);
  DTRN_RETURN_IF_ERROR(layer->Init());
  return std::unique_ptr<DenseLayer>(std::move(layer));
}

Qs8ConvertOp::~Qs8ConvertOp() {
  if (op_) xnn_delete_operator(op_);
}

Result<std::unique_ptr<Qs8ConvertOp>> Qs8ConvertOp::ToQs8(size_t channels, QuantParams p) {
  std::unique_ptr<Qs8ConvertOp> c(new Qs8ConvertOp());
  xnn_status st = xnn_create_convert_nc_f32_qs8(channels, channels, channels, p.scale,
                                                static_cast<int8_t>(p.zero_point), -128, 127, 0, &c->op_);
  if (st != xnn_status_success) return XnnError("f32->qs8", "xnn_create_convert_nc_f32_qs8", st);
  return c;
}

Result<std::unique_ptr<Qs8ConvertOp>> Qs8ConvertOp::ToF32(size_t channels, QuantParams p) {
  std::unique_ptr<Qs8ConvertOp> c(new Qs8ConvertOp());
  xnn_status st = xnn_create_convert_nc_qs8_f32(channels, channels, channels, p.scale,
                                                static_cast<int8_t>(p.zero_point), 0, &c->op_);
  if (st != xnn_status_success) return XnnError("qs8->f32", "xnn_create_convert_nc_qs8_f32", st);
  return c;
}

Status Qs8ConvertOp::Quantize(size_t rows, const float* in, int8_t* out, pthreadpool_t pool) {
  xnn_status st = xnn_setup_convert_nc_f32_qs8(op_, rows, in, out, pool);
  if (st == xnn_status_success) st = xnn_run_operator(op_, pool);
  if (st != xnn_status_success) return XnnError("f32->qs8", "convert_nc_f32_qs8", st);
  return Status::Ok();
}

Status Qs8ConvertOp::Dequantize(size_t rows, const int8_t* in, float* out, pthreadpool_t pool) {
  xnn_status st = xnn_setup_convert_nc_qs8_f32(op_, rows, in, out, pool);
  if (st == xnn_status_success) st = xnn_run_operator(op_, pool);
  if (st != xnn_status_success) return XnnError("qs8->f32", "convert_nc_qs8_f32", st);
  return Status::Ok();
}

Result<std::unique_ptr<DenseChain>> DenseChain::Create(const std::vector<const LinearSpec*>& specs,
                                                       DenseKernels kernels) {
  if (specs.empty()) return Internal("empty dense chain");
  std::unique_ptr<DenseChain> chain(new DenseChain());
  for (const LinearSpec* s : specs) {
    DTRN_ASSIGN_OR_RETURN(auto layer, CreateDenseLayer(*s, kernels));
    chain->layers_.push_back(std::move(layer));
  }
  const size_t n = chain->layers_.size();
  chain->steps_.resize(n);
  for (size_t j = 0; j < n; ++j) {
    const DenseLayer& l = *chain->layers_[j];
    if (!l.int8()) continue;
    const DenseLayer* prev = j > 0 ? chain->layers_[j - 1].get() : nullptr;
    const DenseLayer* next = j + 1 < n ? chain->layers_[j + 1].get() : nullptr;
    if (!(prev && prev->int8() && prev->output_params() == l.input_params())) {
      DTRN_ASSIGN_OR_RETURN(chain->steps_[j].quantize, Qs8ConvertOp::ToQs8(l.spec().in, l.input_params()));
    }
    if (!(next && next->int8() && next->input_params() == l.output_params())) {
      DTRN_ASSIGN_OR_RETURN(chain->steps_[j].dequantize, Qs8ConvertOp::ToF32(l.spec().out, l.output_params()));
    }
  }
  return chain;
}

Status DenseChain::Run(size_t rows, const float* in, float* out, const Exec& x) {
  if (rows == 0) return Status::Ok();
  ChainScratch* scratch = x.scratch;
  pthreadpool_t pool = x.pool;
  ActivationObserver* observer = x.observer;
  const float* cur_f = in;
  const int8_t* cur_q = nullptr;
  int fi = -1, qi = -1;  // scratch slot holding the current activation (-1: not in scratch)
  const size_t n = layers_.size();
  for (size_t j = 0; j < n; ++j) {
    DenseLayer& l = *layers_[j];
    const size_t in_f = l.spec().in, out_f = l.spec().out;
    const bool last = j + 1 == n;
    if (!l.int8()) {
      float* dst = last ? out : scratch->f32[fi == 0 ? 1 : 0].Reserve(rows * out_f);
      if (dst == nullptr) return OutOfMemory(l.spec().name);
      DTRN_RETURN_IF_ERROR(l.RunF32(rows, cur_f, dst, pool));
      if (observer) observer->Observe(l.spec().name, cur_f, rows, in_f, dst, out_f);
      fi = last ? -1 : (fi == 0 ? 1 : 0);
      cur_f = dst;
      continue;
    }
    if (steps_[j].quantize) {
      qi = qi == 0 ? 1 : 0;
      int8_t* q = scratch->i8[qi].Reserve(rows * in_f);
      if (q == nullptr) return OutOfMemory(l.spec().name);
      DTRN_RETURN_IF_ERROR(steps_[j].quantize->Quantize(rows, cur_f, q, pool));
      cur_q = q;
    }
    qi = qi == 0 ? 1 : 0;
    int8_t* dst = scratch->i8[qi].Reserve(rows * out_f);
    if (dst == nullptr) return OutOfMemory(l.spec().name);
    DTRN_RETURN_IF_ERROR(l.RunQs8(rows, cur_q, dst, pool));
    cur_q = dst;
    if (steps_[j].dequantize) {
      float* df = last ? out : scratch->f32[fi == 0 ? 1 : 0].Reserve(rows * out_f);
      if (df == nullptr) return OutOfMemory(l.spec().name);
      DTRN_RETURN_IF_ERROR(steps_[j].dequantize->Dequantize(rows, cur_q, df, pool));
      fi = last ? -1 : (fi == 0 ? 1 : 0);
      cur_f = df;
    }
  }
  return Status::Ok();
}

}  // namespace dtrn
