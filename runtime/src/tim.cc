#include "tim.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"

namespace dtrn {

Result<std::unique_ptr<Tim>> Tim::Create(const ModelView& m, WeightCache* cache) {
  std::unique_ptr<Tim> t(new Tim(m));
  t->d_ = m.d;
  t->K_ = m.K;
  t->B_ = m.B;
  t->mean_ = m.pooling == Pooling::Mean;
  for (const BlockSpec& bs : m.tim_blocks) {
    BlockOps ops;
    DTRN_ASSIGN_OR_RETURN(ops.in, DenseChain::Create({&bs.attn_in}, cache));
    DTRN_ASSIGN_OR_RETURN(ops.out, DenseChain::Create({&bs.attn_out}, cache));
    DTRN_ASSIGN_OR_RETURN(ops.ffn, DenseChain::Create({&bs.ffn1, &bs.ffn2}, cache));
    t->blocks_.push_back(std::move(ops));
  }
  if (!t->mean_) {
    DTRN_ASSIGN_OR_RETURN(t->query_, DenseChain::Create({&m.query}, cache));
  }
  t->own_.seq_len.assign(m.B, 0);
  t->own_.seq_offset.assign(m.B, 0);
  return t;
}

void Tim::ShareRequest(const Tim& prepared) { req_ = prepared.req_; }

Status Tim::Prepare(const MappedContext& ctx, const Exec& x) {
  req_ = &own_;
  DTRN_RETURN_IF_ERROR(EmbedSequences(ctx));
  DTRN_RETURN_IF_ERROR(RunBlocks(x));
  return PreparePooling();
}

// X_b[j] = E_item[seq_b[j]] + Σ_f E_f[seq_{b,f}[j]] + P[age(j)], the kept ids oldest first,
// age 0 = the most recent.
Status Tim::EmbedSequences(const MappedContext& ctx) {
  own_.positions = ctx.positions;
  own_.max_len = 0;
  for (size_t b = 0; b < B_; ++b) {
    own_.seq_len[b] = ctx.seq_len[b];
    own_.seq_offset[b] = ctx.seq_offset[b];
    own_.max_len = std::max(own_.max_len, own_.seq_len[b]);
  }
  float* xs = x_.Reserve(own_.positions * d_);
  if (xs == nullptr) return OutOfMemory("TIM sequence input");
  const TableSpec& items = m_.tables[m_.item_table];
  const size_t S = m_.seq_fields.size();
  float* side = side_.Reserve(d_);
  if (side == nullptr) return OutOfMemory("TIM sequence input");
  for (size_t b = 0; b < B_; ++b) {
    const size_t l = own_.seq_len[b];
    for (size_t j = 0; j < l; ++j) {
      const size_t p = own_.seq_offset[b] + j;
      float* row = xs + p * d_;
      GatherRow(items, ctx.seq_rows[p], d_, row);
      for (size_t f = 0; f < S; ++f) {
        GatherRow(m_.tables[m_.field_specs[m_.seq_fields[f]].table], ctx.side_rows[f * own_.positions + p], d_, side);
        kernels::Axpy(d_, 1.f, side, row);
      }
      kernels::Axpy(d_, 1.f, m_.positions + (l - 1 - j) * d_, row);
    }
  }
  return Status::Ok();
}

// Post-LN blocks. Block 0's input X is the same for every task, so its attention
// (in_proj, attention, out_proj) runs once over the B sequences; only the CLNs differ.
Status Tim::RunBlocks(const Exec& x) {
  const size_t rows_all = K_ * own_.positions;
  float* hc = own_.hout.Reserve(rows_all * d_);
  if (hc == nullptr) return OutOfMemory("TIM H'");
  if (own_.positions == 0) return Status::Ok();
  if (m_.blocks == 0) {
    for (size_t k = 0; k < K_; ++k)
      std::memcpy(hc + k * own_.positions * d_, x_.data(), own_.positions * d_ * sizeof(float));
    return Status::Ok();
  }
  float* as = attn_scratch_.Reserve(kernels::AttentionScratch(own_.max_len, d_, m_.heads));
  float* hs = h_.Reserve(rows_all * d_);
  float* fs = ffn_.Reserve(rows_all * d_);
  if (as == nullptr || hs == nullptr || fs == nullptr) return OutOfMemory("TIM activations");
  for (int i = 0; i < m_.blocks; ++i) {
    const bool shared = i == 0;
    const size_t rows = shared ? own_.positions : rows_all;
    const size_t tasks = shared ? 1 : K_;
    const float* xin = shared ? x_.data() : hc;
    float* qs = qkv_.Reserve(rows * 3 * d_);
    float* at = att_.Reserve(rows * d_);
    float* pr = proj_.Reserve(rows * d_);
    if (qs == nullptr || at == nullptr || pr == nullptr) return OutOfMemory("TIM attention");
    DTRN_RETURN_IF_ERROR(blocks_[i].in->Run(rows, xin, qs, x));
    for (size_t k = 0; k < tasks; ++k)
      for (size_t b = 0; b < B_; ++b) {
        if (own_.seq_len[b] == 0) continue;
        const size_t o = Segment(k, b);
        kernels::SelfAttention(qs + o * 3 * d_, 3 * d_, own_.seq_len[b], d_, m_.heads, at + o * d_, d_, as);
      }
    DTRN_RETURN_IF_ERROR(blocks_[i].out->Run(rows, at, pr, x));
    // H = CLN1_{k,b}(X + MHA(X)); for block 0 every task reads the shared rows.
    for (size_t k = 0; k < K_; ++k)
      for (size_t b = 0; b < B_; ++b) {
        if (own_.seq_len[b] == 0) continue;
        const size_t src = shared ? own_.seq_offset[b] : Segment(k, b);
        const size_t dst = Segment(k, b);
        kernels::AddLayerNorm(xin + src * d_, pr + src * d_, own_.seq_len[b], d_, m_.gamma(k, b, 2 * i),
                              m_.beta(k, b, 2 * i), hs + dst * d_);
      }
    // H' = CLN2_{k,b}(H + FFN(H)), all tasks batched.
    DTRN_RETURN_IF_ERROR(blocks_[i].ffn->Run(rows_all, hs, fs, x));
    for (size_t k = 0; k < K_; ++k)
      for (size_t b = 0; b < B_; ++b) {
        if (own_.seq_len[b] == 0) continue;
        const size_t o = Segment(k, b);
        kernels::AddLayerNorm(hs + o * d_, fs + o * d_, own_.seq_len[b], d_, m_.gamma(k, b, 2 * i + 1),
                              m_.beta(k, b, 2 * i + 1), hc + o * d_);
      }
  }
  return Status::Ok();
}

Status Tim::PreparePooling() {
  const float* hc = own_.hout.data();
  if (mean_) {
    float* um = own_.umean.Reserve(K_ * B_ * d_);
    if (um == nullptr) return OutOfMemory("TIM mean pooling");
    for (size_t k = 0; k < K_; ++k)
      for (size_t b = 0; b < B_; ++b) {
        float* u = um + (k * B_ + b) * d_;
        std::memset(u, 0, d_ * sizeof(float));
        const size_t l = own_.seq_len[b];
        if (l == 0) continue;  // an empty sequence's interest is exactly zero
        const size_t o = Segment(k, b);
        for (size_t j = 0; j < l; ++j) kernels::Axpy(d_, 1.f, hc + (o + j) * d_, u);
        const float inv = 1.f / static_cast<float>(l);
        for (size_t c = 0; c < d_; ++c) u[c] *= inv;
      }
    return Status::Ok();
  }
  // Target pooling multiplies every candidate's query by H'ᵀ: transpose once here.
  float* hts = own_.hout_t.Reserve(K_ * own_.positions * d_);
  if (hts == nullptr) return OutOfMemory("TIM H'ᵀ");
  for (size_t k = 0; k < K_; ++k)
    for (size_t b = 0; b < B_; ++b) {
      if (own_.seq_len[b] == 0) continue;
      const size_t o = Segment(k, b);
      kernels::Transpose(own_.seq_len[b], d_, hc + o * d_, d_, hts + o * d_, own_.seq_len[b]);
    }
  return Status::Ok();
}

// q = W_q e + c_q with e = e_item_id + Σ_{f ∈ seq_fields} e_f; α = softmax(q·H'ᵀ/sqrt(d))
// over the valid positions; u = α·H'. An empty sequence gives u = 0.
Status Tim::Pool(size_t T, const FieldEmbeddings& emb, const Exec& x) {
  tile_ = T;
  if (mean_) return Status::Ok();
  float* qi = qin_.Reserve(T * d_);
  float* qs = q_.Reserve(T * d_);
  float* ss = scores_.Reserve(T * std::max<size_t>(req_->max_len, 1));
  float* us = interest_.Reserve(K_ * T * B_ * d_);
  if (qi == nullptr || qs == nullptr || ss == nullptr || us == nullptr) return OutOfMemory("target attention");
  for (size_t c = 0; c < T; ++c) {
    std::memcpy(qi + c * d_, emb.ItemId(c), d_ * sizeof(float));
    for (int f : m_.seq_fields) kernels::Axpy(d_, 1.f, emb.Field(f, c), qi + c * d_);
  }
  DTRN_RETURN_IF_ERROR(query_->Run(T, qi, qs, x));
  const float scale = 1.f / std::sqrt(static_cast<float>(d_));
  for (size_t k = 0; k < K_; ++k)
    for (size_t b = 0; b < B_; ++b) {
      float* u = us + (k * T * B_ + b) * d_;  // row c at u + c * B * d
      const size_t l = req_->seq_len[b];
      if (l == 0) {
        for (size_t c = 0; c < T; ++c) std::memset(u + c * B_ * d_, 0, d_ * sizeof(float));
        continue;
      }
      const size_t o = Segment(k, b);
      kernels::TargetAttention(T, qs, d_, scale, req_->hout_t.data() + o * d_, req_->hout.data() + o * d_, l, d_, u,
                               B_ * d_, ss);
    }
  return Status::Ok();
}

}  // namespace dtrn
