// The Model-facing overloads of request_json.h, apart so the parser itself needs no Model.
#include "dtrn/io/requests.h"

namespace dtrn::io {

RequestSchema RequestSchema::FromModel(const Model& model) {
  RequestSchema s;
  s.tasks = model.tasks();
  s.behaviors = model.behaviors();
  const auto& fields = model.fields();
  for (int i : model.group_fields(FieldGroup::kUser)) s.user.push_back(fields[i]);
  for (int i : model.group_fields(FieldGroup::kContext)) s.context.push_back(fields[i]);
  for (int i : model.group_fields(FieldGroup::kItem)) s.item.push_back(fields[i]);
  for (int i : model.seq_fields()) s.seq_fields.push_back(fields[i]);
  return s;
}

Result<Request> ParseRequestJson(const Model& model, std::string_view line, size_t line_no) {
  return ParseRequestJson(RequestSchema::FromModel(model), line, line_no);
}

Result<std::vector<Request>> ReadRequestsFile(const Model& model, const std::string& path) {
  return ReadRequestsFile(RequestSchema::FromModel(model), path);
}

}  // namespace dtrn::io
