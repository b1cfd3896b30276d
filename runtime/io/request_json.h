// JSON Lines requests and scores (docs/request-format.md) <-> dtrn::Request / dtrn::Scores.
//
// The parser checks the JSON shape strictly (types, unknown and duplicate keys,
// missing fields, widths, finite values) and names line, request id and field in
// every error. It does not hash ids or range-check them against vocabularies:
// that is the runtime's job (Session::Score), so both paths share one rule.
#pragma once

#include <cstddef>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dtrn/runtime.h"
#include "dtrn/status.h"

namespace dtrn::io {

// What the parser needs to know about a model: names, groups, kinds, widths.
// Built from a Model, or by hand (tests, fuzzing) without one.
struct RequestSchema {
  std::vector<std::string> tasks;      // task order
  std::vector<std::string> behaviors;  // behaviour-type order
  std::vector<FieldInfo> user;         // each group's fields in the model's field order
  std::vector<FieldInfo> context;
  std::vector<FieldInfo> item;

  static RequestSchema FromModel(const Model& model);
};

// One request line -> Request. line_no (1-based) is only used in messages: "line 3 (id r7):
// candidates[4].category: ..."; 0 means "not from a file" and messages start "request (id r7): ".
Result<Request> ParseRequestJson(const RequestSchema& schema, std::string_view line, size_t line_no);
Result<Request> ParseRequestJson(const Model& model, std::string_view line, size_t line_no);

// Reads a text file line by line (no need to hold it whole); skips blank lines.
class LineReader {
 public:
  static Result<std::unique_ptr<LineReader>> Open(const std::string& path);
  // The next non-blank line (without its newline) and its 1-based number; false at end of file.
  Result<bool> Next(std::string* line, size_t* line_no);
  const std::string& path() const { return path_; }

 private:
  LineReader(std::string path) : path_(std::move(path)) {}
  std::string path_;
  std::ifstream in_;
  size_t line_no_ = 0;
};

// Streams requests from a JSON Lines file; errors are prefixed with the file's path.
class RequestReader {
 public:
  static Result<std::unique_ptr<RequestReader>> Open(RequestSchema schema, const std::string& path);
  // Parses the next request into *out; false at end of file.
  Result<bool> Next(Request* out);
  size_t line_no() const { return line_no_; }  // line of the request last returned
  const RequestSchema& schema() const { return schema_; }

 private:
  RequestReader(RequestSchema schema, std::unique_ptr<LineReader> lines)
      : schema_(std::move(schema)), lines_(std::move(lines)) {}
  RequestSchema schema_;
  std::unique_ptr<LineReader> lines_;
  std::string line_;
  size_t line_no_ = 0;
};

// Whole file at once (small files, tests).
Result<std::vector<Request>> ReadRequestsFile(const Model& model, const std::string& path);
Result<std::vector<Request>> ReadRequestsFile(const RequestSchema& schema, const std::string& path);

// The request as one JSON line (no newline) that ParseRequestJson reads back to the same
// Request: numbers with 9 significant digits; labels and weights only when present.
// The request must have the schema's shape (as ParseRequestJson returns it).
std::string RequestToJsonLine(const RequestSchema& schema, const Request& request);

// One scores line, without the trailing newline, byte for byte as the reference writes it:
// {"id":"r1","scores":[[p,..],..],"logits":[[..],..],"order":[..]}. Numbers with 9
// significant digits (round-trips a float32); a non-finite value is written as null.
std::string ScoresToJsonLine(const std::string& id, const Scores& scores, const std::vector<int>& order);
// Same, appended to *out (lets a caller reuse one buffer).
void AppendScoresJson(const std::string& id, const Scores& scores, const std::vector<int>& order, std::string* out);

// A parsed scores line (goldens, dtrn-run output), for tests and comparisons.
struct ScoresLine {
  std::string id;
  Scores scores;            // logits left empty when the line has none
  std::vector<int> order;   // empty when the line has none
};
Result<ScoresLine> ParseScoresJson(std::string_view line, size_t line_no);
Result<std::vector<ScoresLine>> ReadScoresFile(const std::string& path);

}  // namespace dtrn::io
