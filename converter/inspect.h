// dtrn-inspect's work: verify a .dtrn file's framing (FlatBuffers verifier,
// identifier, version, segment bounds, checksum) on its own, so a damaged file can
// still be described, then print the config, layers, every tensor and totals.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "dtrn/status.h"

namespace dtrn::convert {

// Describes the model to out. Returns an error (after printing what it could) when
// the file is not a valid model: bad framing, unknown version, checksum mismatch.
Status InspectDtrn(const uint8_t* data, size_t size, std::ostream& out);
Status InspectDtrnFile(const std::string& path, std::ostream& out);

}  // namespace dtrn::convert
