// Request validation against a model: counts, ids (hashed or range-checked), dense
// widths and finiteness, weights. Every error names the request, and the candidate,
// behaviour or field at fault.
#pragma once

#include "dtrn/runtime.h"
#include "model_impl.h"

namespace dtrn {

// Row of `id` in table t: splitmix64(id) mod V for a hashed table, else id itself.
// False when an un-hashed id lies outside [0, V).
inline bool MapId(const TableSpec& t, int64_t id, int64_t* row) {
  if (t.hashed) {
    *row = static_cast<int64_t>(SplitMix64(static_cast<uint64_t>(id)) % static_cast<uint64_t>(t.vocab));
    return true;
  }
  if (id < 0 || id >= t.vocab) return false;
  *row = id;
  return true;
}

// The first kept index of a behaviour sequence of `len` ids: the most recent L are kept.
inline size_t FirstKept(size_t len, int L) { return len > static_cast<size_t>(L) ? len - L : 0; }

// Everything but the candidates: user and context values, behaviours, weights, N >= 1.
Status CheckRequestContext(const Model::Impl& m, const Request& r);
// Every candidate's item values.
Status CheckCandidates(const Model::Impl& m, const Request& r);

}  // namespace dtrn
