// What a .dtrn file holds, before serialization: the config, the tensors and the
// layer tables. Built from a checkpoint in f32 (model_build), then changed in place
// by the int8 steps (embeddings, per-layer quantization), then serialized (dtrn_writer).
// Tensor bytes are shared between copies, so trying per-layer variants is cheap.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "dtrn/dtrn_generated.h"

namespace dtrn::convert {

struct TensorDesc {
  std::string name;
  std::vector<int64_t> shape;
  fb::DType type = fb::DType::F32;
  std::shared_ptr<const std::vector<uint8_t>> data;  // little-endian values
  std::vector<float> scales;                         // empty: not quantized
  std::vector<int64_t> zero_points;
  int quantized_dimension = 0;
  size_t nbytes() const { return data ? data->size() : 0; }
};

struct LinearDesc {
  std::string name;
  int in = 0, out = 0;
  bool relu = false;
  fb::Precision precision = fb::Precision::F32;
  int weight = -1, bias = -1;  // tensor indices
};

struct BlockDesc {
  LinearDesc attn_in, attn_out, ffn1, ffn2;
};

struct DecisionDesc {
  std::string layer;
  fb::Precision precision = fb::Precision::F32;
  std::string reason;
};

struct ModelDesc {
  ModelConfig config;
  std::vector<TensorDesc> tensors;
  std::vector<int> table_weight;       // per config.tables: tensor index
  std::vector<LinearDesc> projection;  // per config.fields: dense projection (unused for sparse)
  int positions = -1, cln = -1;
  std::vector<BlockDesc> blocks;
  bool has_query = false;
  LinearDesc query;
  std::vector<LinearDesc> trm_fc1, trm_fc2;  // per task
  std::vector<std::vector<LinearDesc>> experts;
  std::vector<LinearDesc> gates;
  std::vector<std::vector<LinearDesc>> towers;
  std::vector<DecisionDesc> decisions;
  std::string checkpoint_digest;  // "sha256:<hex>" of the checkpoint file

  // Every Linear int8 mode considers (all but the dense-field projections), in model order.
  std::vector<LinearDesc*> Candidates();
  LinearDesc* FindLinear(const std::string& name);
  const LinearDesc* FindLinear(const std::string& name) const;
  int AddTensor(TensorDesc t);
};

}  // namespace dtrn::convert
