// Scores JSON Lines: the writer (byte for byte as the reference's scores_line) and a reader.
#include <charconv>
#include <limits>

#include "dtrn/io/line_reader.h"
#include "dtrn/io/scores.h"
#include "json_util.h"

namespace dtrn::io {
namespace {

using json = nlohmann::json;

void AppendMatrix(const std::vector<float>& values, size_t n, size_t k, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < n; ++i) {
    if (i) out->push_back(',');
    out->push_back('[');
    for (size_t t = 0; t < k; ++t) {
      if (t) out->push_back(',');
      size_t j = i * k + t;
      AppendJsonFloat(j < values.size() ? values[j] : std::numeric_limits<float>::quiet_NaN(), out);
    }
    out->push_back(']');
  }
  out->push_back(']');
}

Status LineError(size_t line_no, const std::string& field, const std::string& msg) {
  return InvalidArgument("line " + std::to_string(line_no) + ": " + (field.empty() ? "" : field + ": ") + msg);
}

// N x K numbers (null read as NaN) into a row-major vector.
Status ReadMatrix(const json& v, const char* name, size_t line_no, size_t* n, size_t* k, std::vector<float>* out) {
  if (!v.is_array()) return LineError(line_no, name, "expected an array of arrays, got " + ShowJson(v));
  *n = v.size();
  out->clear();
  for (size_t i = 0; i < v.size(); ++i) {
    const json& row = v[i];
    const std::string path = std::string(name) + "[" + std::to_string(i) + "]";
    if (!row.is_array()) return LineError(line_no, path, "expected an array, got " + ShowJson(row));
    if (i == 0) *k = row.size();
    if (row.size() != *k)
      return LineError(line_no, path, "has " + std::to_string(row.size()) + " values, row 0 has " + std::to_string(*k));
    for (size_t t = 0; t < row.size(); ++t) {
      const json& x = row[t];
      if (x.is_null())
        out->push_back(std::numeric_limits<float>::quiet_NaN());
      else if (x.is_number())
        out->push_back(x.get<float>());
      else
        return LineError(line_no, path + "[" + std::to_string(t) + "]", "expected a number, got " + ShowJson(x));
    }
  }
  if (*n == 0) *k = 0;
  return Status::Ok();
}

}  // namespace

void AppendScoresJson(const std::string& id, const Scores& scores, const std::vector<int>& order, std::string* out) {
  const size_t n = scores.num_candidates, k = scores.num_tasks;
  out->append("{\"id\":");
  AppendJsonString(id, out);
  out->append(",\"scores\":");
  AppendMatrix(scores.probabilities, n, k, out);
  out->append(",\"logits\":");
  AppendMatrix(scores.logits, n, k, out);
  out->append(",\"order\":[");
  char buf[16];
  for (size_t i = 0; i < order.size(); ++i) {
    if (i) out->push_back(',');
    auto r = std::to_chars(buf, buf + sizeof(buf), order[i]);
    out->append(buf, r.ptr);
  }
  out->append("]}");
}

std::string ScoresToJsonLine(const std::string& id, const Scores& scores, const std::vector<int>& order) {
  std::string out;
  out.reserve(64 + scores.probabilities.size() * 30 + order.size() * 4);
  AppendScoresJson(id, scores, order, &out);
  return out;
}

Result<ScoresLine> ParseScoresJson(std::string_view line, size_t line_no) {
  json doc;
  std::string error;
  if (!ParseStrictJson(line, &doc, &error)) return LineError(line_no, "", error);
  if (!doc.is_object()) return LineError(line_no, "", "a scores line must be a JSON object");
  ScoresLine out;
  auto id = doc.find("id");
  if (id == doc.end()) return LineError(line_no, "id", "missing");
  if (id->is_string())
    out.id = id->get<std::string>();
  else if (id->type() == json::value_t::number_integer)
    out.id = std::to_string(id->get<int64_t>());
  else if (id->type() == json::value_t::number_unsigned)
    out.id = std::to_string(id->get<uint64_t>());
  else
    return LineError(line_no, "id", "expected a string or an integer, got " + ShowJson(*id));

  auto probs = doc.find("scores");
  if (probs == doc.end()) probs = doc.find("probabilities");
  if (probs == doc.end()) return LineError(line_no, "scores", "missing");
  DTRN_RETURN_IF_ERROR(ReadMatrix(*probs, "scores", line_no, &out.scores.num_candidates, &out.scores.num_tasks,
                                  &out.scores.probabilities));
  auto logits = doc.find("logits");
  if (logits != doc.end()) {
    size_t n = 0, k = 0;
    DTRN_RETURN_IF_ERROR(ReadMatrix(*logits, "logits", line_no, &n, &k, &out.scores.logits));
    if (n != out.scores.num_candidates || k != out.scores.num_tasks)
      return LineError(line_no, "logits", "shape differs from scores");
  }
  auto order = doc.find("order");
  if (order != doc.end()) {
    if (!order->is_array()) return LineError(line_no, "order", "expected an array of candidate indices");
    for (size_t i = 0; i < order->size(); ++i) {
      const json& x = (*order)[i];
      if (!x.is_number_integer() || x.get<int64_t>() < 0 ||
          x.get<int64_t>() >= static_cast<int64_t>(out.scores.num_candidates))
        return LineError(line_no, "order[" + std::to_string(i) + "]", "expected a candidate index, got " + ShowJson(x));
      out.order.push_back(x.get<int>());
    }
  }
  return out;
}

Result<std::vector<ScoresLine>> ReadScoresFile(const std::string& path) {
  DTRN_ASSIGN_OR_RETURN(auto lines, LineReader::Open(path));
  std::vector<ScoresLine> out;
  std::string line;
  size_t line_no = 0;
  while (true) {
    DTRN_ASSIGN_OR_RETURN(bool more, lines->Next(&line, &line_no));
    if (!more) break;
    Result<ScoresLine> r = ParseScoresJson(line, line_no);
    if (!r.ok()) return Status(r.status().code(), path + ": " + r.status().message());
    out.push_back(std::move(r).value());
  }
  return out;
}

}  // namespace dtrn::io
