#include "safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

namespace dtrn::convert {
namespace {

using json = nlohmann::json;

// Generous bound: our headers are a few KB; the safetensors library itself caps at 100 MB.
constexpr uint64_t kMaxHeader = 100u << 20;

// Dtypes the safetensors format defines, with their element sizes.
const std::map<std::string, size_t>& KnownDtypes() {
  static const std::map<std::string, size_t> k = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
                                                  {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
                                                  {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
  return k;
}

Status Bad(const std::string& msg) { return DataLoss("safetensors: " + msg); }

bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > UINT64_MAX / a) return true;
  *out = a * b;
  return false;
}

Result<StTensor> ParseEntry(const std::string& name, const json& v, uint64_t data_size) {
  const std::string where = "tensor '" + name + "'";
  if (!v.is_object()) return Bad(where + ": header entry is not an object");
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets") {
      return Bad(where + ": unknown header key '" + it.key() + "'");
    }
  }
  if (!v.contains("dtype") || !v["dtype"].is_string()) return Bad(where + ": missing or non-string 'dtype'");
  const std::string dtype = v["dtype"].get<std::string>();
  if (!KnownDtypes().count(dtype)) return Bad(where + ": unknown dtype '" + dtype + "'");
  if (dtype != "F32") {
    return Status(StatusCode::kUnimplemented,
                  "safetensors: " + where + ": dtype " + dtype + " is not supported (checkpoints are F32)");
  }
  if (!v.contains("shape") || !v["shape"].is_array()) return Bad(where + ": missing or non-array 'shape'");
  StTensor t;
  t.name = name;
  uint64_t numel = 1;
  for (const json& dim : v["shape"]) {
    if (!dim.is_number_unsigned()) return Bad(where + ": shape entry " + dim.dump() + " is not a non-negative integer");
    uint64_t n = dim.get<uint64_t>();
    if (n > static_cast<uint64_t>(INT64_MAX) || MulOverflows(numel, n, &numel)) return Bad(where + ": shape overflows");
    t.shape.push_back(static_cast<int64_t>(n));
  }
  if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2 ||
      !v["data_offsets"][0].is_number_unsigned() || !v["data_offsets"][1].is_number_unsigned()) {
    return Bad(where + ": 'data_offsets' must be two non-negative integers");
  }
  const uint64_t begin = v["data_offsets"][0].get<uint64_t>(), end = v["data_offsets"][1].get<uint64_t>();
  if (begin > end)
    return Bad(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + ") is reversed");
  if (end > data_size) {
    return Bad(where + ": data_offsets end " + std::to_string(end) + " is beyond the data section (" +
               std::to_string(data_size) + " bytes; file truncated or header lies)");
  }
  uint64_t nbytes;
  if (MulOverflows(numel, 4, &nbytes) || nbytes != end - begin) {
    return Bad(where + ": shape needs " + std::to_string(numel) + " F32 values but data_offsets span " +
               std::to_string(end - begin) + " bytes");
  }
  t.offset = static_cast<size_t>(begin);  // relative to the data section for now
  t.nbytes = static_cast<size_t>(nbytes);
  return t;
}

}  // namespace

const StTensor* SafeTensors::Find(const std::string& name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

std::vector<float> SafeTensors::Floats(const StTensor& t) const {
  std::vector<float> v(t.numel());
  if (t.nbytes) std::memcpy(v.data(), data + t.offset, t.nbytes);
  return v;
}

Result<SafeTensors> ParseSafeTensors(const uint8_t* data, size_t size) {
  static_assert(sizeof(float) == 4, "F32 is 4 bytes");
  if (size < 8) return Bad("file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];  // little-endian
  if (n > kMaxHeader) return Bad("header length " + std::to_string(n) + " is implausible (> 100 MB)");
  if (n > size - 8) {
    return Bad("header length " + std::to_string(n) + " exceeds the file (" + std::to_string(size) +
               " bytes; truncated?)");
  }
  const char* hb = reinterpret_cast<const char*>(data + 8);
  // Duplicate top-level keys would let one name hide another: reject them while parsing.
  std::set<std::string> seen;
  std::string dup;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) {
      const std::string k = parsed.get<std::string>();
      if (!seen.insert(k).second && dup.empty()) dup = k;
    }
    return true;
  };
  json header = json::parse(hb, hb + n, cb, /*allow_exceptions=*/false);
  if (header.is_discarded()) return Bad("header is not valid JSON");
  if (!dup.empty()) return Bad("header names '" + dup + "' twice");
  if (!header.is_object()) return Bad("header is not a JSON object");

  SafeTensors st;
  st.data = data;
  st.size = size;
  const uint64_t data_start = 8 + n, data_size = size - data_start;
  std::vector<const StTensor*> order;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) return Bad("__metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) return Bad("__metadata__ value '" + m.key() + "' is not a string");
        st.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    DTRN_ASSIGN_OR_RETURN(StTensor t, ParseEntry(it.key(), it.value(), data_size));
    st.tensors[t.name] = std::move(t);
  }
  for (auto& kv : st.tensors) order.push_back(&kv.second);
  std::sort(order.begin(), order.end(), [](const StTensor* a, const StTensor* b) {
    return a->offset != b->offset ? a->offset < b->offset : a->nbytes < b->nbytes;
  });
  // The tensors must tile the data section exactly: no overlap (aliasing), no gap (hidden bytes).
  uint64_t pos = 0;
  const StTensor* prev = nullptr;
  for (const StTensor* t : order) {
    if (t->offset < pos) {
      return Bad("tensor '" + t->name + "' overlaps tensor '" + (prev ? prev->name : "") + "' at byte " +
                 std::to_string(t->offset));
    }
    if (t->offset > pos) {
      return Bad("gap of " + std::to_string(t->offset - pos) + " unclaimed bytes before tensor '" + t->name + "'");
    }
    pos = t->offset + t->nbytes;
    prev = t;
  }
  if (pos != data_size) {
    return Bad("data section is " + std::to_string(data_size) + " bytes but the tensors cover " + std::to_string(pos) +
               " (trailing bytes)");
  }
  for (auto& kv : st.tensors) {
    StTensor& t = kv.second;
    t.offset += static_cast<size_t>(data_start);
    for (size_t i = 0; i < t.numel(); ++i) {
      float f;
      std::memcpy(&f, data + t.offset + i * 4, 4);
      if (!std::isfinite(f)) {
        return Bad("tensor '" + t.name + "' has a non-finite value (" + std::to_string(f) + ") at flat index " +
                   std::to_string(i));
      }
    }
  }
  return st;
}

Result<Checkpoint> ReadCheckpoint(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return NotFound("cannot open checkpoint '" + path + "'");
  const std::streamoff len = f.tellg();
  if (len < 0) return IoError("cannot size checkpoint '" + path + "'");
  Checkpoint ck;
  ck.bytes.resize(static_cast<size_t>(len));
  f.seekg(0);
  if (len > 0 && !f.read(reinterpret_cast<char*>(ck.bytes.data()), len)) {
    return IoError("cannot read checkpoint '" + path + "'");
  }
  auto st = ParseSafeTensors(ck.bytes.data(), ck.bytes.size());
  if (!st.ok()) return Status(st.status().code(), path + ": " + st.status().message());
  ck.st = std::move(st).value();
  return ck;
}

}  // namespace dtrn::convert
