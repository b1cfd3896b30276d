#include "dtrn_format.h"

#include <xxhash.h>

#include <cstring>

namespace dtrn::format {
namespace {

// Byte offsets of the header's fields (little-endian).
constexpr size_t kVersionAt = 4, kHeaderSizeAt = 8, kFlagsAt = 12, kFlatbufferOffsetAt = 16, kFlatbufferSizeAt = 24,
                 kSegmentOffsetAt = 32, kSegmentSizeAt = 40, kBodyChecksumAt = 48, kHeaderChecksumAt = 56;
static_assert(kHeaderChecksumAt + 8 == kHeaderSize, "header layout");

template <class T>
T Get(const uint8_t* p, size_t at) {
  T v;
  std::memcpy(&v, p + at, sizeof v);  // little-endian hosts only (x86-64, aarch64)
  return v;
}
template <class T>
void Put(uint8_t* p, size_t at, T v) {
  std::memcpy(p + at, &v, sizeof v);
}

std::string N(uint64_t v) { return std::to_string(v); }

}  // namespace

uint64_t Checksum(const void* data, size_t size) { return XXH3_64bits(data, size); }

Result<Header> Header::Parse(const uint8_t* data, size_t size) {
  if (size < kHeaderSize || data == nullptr)
    return DataLoss("file is " + N(size) + " bytes: too small for the " + N(kHeaderSize) + "-byte .dtrn header");
  if (std::memcmp(data, kMagic, 4) != 0) {
    // Version 1 files began with a size-prefixed FlatBuffer: the identifier sat at bytes 4-7.
    if (std::memcmp(data + 4, kMagic, 4) == 0)
      return Unimplemented("format_version 1 file: this runtime reads format_version " + N(kFormatVersion) +
                           " only (version 1 metadata is not covered by a checksum); re-convert the checkpoint "
                           "with this release's dtrn-convert");
    return DataLoss("not a .dtrn file: file identifier (magic) is not \"DTRN\"");
  }
  Header h;
  h.version = Get<uint32_t>(data, kVersionAt);
  h.flags = Get<uint32_t>(data, kFlagsAt);
  h.flatbuffer_offset = Get<uint64_t>(data, kFlatbufferOffsetAt);
  h.flatbuffer_size = Get<uint64_t>(data, kFlatbufferSizeAt);
  h.segment_offset = Get<uint64_t>(data, kSegmentOffsetAt);
  h.segment_size = Get<uint64_t>(data, kSegmentSizeAt);
  h.body_checksum = Get<uint64_t>(data, kBodyChecksumAt);
  h.header_checksum = Get<uint64_t>(data, kHeaderChecksumAt);
  const uint32_t header_size = Get<uint32_t>(data, kHeaderSizeAt);
  // The version first: another version may lay its header out differently.
  if (h.version != kFormatVersion)
    return Unimplemented("format_version " + N(h.version) + " is not supported (this runtime reads version " +
                         N(kFormatVersion) + ")");
  const uint64_t hc = Checksum(data, kHeaderChecksumAt);
  if (hc != h.header_checksum)
    return DataLoss("corrupted: header checksum mismatch (stored " + N(h.header_checksum) + ", computed " + N(hc) +
                    ")");
  if (header_size != kHeaderSize) return DataLoss("header size " + N(header_size) + ", expected " + N(kHeaderSize));
  if (h.flags != 0) return DataLoss("header flags " + N(h.flags) + " are not 0 (reserved)");
  if (h.flatbuffer_offset != kHeaderSize)
    return DataLoss("FlatBuffer offset " + N(h.flatbuffer_offset) + ", expected " + N(kHeaderSize));
  if (h.flatbuffer_size < 8 || h.flatbuffer_size > size - kHeaderSize)
    return DataLoss("truncated: the header says the FlatBuffer has " + N(h.flatbuffer_size) + " bytes, " +
                    N(size - kHeaderSize) + " follow the header");
  if (h.segment_offset != Align(kHeaderSize + h.flatbuffer_size))
    return DataLoss("constant segment offset " + N(h.segment_offset) + ", expected " +
                    N(Align(kHeaderSize + h.flatbuffer_size)));
  if (h.segment_offset > size || h.segment_size > size - h.segment_offset)
    return DataLoss("truncated: the header says the file has " + N(h.segment_offset + h.segment_size) +
                    " bytes, it has " + N(size));
  if (h.segment_size != size - h.segment_offset)
    return DataLoss("corrupted: " + N(size - h.segment_offset - h.segment_size) +
                    " unexpected bytes after the constant segment");
  return h;
}

Status Header::VerifyBody(const uint8_t* data, size_t size) const {
  const uint64_t c = Checksum(data + kHeaderSize, size - kHeaderSize);
  if (c != body_checksum)
    return DataLoss("corrupted: checksum mismatch over bytes [" + N(kHeaderSize) + ", " + N(size) + ") (stored " +
                    N(body_checksum) + ", computed " + N(c) + ")");
  return Status::Ok();
}

std::vector<uint8_t> WriteFile(const uint8_t* flatbuffer, size_t flatbuffer_size, const uint8_t* segment,
                               size_t segment_size) {
  const uint64_t seg = Align(kHeaderSize + flatbuffer_size);
  std::vector<uint8_t> out(seg + segment_size, 0);
  std::memcpy(out.data(), kMagic, 4);
  Put<uint32_t>(out.data(), kVersionAt, kFormatVersion);
  Put<uint32_t>(out.data(), kHeaderSizeAt, kHeaderSize);
  Put<uint32_t>(out.data(), kFlagsAt, 0);
  Put<uint64_t>(out.data(), kFlatbufferOffsetAt, kHeaderSize);
  Put<uint64_t>(out.data(), kFlatbufferSizeAt, flatbuffer_size);
  Put<uint64_t>(out.data(), kSegmentOffsetAt, seg);
  Put<uint64_t>(out.data(), kSegmentSizeAt, segment_size);
  if (flatbuffer_size) std::memcpy(out.data() + kHeaderSize, flatbuffer, flatbuffer_size);
  if (segment_size) std::memcpy(out.data() + seg, segment, segment_size);
  Put<uint64_t>(out.data(), kBodyChecksumAt, Checksum(out.data() + kHeaderSize, out.size() - kHeaderSize));
  Put<uint64_t>(out.data(), kHeaderChecksumAt, Checksum(out.data(), kHeaderChecksumAt));
  return out;
}

const char* ConfigName(Pooling p) {
  switch (p) {
    case Pooling::Target: return "target";
    case Pooling::Mean: return "mean";
  }
  return "?";
}

const char* ConfigName(Mtl m) {
  switch (m) {
    case Mtl::Towers: return "towers";
    case Mtl::Mmoe: return "mmoe";
    case Mtl::Ple: return "ple";
  }
  return "?";
}

bool ParsePooling(const std::string& name, Pooling* out) {
  for (Pooling p : {Pooling::Target, Pooling::Mean})
    if (name == ConfigName(p)) return *out = p, true;
  return false;
}

bool ParseMtl(const std::string& name, Mtl* out) {
  for (Mtl m : {Mtl::Towers, Mtl::Mmoe, Mtl::Ple})
    if (name == ConfigName(m)) return *out = m, true;
  return false;
}

const char* DTypeName(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::INT8: return "INT8";
    case DType::INT32: return "INT32";
  }
  return "unknown";
}

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::INT8: return 1;
    case DType::INT32: return 4;
  }
  return 0;
}

}  // namespace dtrn::format
