// The one owner of the .dtrn file framing: format version, alignment, identifier and the
// fixed header, with one parse (Header::Parse) and one serialise (WriteFile); and the
// enums every component shares (the schema's, under the names the code uses).
//
// Layout (schema/dtrn.fbs has the revision history):
//   [0, 64)          Header: magic "DTRN", version, regions, two XXH3-64 checksums
//   [64, 64 + S)     the FlatBuffer, root dtrn.fb.Model (identifier "DTRN")
//   [C, C + Z)       the constant segment, C = Align(64 + S); zero padding before it
// body_checksum covers every byte after the header, header_checksum the header's first
// 56 bytes: together, every byte the runtime reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dtrn/dtrn_generated.h"
#include "dtrn/status.h"

namespace dtrn {

// One set of enums for the schema, the converter and the runtime.
using DType = fb::DType;          // tensor element types; an embedding table's storage
using Pooling = fb::Pooling;      // spec: `pooling`
using Mtl = fb::Mtl;              // spec: `mtl`, the multi-task head
using Precision = fb::Precision;  // how a Linear runs

namespace format {

constexpr uint32_t kFormatVersion = 2;
constexpr size_t kAlignment = 64;  // the constant segment and every tensor in it
constexpr size_t kHeaderSize = 64;
constexpr char kMagic[4] = {'D', 'T', 'R', 'N'};

constexpr uint64_t Align(uint64_t x) { return (x + kAlignment - 1) / kAlignment * kAlignment; }

// The fixed header, as parsed. Offsets are from the start of the file.
struct Header {
  uint32_t version = kFormatVersion;
  uint32_t flags = 0;  // reserved, 0
  uint64_t flatbuffer_offset = kHeaderSize;
  uint64_t flatbuffer_size = 0;
  uint64_t segment_offset = 0;
  uint64_t segment_size = 0;
  uint64_t body_checksum = 0;    // XXH3-64 of bytes [kHeaderSize, file size)
  uint64_t header_checksum = 0;  // XXH3-64 of the header's first 56 bytes

  // Checks data[0, size): magic, version, header checksum, regions in bounds, in order and
  // covering the file exactly. DataLoss for damage, Unimplemented for another version.
  // Does not read past the header (the body checksum is VerifyBody's).
  static Result<Header> Parse(const uint8_t* data, size_t size);
  // XXH3-64 of the body against body_checksum (touches every byte of the file).
  Status VerifyBody(const uint8_t* data, size_t size) const;
};

// XXH3-64 of bytes, as the header's checksums use it.
uint64_t Checksum(const void* data, size_t size);

// The whole file: header, `flatbuffer` (a finished, not size-prefixed, Model buffer), zero
// padding, `segment`. Fills in the regions and both checksums.
std::vector<uint8_t> WriteFile(const uint8_t* flatbuffer, size_t flatbuffer_size, const uint8_t* segment,
                               size_t segment_size);

// The config names of the shared enums ("target", "mmoe", ...), and back (false if unknown).
const char* ConfigName(Pooling p);
const char* ConfigName(Mtl m);
bool ParsePooling(const std::string& name, Pooling* out);
bool ParseMtl(const std::string& name, Mtl* out);
// "F32", "INT8", ...
const char* DTypeName(DType t);
size_t DTypeSize(DType t);  // 0 if unknown

}  // namespace format
}  // namespace dtrn
