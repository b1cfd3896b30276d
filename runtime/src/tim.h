// TIM, the task-specific interest module (spec "TIM"): for every task k and behaviour b,
// the conditional transformer over b's sequence and the interest u_{k,b} pooled from it.
//   X_b[j]  = E_item[seq_b[j]] + Σ_{f ∈ seq_fields} E_f[seq_{b,f}[j]] + P[age(j)]   [l_b, d]
//   H       = CLN1_{k,b}(X + MHA(X)),  H' = CLN2_{k,b}(H + FFN(H))              per block
//   target: q = W_q e(candidate) + c_q, α = softmax(q · H'ᵀ / sqrt(d)), u_{k,b} = α H'
//   mean:   u_{k,b} = mean_j H'_j;  an empty sequence gives u_{k,b} = 0
// The (γ, β) of each CLN come from the hypernetwork, folded by the converter. Prepare runs
// once per request; Pool once per candidate tile. Rows are laid out (task k, behaviour b,
// position j) with only the l_b valid positions present, so there is no mask and no
// all-masked softmax. Block 0's attention does not depend on k (post-LN): it runs once per b.
#pragma once

#include <memory>
#include <vector>

#include "buffer.h"
#include "dense.h"
#include "embed.h"
#include "model_impl.h"
#include "request_check.h"

namespace dtrn {

class Tim {
 public:
  static Result<std::unique_ptr<Tim>> Create(const ModelView& m, WeightCache* cache);

  // H'_{k,b} of the request's sequences (and, for mean pooling, every u_{k,b}).
  Status Prepare(const MappedContext& ctx, const Exec& x);
  // Target pooling: u_{k,b} for the T candidates of emb's last tile.
  Status Pool(size_t T, const FieldEmbeddings& emb, const Exec& x);
  // Pools against `prepared`'s request (another worker's Tim, same model) from now on.
  void ShareRequest(const Tim& prepared);
  // u_{k,b} [d] of candidate c of the last tile (mean pooling: the same for every c).
  const float* Interest(int k, size_t c, int b) const {
    if (mean_) return req_->umean.data() + (static_cast<size_t>(k) * B_ + b) * d_;
    return interest_.data() + ((k * tile_ + c) * B_ + b) * d_;
  }

 private:
  explicit Tim(const ModelView& m) : m_(m) {}
  Status EmbedSequences(const MappedContext& ctx);
  Status RunBlocks(const Exec& x);
  Status PreparePooling();
  // First row of (task k, behaviour b) in the K x positions stack.
  size_t Segment(size_t k, size_t b) const { return k * req_->positions + req_->seq_offset[b]; }

  const ModelView& m_;
  size_t d_ = 0, K_ = 0, B_ = 0;
  bool mean_ = false;
  struct BlockOps {
    std::unique_ptr<DenseChain> in, out, ffn;  // QKV projection, output projection, FFN1 -> FFN2
  };
  std::vector<BlockOps> blocks_;
  std::unique_ptr<DenseChain> query_;  // target pooling: W_q

  // Per request; sharing workers read it through req_.
  struct Prepared {
    std::vector<size_t> seq_len, seq_offset;
    size_t positions = 0, max_len = 0;
    Buffer<float> hout;    // [K, positions, d]: H' of the last block
    Buffer<float> hout_t;  // per (k, b) segment: H'ᵀ [d, l_b] (target pooling)
    Buffer<float> umean;   // [K, B, d] (mean pooling)
  };
  Prepared own_;
  const Prepared* req_ = &own_;
  Buffer<float> x_;     // [positions, d]: X_b, shared by every task
  Buffer<float> side_;  // [d]: one side-id embedding (seq_fields)
  Buffer<float> qkv_, att_, proj_, h_, ffn_, attn_scratch_;
  // Per tile.
  size_t tile_ = 0;
  Buffer<float> qin_, q_, scores_;
  Buffer<float> interest_;  // [K, T, B, d]
};

}  // namespace dtrn
