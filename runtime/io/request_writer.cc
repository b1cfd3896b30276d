// Request -> JSON line (tests, tools that generate or rewrite requests).
#include <charconv>

#include "dtrn/io/requests.h"
#include "json_util.h"

namespace dtrn::io {
namespace {

void AppendInt(int64_t v, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

void AppendFloats(const std::vector<float>& v, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out->push_back(',');
    AppendJsonFloat(v[i], out);
  }
  out->push_back(']');
}

void AppendGroup(const std::vector<FieldInfo>& fields, const std::vector<FieldValue>& values, std::string* out) {
  out->push_back('{');
  for (size_t i = 0; i < fields.size() && i < values.size(); ++i) {
    if (i) out->push_back(',');
    AppendJsonString(fields[i].name, out);
    out->push_back(':');
    if (fields[i].kind == FieldKind::kSparse)
      AppendInt(values[i].id, out);
    else
      AppendFloats(values[i].dense, out);
  }
  out->push_back('}');
}

}  // namespace

std::string RequestToJsonLine(const RequestSchema& schema, const Request& r) {
  std::string out = "{\"id\":";
  AppendJsonString(r.id, &out);
  out += ",\"user\":";
  AppendGroup(schema.user, r.user, &out);
  out += ",\"context\":";
  AppendGroup(schema.context, r.context, &out);
  out += ",\"behaviors\":{";
  for (size_t b = 0; b < schema.behaviors.size() && b < r.behaviors.size(); ++b) {
    if (b) out.push_back(',');
    AppendJsonString(schema.behaviors[b], &out);
    out += ":[";
    for (size_t j = 0; j < r.behaviors[b].size(); ++j) {
      if (j) out.push_back(',');
      AppendInt(r.behaviors[b][j], &out);
    }
    out.push_back(']');
  }
  out += "},\"candidates\":[";
  for (size_t c = 0; c < r.candidates.size(); ++c) {
    if (c) out.push_back(',');
    AppendGroup(schema.item, r.candidates[c], &out);
  }
  out.push_back(']');
  if (!r.labels.empty()) {
    out += ",\"labels\":[";
    for (size_t c = 0; c < r.labels.size(); ++c) {
      if (c) out.push_back(',');
      AppendFloats(r.labels[c], &out);
    }
    out.push_back(']');
  }
  if (!r.weights.empty()) {
    out += ",\"weights\":";
    AppendFloats(r.weights, &out);
  }
  out.push_back('}');
  return out;
}

}  // namespace dtrn::io
