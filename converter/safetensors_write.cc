#include "safetensors_write.h"

#include <cstring>

#include <nlohmann/json.hpp>

namespace dtrn::convert {

std::vector<uint8_t> SerializeSafeTensors(const std::vector<StWriteTensor>& tensors,
                                          const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const StWriteTensor& t : tensors) {
    const uint64_t n = t.values.size() * 4;
    h[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string header = h.dump();
  while (header.size() % 8) header += ' ';
  std::vector<uint8_t> out(8 + header.size() + off);
  const uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(len >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  uint8_t* p = out.data() + 8 + header.size();
  for (const StWriteTensor& t : tensors) {
    if (!t.values.empty()) std::memcpy(p, t.values.data(), t.values.size() * 4);
    p += t.values.size() * 4;
  }
  return out;
}

}  // namespace dtrn::convert
