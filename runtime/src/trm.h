// TRM, the task-specific representation refinement module (spec "TRM"), one per task k,
// SENet-like, per candidate:
//   z   = (mean x_1, ..., mean x_F, mean u_{k,1}, ..., mean u_{k,B})            [n]
//   a_k = 2 · sigmoid(W_e2,k · relu(W_e1,k · z + c_e1,k) + c_e2,k)                [n]
// The head re-weights the fields with a_k (r_k = concat_i a_{k,i} · x_i); how it does that
// (the split first layers) is the head's business, not TRM's.
#pragma once

#include <memory>
#include <vector>

#include "buffer.h"
#include "dense.h"
#include "embed.h"
#include "model_impl.h"
#include "tim.h"

namespace dtrn {

class Trm {
 public:
  static Result<std::unique_ptr<Trm>> Create(const ModelView& m, WeightCache* cache);

  // a_k for every task and the T candidates of the last tile.
  Status Run(size_t T, const FieldEmbeddings& emb, const Tim& tim, const Exec& x);
  // a_{k, 0..n} of candidate c of the last tile.
  const float* Weights(int k, size_t c) const { return a_.data() + (static_cast<size_t>(k) * tile_ + c) * n_; }

 private:
  explicit Trm(const ModelView& m) : m_(m) {}
  const ModelView& m_;
  size_t d_ = 0, K_ = 0, B_ = 0, F_ = 0, n_ = 0, tile_ = 0;
  std::vector<std::unique_ptr<DenseChain>> excitation_;  // per task: fc1 -> relu -> fc2
  Buffer<float> z_;                                      // [T, n] (one task at a time)
  Buffer<float> logits_;                                 // [T, n]
  Buffer<float> a_;                                      // [K, T, n]
};

}  // namespace dtrn
