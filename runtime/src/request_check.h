// Request validation against a model: counts, ids (hashed or range-checked), dense widths
// and finiteness, weights, sequence side ids. Every id is checked and mapped to its table
// row here, once; the components read only the mapped rows. Every error names the
// request, and the candidate, behaviour or field at fault.
#pragma once

#include <cstdint>
#include <vector>

#include "dtrn/runtime.h"
#include "model_impl.h"

namespace dtrn {

// The user-side part of a request, mapped (Session::Prepare).
struct MappedContext {
  std::vector<int64_t> uc_rows;    // [Fu + Fc] by uc slot (user fields, then context): sparse rows
  std::vector<size_t> seq_len;     // [B]: kept positions l_b (the most recent L)
  std::vector<size_t> seq_offset;  // [B]: Σ_{b' < b} l_b', the first position of b in seq_rows
  size_t positions = 0;            // Σ_b l_b
  std::vector<int64_t> seq_rows;   // [positions]: E_item rows of the kept ids, b-major, oldest first
  // [seq_fields][positions]: rows of the events' side ids, each in its own field's table.
  std::vector<int64_t> side_rows;
};

// The candidates of a request, mapped (Session::ScoreCandidates).
struct MappedCandidates {
  size_t n = 0;
  std::vector<int64_t> rows;  // [N, Fi]: sparse item fields' rows by group slot (dense slots unused)
};

// The uc slot of field i (user or context): its row in the per-request embedding block.
inline int UcSlot(const ModelView& m, int i) {
  const FieldSpec& fs = m.field_specs[i];
  return m.fields[i].group == FieldGroup::kUser ? fs.group_slot
                                                : static_cast<int>(m.group_fields[0].size()) + fs.group_slot;
}

// Everything but the candidates: user and context values, behaviours and their side ids,
// weights.
Status CheckContext(const ModelView& m, const Request& r, MappedContext* out);
// N >= 1 and every candidate's item values.
Status CheckCandidates(const ModelView& m, const Request& r, MappedCandidates* out);

}  // namespace dtrn
