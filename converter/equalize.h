// Exact power-of-two rescaling of field embeddings, so that one per-tensor int8 scale
// fits the whole TRM input and r_k = concat_i(a_i · x_i). A field f whose values are
// only read by the TRM squeeze and by the first layer on r_k (experts, gates, towers
// for `towers`) can be stored multiplied by 2^e when those readers' weight columns for f
// are multiplied by 2^-e: every product is unchanged, and with powers of two bit for bit.
// item_id's table (it also feeds the transformer and the query) and the interest
// vectors keep e = 0. The exponents minimise an estimate of the readers' int8 noise
// (input rounding on one per-tensor range vs per-row weight rounding, which scaling
// shifts between the two), by coordinate descent. Without this, a dense field of range
// ±30 next to embeddings of range ±3 would leave the embeddings a few int8 steps.
#pragma once

#include <string>
#include <vector>

#include "calibration.h"
#include "model_desc.h"

namespace dtrn::convert {

struct FieldScaling {
  std::vector<int> exponent;                 // per config field: x_f is stored times 2^exponent
  double error_before = 0, error_after = 0;  // estimated relative noise power, summed over readers
  bool any() const;
  std::string Describe(const ModelConfig& c) const;  // e.g. "user_profile 2^-3, hour 2^1"
};

// From pass-1 calibration of the model's readers of r_k (per-column max |x|).
FieldScaling ChooseFieldScaling(const ModelDesc& m, const Calibration& cal);

// Rewrites tables, dense projections and the readers' weight columns. Fails on overflow.
Status ApplyFieldScaling(ModelDesc* m, const FieldScaling& s);

}  // namespace dtrn::convert
