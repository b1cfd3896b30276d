// Model::Impl: the verified, resolved view of a .dtrn file, named as the spec names things
// (k task, b behaviour, i field). Every pointer points into the mapped constant segment
// and was bounds-, dtype-, shape- and overlap-checked at load (model_verify.cc), so the
// components read them without further checks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dtrn/runtime.h"
#include "dtrn_format.h"

namespace dtrn {

// One Linear layer y = x·Wᵀ + b (+ relu), resolved.
struct LinearSpec {
  std::string name;
  int in = 0;
  int out = 0;
  bool relu = false;
  Precision precision = Precision::F32;
  const float* weight_f32 = nullptr;    // [out, in]   (F32)
  const float* bias_f32 = nullptr;      // [out]       (F32 and INT8)
  const int8_t* weight_i8 = nullptr;    // [out, in]   (INT8)
  const float* weight_scale = nullptr;  // [out]       (INT8)
};

// An embedding table [vocab, d] in F32, F16 or INT8 (one f32 scale per row).
struct TableSpec {
  std::string name;
  int64_t vocab = 0;
  bool hashed = false;
  DType type = DType::F32;
  const void* data = nullptr;
  const float* row_scale = nullptr;  // [vocab] (INT8)
};

struct FieldSpec {
  int table = -1;         // sparse: index into tables
  int width = 0;          // dense
  int group_slot = 0;     // position within its group
  LinearSpec projection;  // dense: [d, width]
};

// One post-LN encoder block of TIM's conditional transformer.
struct BlockSpec {
  LinearSpec attn_in, attn_out, ffn1, ffn2;
};

// TRM of one task: a = 2·sigmoid(fc2(relu(fc1 z))).
struct TrmSpec {
  LinearSpec fc1, fc2;
};

// One task's gate: softmax(layer(r_k)) weighs experts[0..E_k) in this order.
struct GateSpec {
  LinearSpec layer;
  std::vector<int> experts;  // indices into Model::Impl::experts
};

struct Model::Impl {
  ~Impl();

  // Storage: either an mmap of the file or an owned 64-aligned copy.
  void* map_base = nullptr;
  size_t map_size = 0;
  uint8_t* owned = nullptr;
  const uint8_t* bytes = nullptr;
  size_t size = 0;
  format::Header header;
  const fb::Model* fbm = nullptr;
  const uint8_t* segment = nullptr;

  // Config.
  std::string name, producer, checkpoint_digest;
  int d = 0, K = 0, B = 0, L = 0, blocks = 0, heads = 0, d_ff = 0;
  int F = 0;  // fields
  int n = 0;  // F + B: TRM inputs
  int trm_hidden = 0;
  Pooling pooling = Pooling::Target;
  Mtl mtl = Mtl::Mmoe;
  int experts_shared = 0, experts_per_task = 0;
  std::vector<int> expert_hidden, tower_hidden;
  std::vector<std::string> tasks, behaviors;
  std::vector<FieldInfo> fields;
  std::vector<FieldSpec> field_specs;
  std::array<std::vector<int>, 3> group_fields;  // by FieldGroup, config order
  std::vector<TableSpec> tables;
  int item_table = -1;
  int item_field = -1;          // index into fields of item_id (the first item field)
  std::vector<int> seq_fields;  // indices into fields: the side ids every behaviour event carries

  // Weights.
  const float* positions = nullptr;  // [L, d]
  const float* cln = nullptr;        // [K, B, 2*blocks, 2, d]
  std::vector<BlockSpec> tim_blocks;
  bool has_query = false;
  LinearSpec query;
  std::vector<TrmSpec> trm;                      // per task
  std::vector<std::vector<LinearSpec>> experts;  // as numbered in the file
  std::vector<GateSpec> gates;                   // per task (mmoe, ple)
  std::vector<std::vector<LinearSpec>> towers;   // per task
  bool has_int8 = false;

  // (γ, β) of LayerNorm l (block i: CLN1 = 2i, CLN2 = 2i+1) for (task k, behaviour b).
  const float* gamma(int k, int b, int l) const {
    return cln + ((static_cast<size_t>(k) * B + b) * 2 * blocks + l) * 2 * d;
  }
  const float* beta(int k, int b, int l) const { return gamma(k, b, l) + d; }
};

namespace internal {
// The runtime's components and tests reach the resolved view through here (the public
// header keeps Model::Impl private).
struct ModelAccess {
  using View = Model::Impl;
  static const View& Of(const Model& m) { return *m.impl_; }
};
}  // namespace internal

using ModelView = internal::ModelAccess::View;
inline const ModelView& ViewOf(const Model& m) { return internal::ModelAccess::Of(m); }

// Parses and verifies bytes[0, size) (64-aligned) into *view; `where` prefixes messages.
Status VerifyAndResolve(const std::string& where, const LoadOptions& options, ModelView* view);

}  // namespace dtrn
