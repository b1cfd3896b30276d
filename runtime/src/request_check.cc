#include "request_check.h"

#include <cmath>

#include "hashing.h"

namespace dtrn {
namespace {

std::string Prefix(const Request& r) { return "request '" + r.id + "': "; }

// Built only on error: the hot path allocates nothing.
std::string Where(int candidate) {
  return candidate < 0 ? std::string() : "candidate " + std::to_string(candidate) + ": ";
}

// Checks one value of field `field`; a sparse id's row goes to *row.
Status CheckValue(const ModelView& m, const Request& r, int candidate, int field, const FieldValue& v, int64_t* row) {
  const FieldInfo& info = m.fields[field];
  if (info.kind == FieldKind::kSparse) {
    if (!MapId(info.vocab, info.hashed, v.id, row))
      return InvalidArgument(Prefix(r) + Where(candidate) + "field '" + info.name + "': id " + std::to_string(v.id) +
                             " out of range [0, " + std::to_string(info.vocab) + ")");
    return Status::Ok();
  }
  if (v.dense.size() != static_cast<size_t>(info.width))
    return InvalidArgument(Prefix(r) + Where(candidate) + "dense field '" + info.name +
                           "': " + std::to_string(v.dense.size()) + " values, expected " + std::to_string(info.width));
  for (size_t i = 0; i < v.dense.size(); ++i)
    if (!std::isfinite(v.dense[i]))
      return InvalidArgument(Prefix(r) + Where(candidate) + "dense field '" + info.name + "': value " +
                             std::to_string(i) + " is not finite");
  return Status::Ok();
}

// A group's values; rows[s] receives slot s's row.
Status CheckGroup(const ModelView& m, const Request& r, FieldGroup g, const char* name,
                  const std::vector<FieldValue>& values, int candidate, int64_t* rows) {
  const std::vector<int>& fields = m.group_fields[static_cast<int>(g)];
  if (values.size() != fields.size())
    return InvalidArgument(Prefix(r) + Where(candidate) + std::to_string(values.size()) + " " + name +
                           " values, the model has " + std::to_string(fields.size()) + " " + name + " fields");
  for (size_t s = 0; s < fields.size(); ++s)
    DTRN_RETURN_IF_ERROR(CheckValue(m, r, candidate, fields[s], values[s], &rows[s]));
  return Status::Ok();
}

// Maps the kept ids of one sequence (ids[first, first + l)) into rows[0, l).
Status MapSequence(const Request& r, const std::string& behavior, const FieldInfo& field, const char* what,
                   const std::vector<int64_t>& ids, size_t first, size_t l, int64_t* rows) {
  for (size_t j = 0; j < l; ++j)
    if (!MapId(field.vocab, field.hashed, ids[first + j], &rows[j]))
      return InvalidArgument(Prefix(r) + "behaviour '" + behavior + "' position " + std::to_string(first + j) + ": " +
                             what + " " + std::to_string(ids[first + j]) + " out of range [0, " +
                             std::to_string(field.vocab) + ")");
  return Status::Ok();
}

}  // namespace

Status CheckContext(const ModelView& m, const Request& r, MappedContext* out) {
  const size_t Fu = m.group_fields[0].size(), Fc = m.group_fields[1].size();
  out->uc_rows.resize(Fu + Fc);
  DTRN_RETURN_IF_ERROR(CheckGroup(m, r, FieldGroup::kUser, "user", r.user, -1, out->uc_rows.data()));
  DTRN_RETURN_IF_ERROR(CheckGroup(m, r, FieldGroup::kContext, "context", r.context, -1, out->uc_rows.data() + Fu));
  if (r.behaviors.size() != static_cast<size_t>(m.B))
    return InvalidArgument(Prefix(r) + std::to_string(r.behaviors.size()) + " behaviour sequences, the model has " +
                           std::to_string(m.B));
  const size_t S = m.seq_fields.size();
  if (S == 0 && !r.behavior_side_ids.empty())
    return InvalidArgument(Prefix(r) + "behaviour side ids given, but the model has no seq_fields");
  if (S > 0 && r.behavior_side_ids.size() != static_cast<size_t>(m.B))
    return InvalidArgument(Prefix(r) + std::to_string(r.behavior_side_ids.size()) +
                           " behaviour side-id lists, the model has " + std::to_string(m.B) + " behaviours with " +
                           std::to_string(S) + " seq_fields");
  out->seq_len.resize(m.B);
  out->seq_offset.resize(m.B);
  size_t total = 0;
  for (int b = 0; b < m.B; ++b) {
    const size_t len = r.behaviors[b].size();
    if (S > 0) {
      if (r.behavior_side_ids[b].size() != S)
        return InvalidArgument(Prefix(r) + "behaviour '" + m.behaviors[b] +
                               "': " + std::to_string(r.behavior_side_ids[b].size()) +
                               " side-id lists, expected one per " + "seq_field (" + std::to_string(S) + ")");
      for (size_t f = 0; f < S; ++f)
        if (r.behavior_side_ids[b][f].size() != len)
          return InvalidArgument(Prefix(r) + "behaviour '" + m.behaviors[b] + "': " + m.fields[m.seq_fields[f]].name +
                                 " has " + std::to_string(r.behavior_side_ids[b][f].size()) + " ids, item_id has " +
                                 std::to_string(len));
    }
    out->seq_offset[b] = total;
    out->seq_len[b] = len - FirstKept(len, m.L);
    total += out->seq_len[b];
  }
  out->positions = total;
  out->seq_rows.resize(total);
  out->side_rows.resize(S * total);
  const FieldInfo& item = m.fields[m.item_field];
  for (int b = 0; b < m.B; ++b) {
    const std::vector<int64_t>& seq = r.behaviors[b];
    const size_t first = FirstKept(seq.size(), m.L), l = out->seq_len[b], o = out->seq_offset[b];
    DTRN_RETURN_IF_ERROR(MapSequence(r, m.behaviors[b], item, "item id", seq, first, l, out->seq_rows.data() + o));
    for (size_t f = 0; f < S; ++f) {
      const FieldInfo& side = m.fields[m.seq_fields[f]];
      DTRN_RETURN_IF_ERROR(MapSequence(r, m.behaviors[b], side, (side.name + " id").c_str(), r.behavior_side_ids[b][f],
                                       first, l, out->side_rows.data() + f * total + o));
    }
  }
  if (!r.weights.empty() && r.weights.size() != static_cast<size_t>(m.K))
    return InvalidArgument(Prefix(r) + "weights: " + std::to_string(r.weights.size()) +
                           " values, expected one per task (" + std::to_string(m.K) + ")");
  for (size_t k = 0; k < r.weights.size(); ++k)
    if (!std::isfinite(r.weights[k]))
      return InvalidArgument(Prefix(r) + "weights[" + std::to_string(k) + "] (task '" + m.tasks[k] +
                             "') is not finite");
  return Status::Ok();
}

Status CheckCandidates(const ModelView& m, const Request& r, MappedCandidates* out) {
  if (r.candidates.empty()) return InvalidArgument(Prefix(r) + "no candidates (need at least one)");
  const size_t Fi = m.group_fields[2].size();
  out->n = r.candidates.size();
  out->rows.resize(out->n * Fi);
  for (size_t i = 0; i < r.candidates.size(); ++i)
    DTRN_RETURN_IF_ERROR(
        CheckGroup(m, r, FieldGroup::kItem, "item", r.candidates[i], static_cast<int>(i), out->rows.data() + i * Fi));
  return Status::Ok();
}

}  // namespace dtrn
