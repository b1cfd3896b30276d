// Request JSON Lines parser. ParseRequestJson tries the SAX fast path (request_fast.cc) and
// falls back to this file's DOM walk, the reference semantics, which names every error.
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "dtrn/io/requests.h"
#include "json_util.h"
#include "request_parse.h"

namespace dtrn::io {
namespace {

using json = nlohmann::json;

constexpr const char* kTopKeys[] = {"id", "user", "context", "behaviors", "candidates", "labels", "weights"};

// Where an error is: line, request id once known, then the field path given per call.
class Where {
 public:
  explicit Where(size_t line) : line_(line) {}
  void set_id(std::string id) {
    id_ = std::move(id);
    has_id_ = true;
  }
  Status Error(const std::string& field, const std::string& msg) const {
    std::string s = line_ ? "line " + std::to_string(line_) : "request";
    if (has_id_) s += " (id " + TruncateUtf8(id_, 64) + ")";
    s += ": ";
    if (!field.empty()) s += field + ": ";
    return InvalidArgument(s + msg);
  }

 private:
  size_t line_;
  std::string id_;
  bool has_id_ = false;
};

std::string JoinNames(const std::vector<FieldInfo>& fields) {
  if (fields.empty()) return "none";
  std::string s;
  for (const FieldInfo& f : fields) s += (s.empty() ? "" : ", ") + f.name;
  return s;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// Ids are JSON integers read as int64, never through a double.
Status ReadId(const json& v, const Where& w, const std::string& field, int64_t* out) {
  if (v.type() == json::value_t::number_integer) {
    *out = v.get<int64_t>();
    return Status::Ok();
  }
  if (v.type() == json::value_t::number_unsigned) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return w.Error(field, "id " + std::to_string(u) + " does not fit in int64 (ids are in [-2^63, 2^63))");
    *out = static_cast<int64_t>(u);
    return Status::Ok();
  }
  if (IsNumberText(v) && IsIntegerToken(NumberText(v)))
    return w.Error(field, "id " + ShowJson(v) + " does not fit in int64 (ids are in [-2^63, 2^63))");
  if (v.type() == json::value_t::number_float || IsNumberText(v))
    return w.Error(field, "expected an integer id in [-2^63, 2^63), got " + ShowJson(v));
  return w.Error(field, "expected an integer id, got " + ShowJson(v));
}

// A finite number that also stays finite as a float32. A number kept as text (an integer
// beyond 64 bits, or beyond a double) is read as nlohmann reads numbers: the nearest double.
Status ReadFloat(const json& v, const Where& w, const std::string& field, float* out) {
  double d;
  if (IsNumberText(v)) {
    const std::string text = NumberText(v);
    auto r = std::from_chars(text.data(), text.data() + text.size(), d);
    if (r.ec != std::errc() || r.ptr != text.data() + text.size()) d = std::numeric_limits<double>::infinity();
  } else if (v.is_number()) {
    d = v.get<double>();
  } else {
    return w.Error(field, "expected a finite number, got " + ShowJson(v));
  }
  float f = static_cast<float>(d);
  if (!std::isfinite(d) || !std::isfinite(f))
    return w.Error(field, "expected a finite float32 number, got " + ShowJson(v));
  *out = f;
  return Status::Ok();
}

Status ReadDense(const json& v, int width, const Where& w, const std::string& field, std::vector<float>* out) {
  if (!v.is_array())
    return w.Error(field, "expected an array of " + std::to_string(width) + " numbers, got " + ShowJson(v));
  if (v.size() != static_cast<size_t>(width))
    return w.Error(field, "expected exactly " + std::to_string(width) + " numbers, got " + std::to_string(v.size()));
  out->resize(width);
  for (int i = 0; i < width; ++i)
    DTRN_RETURN_IF_ERROR(ReadFloat(v[i], w, field + "[" + std::to_string(i) + "]", &(*out)[i]));
  return Status::Ok();
}

// One group object (user, context, or a candidate): every field, no other key.
Status ReadGroup(const json& obj, const std::vector<FieldInfo>& fields, const char* group, const std::string& path,
                 const Where& w, std::vector<FieldValue>* out) {
  if (!obj.is_object()) return w.Error(path, "expected an object, got " + ShowJson(obj));
  for (const auto& kv : obj.items()) {
    bool known = false;
    for (const FieldInfo& f : fields) known = known || f.name == kv.key();
    if (!known)
      return w.Error(path + "." + kv.key(),
                     std::string("unknown field (the model's ") + group + " fields: " + JoinNames(fields) + ")");
  }
  out->resize(fields.size());
  for (size_t i = 0; i < fields.size(); ++i) {
    const FieldInfo& f = fields[i];
    const std::string fpath = path + "." + f.name;
    auto it = obj.find(f.name);
    if (it == obj.end()) return w.Error(fpath, "missing");
    FieldValue& fv = (*out)[i];
    if (f.kind == FieldKind::kSparse) {
      fv.dense.clear();
      DTRN_RETURN_IF_ERROR(ReadId(*it, w, fpath, &fv.id));
    } else {
      fv.id = 0;
      DTRN_RETURN_IF_ERROR(ReadDense(*it, f.width, w, fpath, &fv.dense));
    }
  }
  return Status::Ok();
}

std::string SeqKeys(const RequestSchema& schema, const char* value) {
  std::string s = "{\"item_id\": " + std::string(value);
  for (const FieldInfo& f : schema.seq_fields) s += ", \"" + f.name + "\": " + value;
  return s + "}";
}

// One behaviour's item ids (or a side field's ids) of the object form, or the array form.
Status ReadIdArray(const json& v, const Where& w, const std::string& path, const char* what,
                   std::vector<int64_t>* out) {
  if (!v.is_array()) return w.Error(path, std::string("expected an array of ") + what + ", got " + ShowJson(v));
  out->resize(v.size());
  for (size_t j = 0; j < out->size(); ++j)
    DTRN_RETURN_IF_ERROR(ReadId(v[j], w, path + "[" + std::to_string(j) + "]", &(*out)[j]));
  return Status::Ok();
}

// Without seq_fields a sequence is an array of item ids; with them, an object of equal-length
// arrays {"item_id": [...], f: [...]} for every f in seq_fields (model spec, Inputs).
Status ReadBehaviors(const json& obj, const RequestSchema& schema, const Where& w, Request* req) {
  if (!obj.is_object())
    return w.Error("behaviors", "expected an object of behaviour type -> sequence, got " + ShowJson(obj));
  for (const auto& kv : obj.items()) {
    bool known = false;
    for (const std::string& b : schema.behaviors) known = known || b == kv.key();
    if (!known)
      return w.Error("behaviors." + kv.key(),
                     "unknown behaviour type (the model's: " + JoinNames(schema.behaviors) + ")");
  }
  const size_t S = schema.seq_fields.size();
  req->behaviors.resize(schema.behaviors.size());
  req->behavior_side_ids.clear();
  if (S > 0) req->behavior_side_ids.assign(schema.behaviors.size(), std::vector<std::vector<int64_t>>(S));
  for (size_t b = 0; b < schema.behaviors.size(); ++b) {
    const std::string path = "behaviors." + schema.behaviors[b];
    auto it = obj.find(schema.behaviors[b]);
    if (it == obj.end())
      return w.Error(path,
                     S == 0 ? "missing (use [] for none)" : "missing (use " + SeqKeys(schema, "[]") + " for none)");
    if (S == 0) {
      if (it->is_object())
        return w.Error(path,
                       "expected an array of item ids (the object form needs seq_fields, and this model has none)");
      DTRN_RETURN_IF_ERROR(ReadIdArray(*it, w, path, "item ids", &req->behaviors[b]));
      continue;
    }
    if (!it->is_object())
      return w.Error(path, "expected an object " + SeqKeys(schema, "[...]") +
                               " (the model's seq_fields: " + JoinNames(schema.seq_fields) + "), got " + ShowJson(*it));
    for (const auto& kv : it->items()) {
      bool known = kv.key() == "item_id";
      for (const FieldInfo& f : schema.seq_fields) known = known || f.name == kv.key();
      if (!known)
        return w.Error(path + "." + kv.key(),
                       "unknown key (an event carries item_id, " + JoinNames(schema.seq_fields) + ")");
    }
    auto item = it->find("item_id");
    if (item == it->end())
      return w.Error(path + ".item_id", "missing (an event carries item_id, " + JoinNames(schema.seq_fields) + ")");
    DTRN_RETURN_IF_ERROR(ReadIdArray(*item, w, path + ".item_id", "item ids", &req->behaviors[b]));
    for (size_t f = 0; f < S; ++f) {
      const std::string& name = schema.seq_fields[f].name;
      auto side = it->find(name);
      if (side == it->end())
        return w.Error(path + "." + name, "missing (an event carries item_id, " + JoinNames(schema.seq_fields) + ")");
      DTRN_RETURN_IF_ERROR(ReadIdArray(*side, w, path + "." + name, "ids", &req->behavior_side_ids[b][f]));
      if (req->behavior_side_ids[b][f].size() != req->behaviors[b].size())
        return w.Error(path + "." + name, "has " + std::to_string(req->behavior_side_ids[b][f].size()) + " ids but " +
                                              path + ".item_id has " + std::to_string(req->behaviors[b].size()) +
                                              " (one per event: the lengths must be equal)");
    }
  }
  return Status::Ok();
}

Status ReadLabels(const json& v, size_t n, size_t k, const Where& w, std::vector<std::vector<float>>* out) {
  const std::string shape = std::to_string(n) + " arrays (one per candidate) of " + std::to_string(k) + " values";
  if (!v.is_array()) return w.Error("labels", "expected " + shape + ", got " + ShowJson(v));
  if (v.size() != n) return w.Error("labels", "expected " + shape + ", got " + std::to_string(v.size()) + " arrays");
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string path = "labels[" + std::to_string(i) + "]";
    const json& row = v[i];
    if (!row.is_array() || row.size() != k)
      return w.Error(path, "expected an array of " + std::to_string(k) + " values (task order), got " + ShowJson(row));
    (*out)[i].resize(k);
    for (size_t t = 0; t < k; ++t) {
      const json& x = row[t];
      double d = x.is_number() ? x.get<double>() : -1.0;
      if (d != 0.0 && d != 1.0)
        return w.Error(path + "[" + std::to_string(t) + "]", "expected 0 or 1, got " + ShowJson(x));
      (*out)[i][t] = static_cast<float>(d);
    }
  }
  return Status::Ok();
}

Status ReadWeights(const json& v, size_t k, const Where& w, std::vector<float>* out) {
  if (!v.is_array() || v.size() != k)
    return w.Error("weights",
                   "expected an array of " + std::to_string(k) + " numbers (task order), got " + ShowJson(v));
  out->resize(k);
  for (size_t t = 0; t < k; ++t)
    DTRN_RETURN_IF_ERROR(ReadFloat(v[t], w, "weights[" + std::to_string(t) + "]", &(*out)[t]));
  return Status::Ok();
}

Status ParseInto(const RequestSchema& schema, const json& doc, Where& w, Request* req) {
  if (!doc.is_object()) return w.Error("", "a request must be a JSON object, got " + ShowJson(doc));
  auto id = doc.find("id");
  if (id == doc.end()) return w.Error("id", "missing");
  if (id->is_string()) {
    req->id = id->get<std::string>();
  } else if (id->type() == json::value_t::number_integer) {
    req->id = std::to_string(id->get<int64_t>());
  } else if (id->type() == json::value_t::number_unsigned) {
    req->id = std::to_string(id->get<uint64_t>());
  } else if (IsNumberText(*id) && IsIntegerToken(NumberText(*id))) {
    return w.Error("id", "the integer " + ShowJson(*id) +
                             " is outside [-2^63, 2^64), the integers read exactly (send such an id as a string)");
  } else {
    return w.Error("id", "expected a string or a JSON integer, got " + ShowJson(*id));
  }
  w.set_id(req->id);
  for (const auto& kv : doc.items()) {
    bool known = false;
    for (const char* k : kTopKeys) known = known || kv.key() == k;
    if (!known)
      return w.Error(kv.key(), "unknown key (allowed: id, user, context, behaviors, candidates, labels, weights)");
  }
  for (const char* k : {"user", "context", "behaviors", "candidates"})
    if (doc.find(k) == doc.end()) return w.Error(k, "missing");

  DTRN_RETURN_IF_ERROR(ReadGroup(doc["user"], schema.user, "user", "user", w, &req->user));
  DTRN_RETURN_IF_ERROR(ReadGroup(doc["context"], schema.context, "context", "context", w, &req->context));
  DTRN_RETURN_IF_ERROR(ReadBehaviors(doc["behaviors"], schema, w, req));

  const json& cands = doc["candidates"];
  if (!cands.is_array() || cands.empty())
    return w.Error("candidates", "expected a non-empty array of candidate objects, got " + ShowJson(cands));
  req->candidates.resize(cands.size());
  for (size_t i = 0; i < cands.size(); ++i)
    DTRN_RETURN_IF_ERROR(
        ReadGroup(cands[i], schema.item, "item", "candidates[" + std::to_string(i) + "]", w, &req->candidates[i]));

  // Optional, but when present valid: null is not an array (omit the key instead), as in the
  // reference and the shared corpus (tests/data/request_corpus.jsonl).
  req->labels.clear();
  auto labels = doc.find("labels");
  if (labels != doc.end() && labels->is_null())
    return w.Error("labels", "expected an array of labels, got null (omit \"labels\" when there are none)");
  if (labels != doc.end())
    DTRN_RETURN_IF_ERROR(ReadLabels(*labels, cands.size(), schema.tasks.size(), w, &req->labels));
  req->weights.clear();
  auto weights = doc.find("weights");
  if (weights != doc.end() && weights->is_null())
    return w.Error("weights", "expected an array of weights, got null (omit \"weights\" for all 1)");
  if (weights != doc.end()) DTRN_RETURN_IF_ERROR(ReadWeights(*weights, schema.tasks.size(), w, &req->weights));
  return Status::Ok();
}

}  // namespace

Result<Request> ParseRequestJson(const RequestSchema& schema, std::string_view line, size_t line_no) {
  Request req;
  if (ParseRequestFast(schema, line, &req)) return req;
  return ParseRequestDom(schema, line, line_no);  // names what is wrong
}

Result<Request> ParseRequestDom(const RequestSchema& schema, std::string_view line, size_t line_no) {
  Where w(line_no);
  json doc;
  std::string error;
  if (!ParseStrictJson(line, &doc, &error)) return w.Error("", error);
  Request req;
  DTRN_RETURN_IF_ERROR(ParseInto(schema, doc, w, &req));
  return req;
}

Result<std::unique_ptr<RequestReader>> RequestReader::Open(RequestSchema schema, const std::string& path) {
  DTRN_ASSIGN_OR_RETURN(auto lines, LineReader::Open(path));
  return std::unique_ptr<RequestReader>(new RequestReader(std::move(schema), std::move(lines)));
}

Result<bool> RequestReader::Next(Request* out) {
  DTRN_ASSIGN_OR_RETURN(bool more, lines_->Next(&line_, &line_no_));
  if (!more) return false;
  Result<Request> r = ParseRequestJson(schema_, line_, line_no_);
  if (!r.ok()) return Status(r.status().code(), lines_->path() + ": " + r.status().message());
  *out = std::move(r).value();
  return true;
}

Result<std::vector<Request>> ReadRequestsFile(const RequestSchema& schema, const std::string& path) {
  DTRN_ASSIGN_OR_RETURN(auto reader, RequestReader::Open(schema, path));
  std::vector<Request> out;
  Request req;
  while (true) {
    DTRN_ASSIGN_OR_RETURN(bool more, reader->Next(&req));
    if (!more) break;
    out.push_back(std::move(req));
  }
  return out;
}

}  // namespace dtrn::io
