// The tensor set a config implies (docs/checkpoint-format.md), checked against a
// checkpoint: a missing, extra or mis-shaped tensor is an error naming it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "safetensors.h"

namespace dtrn::convert {

// name -> shape, in the order docs/checkpoint-format.md lists them.
std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors(const ModelConfig& c);

Status CheckCheckpoint(const ModelConfig& c, const SafeTensors& st);

// Reads dtrn_format / dtrn_config from the metadata and parses the config.
Result<ModelConfig> ConfigFromCheckpoint(const SafeTensors& st);

}  // namespace dtrn::convert
