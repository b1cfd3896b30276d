// Ids to table rows (spec "Inputs"): a hashed table maps splitmix64(id) mod V, an
// un-hashed one takes the id itself if it lies in [0, V). Request validation calls this
// once per id (request_check.h); everything after reads the mapped rows.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dtrn/runtime.h"  // SplitMix64

namespace dtrn {

// Row of `id` in a table of `vocab` rows; false when an un-hashed id lies outside [0, vocab).
inline bool MapId(int64_t vocab, bool hashed, int64_t id, int64_t* row) {
  if (hashed) {
    *row = static_cast<int64_t>(SplitMix64(static_cast<uint64_t>(id)) % static_cast<uint64_t>(vocab));
    return true;
  }
  if (id < 0 || id >= vocab) return false;
  *row = id;
  return true;
}

// The first kept index of a behaviour sequence of `len` ids: the most recent L are kept.
inline size_t FirstKept(size_t len, int L) { return len > static_cast<size_t>(L) ? len - L : 0; }

}  // namespace dtrn
