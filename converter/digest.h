// The checkpoint's SHA-256 (OpenSSL's libcrypto), recorded in the .dtrn so that a deployed
// model can be traced to its checkpoint: `sha256sum CKPT` prints the same digest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace dtrn::convert {

// Lowercase hex, 64 characters.
std::string Sha256Hex(const uint8_t* data, size_t size);

}  // namespace dtrn::convert
