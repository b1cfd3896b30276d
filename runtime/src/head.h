// The multi-task head (spec "Multi-task head") over each task's bottom representation
// r_k = concat_i(a_{k,i} · x_i), i over the F fields and the B interests:
//   towers: p_k = sigmoid(Tower_k(r_k))
//   mmoe:   g_k = softmax(W_g,k r_k + c_g,k),  o_k = Σ_e g_{k,e} Expert_e(r_k),  p_k = sigmoid(Tower_k(o_k))
//   ple:    the same, task k's gate over its own experts then the shared ones
// Which experts a gate weighs, in which order, is read from the file (GateSpec::experts).
// The first layer of every expert, gate and `towers` tower runs split (the spec's exact
// rewrite, split_dense.h): W·r_k + c = c + W_rest·r_rest + Σ_{i ∈ user, context} a_{k,i} (W_i x_i),
// with W_i x_i computed once per request (PrepareRequest).
#pragma once

#include <memory>
#include <vector>

#include "buffer.h"
#include "dense.h"
#include "embed.h"
#include "model_impl.h"
#include "split_dense.h"
#include "tim.h"
#include "trm.h"

namespace dtrn {

class MultiTaskHead {
 public:
  // observer != null: every layer runs whole (calibration sees each Linear's full input).
  static Result<std::unique_ptr<MultiTaskHead>> Create(const ModelView& m, WeightCache* cache, bool observed);

  // Per request: the user/context products W_i x_i of every split first layer.
  void PrepareRequest(const FieldEmbeddings& emb);
  // Uses `prepared`'s per-request products (another worker's head for the same model).
  void ShareRequest(const MultiTaskHead& prepared);
  // Logits [T, K] (row c, task k at c * K + k) of the last tile.
  Status Run(size_t T, const FieldEmbeddings& emb, const Tim& tim, const Trm& trm, const Exec& x, float* logits);

 private:
  // One MLP on r_k rows: its first layer split when it can be, else whole on r. An expert
  // whose last layer is INT8 keeps that layer apart: its epilogue adds g_{k,e} · y into
  // o_k directly (the mix), with no pass over the expert's output.
  struct Mlp {
    std::unique_ptr<SplitDense> split;
    std::unique_ptr<DenseChain> rest;  // the layers after the split one, but `last` (may be empty)
    std::unique_ptr<DenseChain> full;
    std::unique_ptr<Int8Linear> last;  // experts only: the INT8 last layer (after split or rest)
    const LinearSpec* last_spec = nullptr;
    bool is_expert = false;
    bool mixes() const { return last != nullptr || (split && split->int8() && !rest && is_expert); }
  };
  // Which tasks' rows an expert runs on, and where each task's gate weighs it.
  struct ExpertUse {
    int task;
    int slot;  // gate output index
  };
  explicit MultiTaskHead(const ModelView& m) : m_(m) {}
  Result<Mlp> MakeMlp(const std::vector<const LinearSpec*>& layers, WeightCache* cache, bool observed, bool expert);
  Status BuildInputs(size_t T, const FieldEmbeddings& emb, const Tim& tim, const Trm& trm);
  // The MLP on rows [row0, row0 + rows) of the K x T stack of r_k. mix (mixing experts):
  // out[r] += mix[r * ldmix] · MLP(r).
  Status RunMlp(Mlp& mlp, size_t row0, size_t rows, float* out, const Exec& x, const float* mix = nullptr,
                size_t ldmix = 0);

  const ModelView& m_;
  size_t d_ = 0, K_ = 0, n_ = 0, D_ = 0, n_uc_ = 0, D_rest_ = 0, tile_ = 0;
  std::vector<bool> is_uc_;     // per r_k field: user/context (constant per request)
  std::vector<int> uc_slot_;    // its row in the per-request embedding block
  std::vector<int> item_slot_;  // per r_k field: its item slot (item fields), else -1
  bool need_full_r_ = false;    // some MLP runs unsplit
  std::vector<Mlp> experts_, gates_, towers_;
  std::vector<std::vector<ExpertUse>> expert_uses_;  // per expert, from the gates' lists

  Buffer<float> r_;          // [K, T, D]         (only when some MLP runs unsplit)
  Buffer<float> r_rest_;     // [K, T, D_rest]    item and interest columns of r_k
  Buffer<float> r_int_;      // [K, T, B·d]       the interest columns of r_k (INT8 split layers)
  Buffer<float> a_item_;     // [K, T, n_item]    TRM weights of the item fields
  QuantizedRows q_int_;      // r_int quantized once for every INT8 split layer
  QuantizedRows q_items_;    // the tile's item embeddings, per (slot, candidate) row
  bool int8_split_ = false;  // some split layer is INT8 (item products shared)
  bool f32_split_ = false;   // some split layer is F32 (reads r_rest)
  size_t n_item_ = 0;
  uint64_t epoch_ = 0;  // tiles run, for the split layers' per-tile products
  Buffer<float> a_uc_;  // [K, T, n_uc]      TRM weights of the user/context fields
  Buffer<float> split_out_, expert_hidden_;
  Buffer<float> gate_, mix_, expert_out_, tower_out_;  // g [K, T, E_k], o [K, T, h], y, logit [T]
};

}  // namespace dtrn
