// ModelDesc -> .dtrn bytes (the FlatBuffer and the 64-byte aligned constant segment, framed
// by schema/dtrn_format.h), and the atomic file write (dtrn/tools/atomic_file.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model_desc.h"

namespace dtrn::convert {

std::string ProducerString();  // "dtrn-convert <version>"

Result<std::vector<uint8_t>> SerializeDtrn(const ModelDesc& m);

// On any failure no file is left at path (nor a temporary one beside it).
Status WriteFileAtomic(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace dtrn::convert
