// Request -> JSON line (tests, tools that generate or rewrite requests).
#include <charconv>
#include <cmath>

#include "dtrn/io/requests.h"
#include "json_util.h"

namespace dtrn::io {
namespace {

void AppendInt(int64_t v, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

void AppendIds(const std::vector<int64_t>& ids, std::string* out) {
  out->push_back('[');
  for (size_t j = 0; j < ids.size(); ++j) {
    if (j) out->push_back(',');
    AppendInt(ids[j], out);
  }
  out->push_back(']');
}

void AppendFloats(const std::vector<float>& v, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out->push_back(',');
    if (v[i] == 0.f && std::signbit(v[i]))
      out->append("-0.0");  // "-0" would read back as the integer 0, that is +0 (as json.dumps writes it)
    else
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
    out.push_back(':');
    if (schema.seq_fields.empty()) {
      AppendIds(r.behaviors[b], &out);
      continue;
    }
    // The object form: item_id, then each seq field's ids (spec: equal-length arrays).
    out += "{\"item_id\":";
    AppendIds(r.behaviors[b], &out);
    for (size_t f = 0; f < schema.seq_fields.size(); ++f) {
      out.push_back(',');
      AppendJsonString(schema.seq_fields[f].name, &out);
      out.push_back(':');
      static const std::vector<int64_t> kNone;
      const bool given = b < r.behavior_side_ids.size() && f < r.behavior_side_ids[b].size();
      AppendIds(given ? r.behavior_side_ids[b][f] : kNone, &out);
    }
    out.push_back('}');
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
