// Session: the DTRN graph (spec: shared/spec/dtrn-model.md), in two stages.
//   Prepare:          user/context embeddings, sequence inputs, the conditional
//                     transformer for every (task, behaviour), mean pooling.
//   ScoreCandidates:  item embeddings, target attention, TRM, the multi-task head.
// Activations are row-major; the transformer's rows are laid out (task k, behaviour b,
// position j) with only the l_b valid positions of each sequence present, so no mask
// and no all-masked softmax ever arise.
#include <xnnpack.h>

#include <cmath>
#include <cstring>
#include <new>

#include "dense.h"
#include "kernels.h"
#include "model_impl.h"
#include "request_check.h"
#include "split_dense.h"

namespace dtrn {

namespace k = kernels;

struct Session::Impl {
  Impl(std::shared_ptr<const Model> model_ref, const SessionOptions& o)
      : model(std::move(model_ref)), m(model->impl()), opts(o) {}
  ~Impl() {
    if (pool) pthreadpool_destroy(pool);
  }

  Status Init();
  Status Prepare(const Request& r);
  Status ScoreCandidates(const Request& r, Scores* out);

  // Stage-1 pieces.
  Status EmbedUserContext(const Request& r);
  Status EmbedSequences(const Request& r);
  Status RunTransformer();
  void PreparePooling();
  // Stage-2 pieces.
  Status EmbedItems(const Request& r, size_t N);
  Status PoolInterests(size_t N);
  Status RunTrm(size_t N);
  Status RunHead(size_t N, Scores* out);

  // A head MLP on r_k rows [row0, row0 + rows) of the K x N stack: its first layer split
  // (the exact rewrite) when SplitDense supports it and no observer watches, else the
  // whole chain on r.
  struct HeadMlp {
    std::unique_ptr<SplitDense> split;
    std::unique_ptr<DenseChain> rest;  // layers after the split one (may be empty)
    std::unique_ptr<DenseChain> full;
  };
  Result<HeadMlp> MakeHeadMlp(const std::vector<const LinearSpec*>& layers);
  Status RunHeadMlp(HeadMlp& h, size_t row0, size_t rows, float* out);

  // Field i's embedding (config order) for candidate c.
  const float* FieldRow(int i, size_t c) const {
    const FieldSpec& fs = m.field_specs[i];
    if (m.fields[i].group == FieldGroup::kItem) return items.data() + (c * Fi + fs.group_slot) * d;
    return uc.data() + UcIndex(i) * d;
  }
  size_t UcIndex(int i) const {
    return m.fields[i].group == FieldGroup::kUser ? m.field_specs[i].group_slot : Fu + m.field_specs[i].group_slot;
  }
  // u_{k,b} for candidate c.
  const float* Interest(int t, size_t c, int b, size_t N) const {
    if (m.pooling == Pooling::kMean) return umean.data() + (static_cast<size_t>(t) * B + b) * d;
    return interest.data() + ((t * N + c) * B + b) * d;
  }
  size_t SegOffset(int t, int b) const { return static_cast<size_t>(t) * R0 + seq_off[b]; }

  std::shared_ptr<const Model> model;
  const Model::Impl& m;
  SessionOptions opts;
  pthreadpool_t pool = nullptr;
  size_t d = 0, K = 0, B = 0, F = 0, n = 0, D = 0, Fu = 0, Fc = 0, Fi = 0;

  // Operators, created once.
  std::vector<std::unique_ptr<DenseChain>> dense_proj;  // per field (dense fields only)
  struct BlockOps {
    std::unique_ptr<DenseChain> in, out, ffn;
  };
  std::vector<BlockOps> block_ops;
  std::unique_ptr<DenseChain> query;
  std::vector<std::unique_ptr<DenseChain>> trm;
  std::vector<HeadMlp> experts, gates, towers;
  std::vector<bool> is_uc;   // per r_k field: user/context (constant per request)
  std::vector<int> uc_slot;  // its row in uc
  size_t n_uc = 0, D_rest = 0;
  bool need_full_r = false;
  ChainScratch cs;

  // Stage-1 state.
  bool prepared = false;
  std::string prepared_id;
  std::vector<size_t> seq_len, seq_off;
  size_t R0 = 0;  // valid positions over all behaviours
  Buffer<float> uc;        // [Fu + Fc, d] user then context field embeddings
  Buffer<float> uc_z;      // [Fu + Fc] their squeezes
  Buffer<float> stage;     // dense-field input staging
  Buffer<float> x, qkv, att, proj, h, ffn, hcur;  // transformer activations
  Buffer<float> attn_scratch;
  Buffer<float> ht;        // per (k, b) segment: H'ᵀ [d, l_b] (target pooling)
  Buffer<float> umean;     // [K, B, d] (mean pooling)

  // Stage-2 state.
  Buffer<float> items;     // [N, Fi, d]
  Buffer<float> qin, q, s; // target attention
  Buffer<float> interest;  // [K, N, B, d]
  Buffer<float> z_item;    // [N, Fi]
  Buffer<float> z, a;      // [N, n]
  Buffer<float> r;         // [K, N, D]          (only when some head MLP runs unsplit)
  Buffer<float> r_rest;    // [K, N, D_rest]     item and interest columns of r_k
  Buffer<float> a_uc;      // [K, N, n_uc]       TRM weights of the user/context fields
  Buffer<float> split_out;
  Buffer<float> g, o, y, logit;
};

Status Session::Impl::Init() {
  if (opts.threads < 1) return InvalidArgument("SessionOptions.threads = " + std::to_string(opts.threads) + " < 1");
  xnn_status st = xnn_initialize(nullptr);
  if (st != xnn_status_success)
    return Internal("xnn_initialize failed (xnn_status " + std::to_string(static_cast<int>(st)) + ")");
  if (opts.threads > 1) {
    pool = pthreadpool_create(static_cast<size_t>(opts.threads));
    if (pool == nullptr) return Internal("pthreadpool_create(" + std::to_string(opts.threads) + ") failed");
  }
  d = m.d, K = m.K, B = m.B, F = m.F, n = m.n, D = n * d;
  Fu = m.group_fields[0].size(), Fc = m.group_fields[1].size(), Fi = m.group_fields[2].size();

  dense_proj.resize(F);
  for (size_t i = 0; i < F; ++i)
    if (m.fields[i].kind == FieldKind::kDense) {
      DTRN_ASSIGN_OR_RETURN(dense_proj[i], DenseChain::Create({&m.field_specs[i].projection}, opts.kernels));
    }
  for (const BlockSpec& bs : m.tim_blocks) {
    BlockOps ops;
    DTRN_ASSIGN_OR_RETURN(ops.in, DenseChain::Create({&bs.attn_in}, opts.kernels));
    DTRN_ASSIGN_OR_RETURN(ops.out, DenseChain::Create({&bs.attn_out}, opts.kernels));
    DTRN_ASSIGN_OR_RETURN(ops.ffn, DenseChain::Create({&bs.ffn1, &bs.ffn2}, opts.kernels));
    block_ops.push_back(std::move(ops));
  }
  if (m.pooling == Pooling::kTarget) {
    DTRN_ASSIGN_OR_RETURN(query, DenseChain::Create({&m.query}, opts.kernels));
  }
  auto ptrs = [](const std::vector<LinearSpec>& layers) {
    std::vector<const LinearSpec*> p;
    for (const LinearSpec& l : layers) p.push_back(&l);
    return p;
  };
  is_uc.assign(n, false);
  uc_slot.assign(n, -1);
  for (size_t i = 0; i < F; ++i)
    if (m.fields[i].group != FieldGroup::kItem) {
      is_uc[i] = true;
      uc_slot[i] = static_cast<int>(UcIndex(static_cast<int>(i)));
    }
  n_uc = Fu + Fc;
  D_rest = (n - n_uc) * d;
  for (const TrmSpec& t : m.trm) {
    DTRN_ASSIGN_OR_RETURN(auto c, DenseChain::Create({&t.fc1, &t.fc2}, opts.kernels));
    trm.push_back(std::move(c));
  }
  for (const auto& e : m.experts) {
    DTRN_ASSIGN_OR_RETURN(auto h, MakeHeadMlp(ptrs(e)));
    experts.push_back(std::move(h));
  }
  for (const LinearSpec& gs : m.gates) {
    DTRN_ASSIGN_OR_RETURN(auto h, MakeHeadMlp({&gs}));
    gates.push_back(std::move(h));
  }
  for (const auto& t : m.towers) {
    HeadMlp h;
    if (m.mtl == Mtl::kTowers) {
      DTRN_ASSIGN_OR_RETURN(h, MakeHeadMlp(ptrs(t)));
    } else {  // input o_k, not r_k: no rewrite
      DTRN_ASSIGN_OR_RETURN(h.full, DenseChain::Create(ptrs(t), opts.kernels));
    }
    towers.push_back(std::move(h));
  }
  seq_len.assign(B, 0);
  seq_off.assign(B, 0);
  return Status::Ok();
}

Result<Session::Impl::HeadMlp> Session::Impl::MakeHeadMlp(const std::vector<const LinearSpec*>& layers) {
  HeadMlp h;
  if (opts.observer != nullptr || n_uc == 0 || !SplitDense::Supports(*layers[0], opts.kernels)) {
    need_full_r = true;
    DTRN_ASSIGN_OR_RETURN(h.full, DenseChain::Create(layers, opts.kernels));
    return h;
  }
  DTRN_ASSIGN_OR_RETURN(h.split, SplitDense::Create(*layers[0], static_cast<int>(d), is_uc, uc_slot, opts.kernels));
  if (layers.size() > 1) {
    DTRN_ASSIGN_OR_RETURN(h.rest, DenseChain::Create({layers.begin() + 1, layers.end()}, opts.kernels));
  }
  return h;
}

Status Session::Impl::RunHeadMlp(HeadMlp& h, size_t row0, size_t rows, float* out) {
  if (h.full) return h.full->Run(rows, r.data() + row0 * D, out, &cs, pool, opts.observer);
  float* so = h.rest ? split_out.Reserve(rows * h.split->out_features()) : out;
  DTRN_RETURN_IF_ERROR(h.split->Run(rows, r_rest.data() + row0 * D_rest, a_uc.data() + row0 * n_uc, so, pool));
  if (h.rest) return h.rest->Run(rows, so, out, &cs, pool, opts.observer);
  return Status::Ok();
}

// ---------------------------------------------------------------- stage 1

Status Session::Impl::Prepare(const Request& r) {
  prepared = false;
  DTRN_RETURN_IF_ERROR(CheckRequestContext(m, r));
  DTRN_RETURN_IF_ERROR(CheckCandidates(m, r));
  DTRN_RETURN_IF_ERROR(EmbedUserContext(r));
  for (auto* group : {&experts, &gates, &towers})
    for (HeadMlp& h : *group)
      if (h.split) h.split->PrepareRequest(uc.data());
  DTRN_RETURN_IF_ERROR(EmbedSequences(r));
  DTRN_RETURN_IF_ERROR(RunTransformer());
  PreparePooling();
  prepared_id = r.id;
  prepared = true;
  return Status::Ok();
}

// Gathers one sparse field's row (F32 / F16 / INT8 table) into out[d].
static void GatherRow(const TableSpec& t, int64_t row, size_t d, float* out) {
  switch (t.type) {
    case TableType::kF32: k::RowF32(static_cast<const float*>(t.data), row, d, out); break;
    case TableType::kF16: k::RowF16(static_cast<const uint16_t*>(t.data), row, d, out); break;
    case TableType::kInt8: k::RowInt8(static_cast<const int8_t*>(t.data), t.row_scale, row, d, out); break;
  }
}

Status Session::Impl::EmbedUserContext(const Request& r) {
  float* dst = uc.Reserve((Fu + Fc) * d);
  float* zs = uc_z.Reserve(Fu + Fc);
  for (int g = 0; g < 2; ++g) {
    const std::vector<FieldValue>& values = g == 0 ? r.user : r.context;
    const std::vector<int>& fields = m.group_fields[g];
    for (size_t s = 0; s < fields.size(); ++s) {
      const int i = fields[s];
      float* row = dst + UcIndex(i) * d;
      if (m.fields[i].kind == FieldKind::kSparse) {
        const TableSpec& t = m.tables[m.field_specs[i].table];
        int64_t id_row = 0;
        MapId(t, values[s].id, &id_row);  // validated
        GatherRow(t, id_row, d, row);
      } else {
        const std::vector<float>& v = values[s].dense;
        float* in = stage.Reserve(v.size());
        std::memcpy(in, v.data(), v.size() * sizeof(float));
        DTRN_RETURN_IF_ERROR(dense_proj[i]->Run(1, in, row, &cs, pool, opts.observer));
      }
      zs[UcIndex(i)] = k::Mean(row, d);
    }
  }
  return Status::Ok();
}

// X_b[j] = E_item[seq_b[j]] + P[age(j)], the kept ids oldest first, age 0 = most recent.
Status Session::Impl::EmbedSequences(const Request& r) {
  R0 = 0;
  for (size_t b = 0; b < B; ++b) {
    const size_t len = r.behaviors[b].size();
    seq_len[b] = len - FirstKept(len, m.L);
    seq_off[b] = R0;
    R0 += seq_len[b];
  }
  float* xs = x.Reserve(R0 * d);
  const TableSpec& t = m.tables[m.item_table];
  for (size_t b = 0; b < B; ++b) {
    const std::vector<int64_t>& seq = r.behaviors[b];
    const size_t first = FirstKept(seq.size(), m.L), l = seq_len[b];
    for (size_t j = 0; j < l; ++j) {
      float* row = xs + (seq_off[b] + j) * d;
      int64_t id_row = 0;
      MapId(t, seq[first + j], &id_row);  // validated
      GatherRow(t, id_row, d, row);
      k::Axpy(d, 1.f, m.positions + (l - 1 - j) * d, row);
    }
  }
  return Status::Ok();
}

// Post-LN blocks. Block 0's input X is the same for every task, so its attention
// (in_proj, attention, out_proj) runs once over the B sequences; only the CLNs differ.
Status Session::Impl::RunTransformer() {
  const size_t rows_all = K * R0;
  float* hc = hcur.Reserve(rows_all * d);
  if (R0 == 0) return Status::Ok();
  if (m.blocks == 0) {
    for (size_t t = 0; t < K; ++t) std::memcpy(hc + t * R0 * d, x.data(), R0 * d * sizeof(float));
    return Status::Ok();
  }
  size_t max_l = 0;
  for (size_t b = 0; b < B; ++b) max_l = std::max(max_l, seq_len[b]);
  float* as = attn_scratch.Reserve(k::AttentionScratch(max_l, d, m.heads));
  float* hs = h.Reserve(rows_all * d);
  float* fs = ffn.Reserve(rows_all * d);
  for (int i = 0; i < m.blocks; ++i) {
    const bool shared = i == 0;
    const size_t rows = shared ? R0 : rows_all;
    const size_t tasks = shared ? 1 : K;
    const float* xin = shared ? x.data() : hc;
    float* qs = qkv.Reserve(rows * 3 * d);
    float* at = att.Reserve(rows * d);
    float* pr = proj.Reserve(rows * d);
    DTRN_RETURN_IF_ERROR(block_ops[i].in->Run(rows, xin, qs, &cs, pool, opts.observer));
    for (size_t t = 0; t < tasks; ++t)
      for (size_t b = 0; b < B; ++b) {
        if (seq_len[b] == 0) continue;
        const size_t o = SegOffset(static_cast<int>(t), static_cast<int>(b));
        k::SelfAttention(qs + o * 3 * d, 3 * d, seq_len[b], d, m.heads, at + o * d, d, as);
      }
    DTRN_RETURN_IF_ERROR(block_ops[i].out->Run(rows, at, pr, &cs, pool, opts.observer));
    // H = CLN1_{k,b}(X + MHA(X)); for block 0 every task reads the shared rows.
    for (size_t t = 0; t < K; ++t)
      for (size_t b = 0; b < B; ++b) {
        if (seq_len[b] == 0) continue;
        const size_t src = shared ? seq_off[b] : SegOffset(static_cast<int>(t), static_cast<int>(b));
        const size_t dst = SegOffset(static_cast<int>(t), static_cast<int>(b));
        k::AddLayerNorm(xin + src * d, pr + src * d, seq_len[b], d, m.gamma(t, b, 2 * i), m.beta(t, b, 2 * i),
                        hs + dst * d);
      }
    // H' = CLN2_{k,b}(H + FFN(H)), all tasks batched.
    DTRN_RETURN_IF_ERROR(block_ops[i].ffn->Run(rows_all, hs, fs, &cs, pool, opts.observer));
    for (size_t t = 0; t < K; ++t)
      for (size_t b = 0; b < B; ++b) {
        if (seq_len[b] == 0) continue;
        const size_t o = SegOffset(static_cast<int>(t), static_cast<int>(b));
        k::AddLayerNorm(hs + o * d, fs + o * d, seq_len[b], d, m.gamma(t, b, 2 * i + 1), m.beta(t, b, 2 * i + 1),
                        hc + o * d);
      }
  }
  return Status::Ok();
}

void Session::Impl::PreparePooling() {
  const float* hc = hcur.data();
  if (m.pooling == Pooling::kMean) {
    float* um = umean.Reserve(K * B * d);
    for (size_t t = 0; t < K; ++t)
      for (size_t b = 0; b < B; ++b) {
        float* u = um + (t * B + b) * d;
        std::memset(u, 0, d * sizeof(float));
        const size_t l = seq_len[b];
        if (l == 0) continue;  // an empty sequence's interest is exactly zero
        const size_t o = SegOffset(static_cast<int>(t), static_cast<int>(b));
        for (size_t j = 0; j < l; ++j) k::Axpy(d, 1.f, hc + (o + j) * d, u);
        const float inv = 1.f / static_cast<float>(l);
        for (size_t c = 0; c < d; ++c) u[c] *= inv;
      }
    return;
  }
  // Target pooling multiplies every candidate's query by H'ᵀ: transpose once here.
  float* hts = ht.Reserve(K * R0 * d);
  for (size_t t = 0; t < K; ++t)
    for (size_t b = 0; b < B; ++b) {
      if (seq_len[b] == 0) continue;
      const size_t o = SegOffset(static_cast<int>(t), static_cast<int>(b));
      k::Transpose(seq_len[b], d, hc + o * d, d, hts + o * d, seq_len[b]);
    }
}

// ---------------------------------------------------------------- stage 2

Status Session::Impl::ScoreCandidates(const Request& r, Scores* out) {
  if (out == nullptr) return InvalidArgument("ScoreCandidates: null output");
  if (!prepared) return InvalidArgument("request '" + r.id + "': ScoreCandidates before a successful Prepare");
  if (r.id != prepared_id)
    return InvalidArgument("request '" + r.id + "': ScoreCandidates on a different request than Prepare ('" +
                           prepared_id + "')");
  DTRN_RETURN_IF_ERROR(CheckCandidates(m, r));
  const size_t N = r.candidates.size();
  DTRN_RETURN_IF_ERROR(EmbedItems(r, N));
  DTRN_RETURN_IF_ERROR(PoolInterests(N));
  DTRN_RETURN_IF_ERROR(RunTrm(N));
  return RunHead(N, out);
}

Status Session::Impl::EmbedItems(const Request& r, size_t N) {
  float* it = items.Reserve(N * Fi * d);
  float* zi = z_item.Reserve(N * Fi);
  const std::vector<int>& fields = m.group_fields[2];
  for (size_t s = 0; s < Fi; ++s) {
    const int i = fields[s];
    if (m.fields[i].kind == FieldKind::kSparse) {
      const TableSpec& t = m.tables[m.field_specs[i].table];
      for (size_t c = 0; c < N; ++c) {
        int64_t row = 0;
        MapId(t, r.candidates[c][s].id, &row);  // validated
        GatherRow(t, row, d, it + (c * Fi + s) * d);
      }
    } else {
      const size_t w = m.field_specs[i].width;
      float* in = stage.Reserve(N * w);
      for (size_t c = 0; c < N; ++c) std::memcpy(in + c * w, r.candidates[c][s].dense.data(), w * sizeof(float));
      float* pr = proj.Reserve(N * d);
      DTRN_RETURN_IF_ERROR(dense_proj[i]->Run(N, in, pr, &cs, pool, opts.observer));
      for (size_t c = 0; c < N; ++c) std::memcpy(it + (c * Fi + s) * d, pr + c * d, d * sizeof(float));
    }
    for (size_t c = 0; c < N; ++c) zi[c * Fi + s] = k::Mean(it + (c * Fi + s) * d, d);
  }
  return Status::Ok();
}

// Target attention: q = W_q e_item + c_q; α = softmax(q·H'ᵀ/sqrt(d)) over the valid
// positions; u = α·H'. An empty sequence gives u = 0.
Status Session::Impl::PoolInterests(size_t N) {
  if (m.pooling == Pooling::kMean) return Status::Ok();
  float* qi = qin.Reserve(N * d);
  const size_t slot = m.field_specs[m.item_field].group_slot;
  for (size_t c = 0; c < N; ++c) std::memcpy(qi + c * d, items.data() + (c * Fi + slot) * d, d * sizeof(float));
  float* qs = q.Reserve(N * d);
  DTRN_RETURN_IF_ERROR(query->Run(N, qi, qs, &cs, pool, opts.observer));
  size_t max_l = 0;
  for (size_t b = 0; b < B; ++b) max_l = std::max(max_l, seq_len[b]);
  float* ss = s.Reserve(N * max_l);
  float* us = interest.Reserve(K * N * B * d);
  const float scale = 1.f / std::sqrt(static_cast<float>(d));
  for (size_t t = 0; t < K; ++t)
    for (size_t b = 0; b < B; ++b) {
      float* u = us + (t * N * B + b) * d;  // row c at u + c * B * d
      const size_t l = seq_len[b];
      if (l == 0) {
        for (size_t c = 0; c < N; ++c) std::memset(u + c * B * d, 0, d * sizeof(float));
        continue;
      }
      const size_t o = SegOffset(static_cast<int>(t), static_cast<int>(b));
      k::GemmNN(N, l, d, scale, qs, d, ht.data() + o * d, l, ss, l);
      k::SoftmaxRows(ss, N, l, l);
      k::GemmNN(N, d, l, 1.f, ss, l, hcur.data() + o * d, d, u, B * d);
    }
  return Status::Ok();
}

// TRM per task: z_i = mean(x_i); a = 2·sigmoid(fc2(relu(fc1 z))); r_k = concat(a_i x_i).
Status Session::Impl::RunTrm(size_t N) {
  float* zs = z.Reserve(N * n);
  float* as = a.Reserve(N * n);
  float* rs = need_full_r ? r.Reserve(K * N * D) : nullptr;
  float* rr_rest = r_rest.Reserve(K * N * D_rest);
  float* au = a_uc.Reserve(K * N * n_uc);
  const float* zu = uc_z.data();
  const float* zi = z_item.data();
  for (size_t t = 0; t < K; ++t) {
    for (size_t c = 0; c < N; ++c) {
      float* zr = zs + c * n;
      for (size_t i = 0; i < F; ++i)
        zr[i] = m.fields[i].group == FieldGroup::kItem ? zi[c * Fi + m.field_specs[i].group_slot]
                                                       : zu[UcIndex(static_cast<int>(i))];
      for (size_t b = 0; b < B; ++b) zr[F + b] = k::Mean(Interest(static_cast<int>(t), c, static_cast<int>(b), N), d);
    }
    DTRN_RETURN_IF_ERROR(trm[t]->Run(N, zs, as, &cs, pool, opts.observer));
    for (size_t c = 0; c < N; ++c) {
      const float* ar = as + c * n;
      const size_t row = t * N + c;
      float* rest = rr_rest + row * D_rest;
      for (size_t i = 0; i < n; ++i) {
        const float ai = 2.f * k::Sigmoid(ar[i]);
        const float* xi = i < F ? FieldRow(static_cast<int>(i), c)
                                : Interest(static_cast<int>(t), c, static_cast<int>(i - F), N);
        if (rs) {
          float* dst = rs + row * D + i * d;
          for (size_t e = 0; e < d; ++e) dst[e] = ai * xi[e];
        }
        if (is_uc[i]) {
          au[row * n_uc + uc_slot[i]] = ai;
        } else {
          for (size_t e = 0; e < d; ++e) rest[e] = ai * xi[e];
          rest += d;
        }
      }
    }
  }
  return Status::Ok();
}

// towers: p_k = σ(Tower_k(r_k)); mmoe / ple: o_k = Σ_e g_k,e Expert_e(r_k), p_k = σ(Tower_k(o_k)).
Status Session::Impl::RunHead(size_t N, Scores* out) {
  const float* tower_in = nullptr;  // towers head: the towers read r_k themselves
  size_t tower_w = 0;
  if (m.mtl != Mtl::kTowers) {
    const size_t h_out = m.expert_hidden.back();
    const size_t go = m.gates[0].out;
    const size_t Et = m.mtl == Mtl::kPle ? m.experts_per_task : 0;
    float* gs = g.Reserve(K * N * go);
    for (size_t t = 0; t < K; ++t) {
      DTRN_RETURN_IF_ERROR(RunHeadMlp(gates[t], t * N, N, gs + t * N * go));
      k::SoftmaxRows(gs + t * N * go, N, go, go);
    }
    float* os = o.Reserve(K * N * h_out);
    std::memset(os, 0, K * N * h_out * sizeof(float));
    float* ys = y.Reserve(K * N * h_out);
    // Task-own experts (ple): run on r_k only; gate slot t.
    for (size_t t = 0; t < K; ++t)
      for (size_t e = 0; e < Et; ++e) {
        DTRN_RETURN_IF_ERROR(RunHeadMlp(experts[t * Et + e], t * N, N, ys));
        for (size_t c = 0; c < N; ++c)
          k::Axpy(h_out, gs[(t * N + c) * go + e], ys + c * h_out, os + (t * N + c) * h_out);
      }
    // Shared experts: run on every task's r_k at once; gate slot Et + e.
    for (size_t e = 0; e < static_cast<size_t>(m.experts_shared); ++e) {
      DTRN_RETURN_IF_ERROR(RunHeadMlp(experts[K * Et + e], 0, K * N, ys));
      for (size_t t = 0; t < K; ++t)
        for (size_t c = 0; c < N; ++c)
          k::Axpy(h_out, gs[(t * N + c) * go + Et + e], ys + (t * N + c) * h_out, os + (t * N + c) * h_out);
    }
    tower_in = os;
    tower_w = h_out;
  }
  float* ls = logit.Reserve(N);
  out->num_candidates = N;
  out->num_tasks = K;
  out->probabilities.resize(N * K);
  out->logits.resize(N * K);
  for (size_t t = 0; t < K; ++t) {
    if (tower_in)
      DTRN_RETURN_IF_ERROR(towers[t].full->Run(N, tower_in + t * N * tower_w, ls, &cs, pool, opts.observer));
    else
      DTRN_RETURN_IF_ERROR(RunHeadMlp(towers[t], t * N, N, ls));
    for (size_t c = 0; c < N; ++c) {
      out->logits[c * K + t] = ls[c];
      out->probabilities[c * K + t] = k::Sigmoid(ls[c]);
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- API

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

Result<std::unique_ptr<Session>> Session::Create(std::shared_ptr<const Model> model, SessionOptions options) {
  if (!model) return InvalidArgument("Session::Create: null model");
  try {
    auto impl = std::make_unique<Impl>(std::move(model), options);
    DTRN_RETURN_IF_ERROR(impl->Init());
    return std::unique_ptr<Session>(new Session(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return Internal("Session::Create: out of memory");
  }
}

Status Session::Prepare(const Request& request) {
  try {
    return impl_->Prepare(request);
  } catch (const std::bad_alloc&) {
    impl_->prepared = false;
    return Internal("request '" + request.id + "': out of memory");
  }
}

Status Session::ScoreCandidates(const Request& request, Scores* out) {
  try {
    return impl_->ScoreCandidates(request, out);
  } catch (const std::bad_alloc&) {
    return Internal("request '" + request.id + "': out of memory");
  }
}

Status Session::Score(const Request& request, Scores* out) {
  if (out == nullptr) return InvalidArgument("Score: null output");
  DTRN_RETURN_IF_ERROR(Prepare(request));
  return ScoreCandidates(request, out);
}

const Model& Session::model() const { return *impl_->model; }

}  // namespace dtrn
