#include "request_check.h"

#include <cmath>

namespace dtrn {
namespace {

std::string Prefix(const Request& r) { return "request '" + r.id + "': "; }

// Built only on error: the hot path allocates nothing.
std::string Where(int candidate) {
  return candidate < 0 ? std::string() : "candidate " + std::to_string(candidate) + ": ";
}

Status CheckValue(const Model::Impl& m, const Request& r, int candidate, int field, const FieldValue& v) {
  const FieldInfo& info = m.fields[field];
  if (info.kind == FieldKind::kSparse) {
    int64_t row;
    if (!MapId(m.tables[m.field_specs[field].table], v.id, &row))
      return InvalidArgument(Prefix(r) + Where(candidate) + "field '" + info.name + "': id " + std::to_string(v.id) +
                             " out of range [0, " + std::to_string(info.vocab) + ")");
    return Status::Ok();
  }
  if (v.dense.size() != static_cast<size_t>(info.width))
    return InvalidArgument(Prefix(r) + Where(candidate) + "dense field '" + info.name + "': " + std::to_string(v.dense.size()) +
                           " values, expected " + std::to_string(info.width));
  for (size_t i = 0; i < v.dense.size(); ++i)
    if (!std::isfinite(v.dense[i]))
      return InvalidArgument(Prefix(r) + Where(candidate) + "dense field '" + info.name + "': value " + std::to_string(i) +
                             " is not finite");
  return Status::Ok();
}

Status CheckGroup(const Model::Impl& m, const Request& r, FieldGroup g, const char* name,
                  const std::vector<FieldValue>& values, int candidate) {
  const std::vector<int>& fields = m.group_fields[static_cast<int>(g)];
  if (values.size() != fields.size())
    return InvalidArgument(Prefix(r) + Where(candidate) + std::to_string(values.size()) + " " + name + " values, the model has " +
                           std::to_string(fields.size()) + " " + name + " fields");
  for (size_t s = 0; s < fields.size(); ++s) DTRN_RETURN_IF_ERROR(CheckValue(m, r, candidate, fields[s], values[s]));
  return Status::Ok();
}

}  // namespace

Status CheckRequestContext(const Model::Impl& m, const Request& r) {
  DTRN_RETURN_IF_ERROR(CheckGroup(m, r, FieldGroup::kUser, "user", r.user, -1));
  DTRN_RETURN_IF_ERROR(CheckGroup(m, r, FieldGroup::kContext, "context", r.context, -1));
  if (r.behaviors.size() != static_cast<size_t>(m.B))
    return InvalidArgument(Prefix(r) + std::to_string(r.behaviors.size()) + " behaviour sequences, the model has " +
                           std::to_string(m.B));
  const TableSpec& items = m.tables[m.item_table];
  for (int b = 0; b < m.B; ++b) {
    const std::vector<int64_t>& seq = r.behaviors[b];
    for (size_t j = FirstKept(seq.size(), m.L); j < seq.size(); ++j) {
      int64_t row;
      if (!MapId(items, seq[j], &row))
        return InvalidArgument(Prefix(r) + "behaviour '" + m.behaviors[b] + "' position " + std::to_string(j) +
                               ": item id " + std::to_string(seq[j]) + " out of range [0, " +
                               std::to_string(items.vocab) + ")");
    }
  }
  if (r.candidates.empty()) return InvalidArgument(Prefix(r) + "no candidates (need at least one)");
  if (!r.weights.empty() && r.weights.size() != static_cast<size_t>(m.K))
    return InvalidArgument(Prefix(r) + "weights: " + std::to_string(r.weights.size()) +
                           " values, expected one per task (" + std::to_string(m.K) + ")");
  for (size_t k = 0; k < r.weights.size(); ++k)
    if (!std::isfinite(r.weights[k]))
      return InvalidArgument(Prefix(r) + "weights[" + std::to_string(k) + "] (task '" + m.tasks[k] +
                             "') is not finite");
  return Status::Ok();
}

Status CheckCandidates(const Model::Impl& m, const Request& r) {
  if (r.candidates.empty()) return InvalidArgument(Prefix(r) + "no candidates (need at least one)");
  for (size_t i = 0; i < r.candidates.size(); ++i)
    DTRN_RETURN_IF_ERROR(
        CheckGroup(m, r, FieldGroup::kItem, "item", r.candidates[i], static_cast<int>(i)));
  return Status::Ok();
}

}  // namespace dtrn
