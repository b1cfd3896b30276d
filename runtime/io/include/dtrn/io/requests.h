// JSON Lines requests (docs/request-format.md) <-> dtrn::Request.
//
// The parser checks the JSON shape strictly (types, unknown and duplicate keys, missing
// fields, widths, finite values) and names line, request id and field in every error. It
// does not hash ids or range-check them against vocabularies: that is the runtime's job
// (Session::Score), so both paths share one rule.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dtrn/io/line_reader.h"
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
  // The item sparse fields every behaviour event also carries (spec `seq_fields`), in the
  // model's order. Empty: a sequence is an array of item ids. Otherwise it is an object of
  // equal-length arrays {"item_id": [...], "<f>": [...]} with exactly these keys, parsed into
  // Request::behaviors and Request::behavior_side_ids.
  std::vector<FieldInfo> seq_fields;

  static RequestSchema FromModel(const Model& model);
};

// One request line -> Request. line_no (1-based) is only used in messages: "line 3 (id r7):
// candidates[4].category: ..."; 0 means "not from a file" and messages start "request (id r7): ".
Result<Request> ParseRequestJson(const RequestSchema& schema, std::string_view line, size_t line_no);
Result<Request> ParseRequestJson(const Model& model, std::string_view line, size_t line_no);

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

}  // namespace dtrn::io
