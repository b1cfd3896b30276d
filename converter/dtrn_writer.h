// ModelDesc -> .dtrn bytes (layout in schema/dtrn.fbs: size-prefixed FlatBuffer,
// then the 64-byte aligned constant segment with its XXH3-64 checksum), and the
// atomic file write: a temporary file in the target's directory, fsync, rename.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model_desc.h"

namespace dtrn::convert {

constexpr uint32_t kFormatVersion = 1;
std::string ProducerString();  // "dtrn-convert <version>"

Result<std::vector<uint8_t>> SerializeDtrn(const ModelDesc& m);

// On any failure no file is left at path (nor a temporary one beside it).
Status WriteFileAtomic(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace dtrn::convert
