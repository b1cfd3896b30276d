// Checkpoint -> ModelDesc (every layer f32), and the two int8 transformations:
// embedding tables to f16/int8 per row, and one Linear to int8. Layer names and relu flags follow the team agreement
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

// Replaces an f32 Linear's weight by int8 (symmetric, one scale per output channel); the
// bias stays f32 and the activations are quantized per row at run time.
Status QuantizeLinear(ModelDesc* m, LinearDesc* layer);

// A tensor's values as floats (F32 tensors only).
std::vector<float> TensorFloats(const TensorDesc& t);

}  // namespace dtrn::convert
