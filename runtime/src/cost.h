// The multiply-accumulates a session performs for one request, counted the way the
// components run them (block 0's attention once per behaviour, the split first layers'
// per-request products, a task's own experts on its rows only), by precision. dtrn-bench
// divides by the measured peaks to give the floor a request could reach on this core.
#pragma once

#include <cstddef>
#include <vector>

#include "model_impl.h"

namespace dtrn {

struct MacCount {
  double int8 = 0, f32 = 0;
  double total() const { return int8 + f32; }
};

struct RequestCost {
  MacCount user;        // Prepare: once per request
  MacCount candidates;  // ScoreCandidates: all N candidates
};

// seq_len: the kept length of each behaviour sequence; split: the head's first layers run
// split (every session but one with an ActivationObserver).
RequestCost CountMacs(const ModelView& m, const std::vector<size_t>& seq_len, size_t N, bool split = true);

}  // namespace dtrn
