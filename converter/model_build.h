// Checkpoint -> ModelDesc (every layer f32), and the two int8 transformations:
// embedding tables to f16/int8 per row, and one Linear to int8 with calibrated
// activation params. Layer names and relu flags follow the team agreement
// (schema/dtrn.fbs, docs/checkpoint-format.md).
#pragma once

#include <string>
#include <vector>

#include "activation.h"
#include "model_desc.h"
#include "safetensors.h"

namespace dtrn::convert {

enum class EmbeddingType { kF32, kF16, kInt8 };
Result<EmbeddingType> ParseEmbeddingType(const std::string& s);
const char* EmbeddingTypeName(EmbeddingType t);

// The checkpoint must have passed CheckCheckpoint. Folds the hypernetwork into cln.
Result<ModelDesc> BuildF32Desc(const ModelConfig& config, const SafeTensors& st);

// Converts every embedding table (positions and cln stay f32).
Status SetEmbeddings(ModelDesc* m, EmbeddingType type);

// XNNPACK's fully-connected accepts requantization scales in [2^-32, 256).
constexpr double kMaxRequantScale = 256.0;
constexpr double kMinRequantScale = 0x1.0p-32;

// Replaces an f32 Linear's weight and bias by int8 weight (per output channel) and
// int32 bias; fails naming the layer and channel when XNNPACK's requantization
// limits cannot be met. Leaves the layer unchanged on failure.
Status QuantizeLinear(ModelDesc* m, LinearDesc* layer, const quant::ActivationParams& input,
                      const quant::ActivationParams& output);

// A tensor's values as floats (F32 tensors only).
std::vector<float> TensorFloats(const TensorDesc& t);

}  // namespace dtrn::convert
