// Strict safetensors reader: 8-byte little-endian header length, JSON header, raw
// tensor bytes. Everything is validated before any tensor byte is used: header
// length, JSON (no duplicate keys), dtype (F32 only: the checkpoint format), shape,
// offsets in bounds, byte count = shape x dtype, no overlap, no gaps, no NaN/Inf.
// Works on a byte buffer so it can be fuzzed; the result points into that buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dtrn/status.h"

namespace dtrn::convert {

struct StTensor {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // byte offset of the data from the start of the buffer
  size_t nbytes = 0;
  size_t numel() const { return nbytes / sizeof(float); }
};

struct SafeTensors {
  std::map<std::string, std::string> metadata;  // __metadata__
  std::map<std::string, StTensor> tensors;
  const uint8_t* data = nullptr;  // the parsed buffer (not owned)
  size_t size = 0;

  const StTensor* Find(const std::string& name) const;
  // The tensor's values (copied: offsets in a safetensors file need not be 4-byte aligned).
  std::vector<float> Floats(const StTensor& t) const;
};

Result<SafeTensors> ParseSafeTensors(const uint8_t* data, size_t size);

// A checkpoint file read into memory with its parsed header.
struct Checkpoint {
  std::vector<uint8_t> bytes;
  SafeTensors st;
};
Result<Checkpoint> ReadCheckpoint(const std::string& path);

}  // namespace dtrn::convert
