// Model::Impl: the verified, resolved view of a .dtrn file. Every pointer points into
// the mapped constant segment and was bounds-, dtype- and shape-checked at load, so
// the session code reads them without further checks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dtrn/runtime.h"

namespace dtrn {

enum class Precision { kF32 = 0, kInt8 = 1 };
enum class TableType { kF32 = 0, kF16 = 1, kInt8 = 2 };
enum class Pooling { kTarget = 0, kMean = 1 };
enum class Mtl { kTowers = 0, kMmoe = 1, kPle = 2 };

// One Linear layer y = x·Wᵀ + b (+ relu), resolved.
struct LinearSpec {
  std::string name;
  int in = 0;
  int out = 0;
  bool relu = false;
  Precision precision = Precision::kF32;
  const float* weight_f32 = nullptr;  // [out, in]   (F32)
  const float* bias_f32 = nullptr;    // [out]       (F32)
  const int8_t* weight_i8 = nullptr;  // [out, in]   (INT8)
  const int32_t* bias_i32 = nullptr;  // [out]       (INT8)
  const float* weight_scale = nullptr;  // [out]     (INT8)
  float input_scale = 1.f;
  int32_t input_zero_point = 0;
  float output_scale = 1.f;
  int32_t output_zero_point = 0;
};

struct TableSpec {
  std::string name;
  int64_t vocab = 0;
  bool hashed = false;
  TableType type = TableType::kF32;
  const void* data = nullptr;         // [vocab, d]
  const float* row_scale = nullptr;   // [vocab] (INT8)
};

struct FieldSpec {
  int table = -1;          // sparse
  int width = 0;           // dense
  int group_slot = 0;      // position within its group
  LinearSpec projection;   // dense: [d, width]
};

struct BlockSpec {
  LinearSpec attn_in, attn_out, ffn1, ffn2;
};

struct TrmSpec {
  LinearSpec fc1, fc2;
};

struct Model::Impl {
  ~Impl();

  // Storage: either an mmap of the file or an owned 64-aligned copy.
  void* map_base = nullptr;
  size_t map_size = 0;
  uint8_t* owned = nullptr;
  const uint8_t* bytes = nullptr;
  size_t size = 0;
  const fb::Model* fbm = nullptr;
  const uint8_t* segment = nullptr;

  // Config.
  std::string name;
  int d = 0, K = 0, B = 0, L = 0, blocks = 0, heads = 0, d_ff = 0;
  int F = 0;        // fields
  int n = 0;        // F + B: TRM inputs
  int trm_hidden = 0;
  Pooling pooling = Pooling::kTarget;
  Mtl mtl = Mtl::kMmoe;
  int experts_shared = 0, experts_per_task = 0;
  std::vector<int> expert_hidden, tower_hidden;
  std::vector<std::string> tasks, behaviors;
  std::vector<FieldInfo> fields;
  std::vector<FieldSpec> field_specs;
  std::array<std::vector<int>, 3> group_fields;
  std::vector<TableSpec> tables;
  int item_table = -1;
  int item_field = -1;  // index into fields of item_id (the first item field)

  // Weights.
  const float* positions = nullptr;  // [L, d]
  const float* cln = nullptr;        // [K, B, 2*blocks, 2, d]
  std::vector<BlockSpec> tim_blocks;
  bool has_query = false;
  LinearSpec query;
  std::vector<TrmSpec> trm;
  std::vector<std::vector<LinearSpec>> experts;
  std::vector<LinearSpec> gates;
  std::vector<std::vector<LinearSpec>> towers;
  bool has_int8 = false;

  // (γ, β) of LayerNorm l (block i: CLN1 = 2i, CLN2 = 2i+1) for (task k, behaviour b).
  const float* gamma(int k, int b, int l) const {
    return cln + ((static_cast<size_t>(k) * B + b) * 2 * blocks + l) * 2 * d;
  }
  const float* beta(int k, int b, int l) const { return gamma(k, b, l) + d; }
};

// Parses and verifies bytes[0, size) (64-aligned) into *impl; `where` prefixes messages.
Status VerifyAndResolve(const std::string& where, const LoadOptions& options, Model::Impl* impl);

}  // namespace dtrn
