// The safetensors writer counterpart of the reader (F32 only): used by tests to build
// good and deliberately malformed checkpoints without Python.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dtrn::convert {

struct StWriteTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// Tensors are laid out in the given order, contiguously; the header is padded with
// spaces to a multiple of 8 bytes, as the safetensors library does.
std::vector<uint8_t> SerializeSafeTensors(const std::vector<StWriteTensor>& tensors,
                                          const std::map<std::string, std::string>& metadata);

}  // namespace dtrn::convert
