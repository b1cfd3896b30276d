#include "head.h"

#include <cstring>

#include "kernels.h"
#include "request_check.h"

namespace dtrn {

namespace {
std::vector<const LinearSpec*> Pointers(const std::vector<LinearSpec>& layers) {
  std::vector<const LinearSpec*> p;
  for (const LinearSpec& l : layers) p.push_back(&l);
  return p;
}
}  // namespace

Result<std::unique_ptr<MultiTaskHead>> MultiTaskHead::Create(const ModelView& m, WeightCache* cache, bool observed) {
  std::unique_ptr<MultiTaskHead> h(new MultiTaskHead(m));
  h->d_ = m.d;
  h->K_ = m.K;
  h->n_ = m.n;
  h->D_ = static_cast<size_t>(m.n) * m.d;
  h->is_uc_.assign(m.n, false);
  h->uc_slot_.assign(m.n, -1);
  for (int i = 0; i < m.F; ++i)
    if (m.fields[i].group != FieldGroup::kItem) {
      h->is_uc_[i] = true;
      h->uc_slot_[i] = UcSlot(m, i);
    }
  h->n_uc_ = m.group_fields[0].size() + m.group_fields[1].size();
  h->n_item_ = m.group_fields[2].size();
  h->item_slot_.assign(m.n, -1);
  for (size_t s = 0; s < m.group_fields[2].size(); ++s) h->item_slot_[m.group_fields[2][s]] = static_cast<int>(s);
  h->D_rest_ = (m.n - h->n_uc_) * m.d;
  for (const auto& e : m.experts) {
    DTRN_ASSIGN_OR_RETURN(auto mlp, h->MakeMlp(Pointers(e), cache, observed, /*expert=*/true));
    h->experts_.push_back(std::move(mlp));
  }
  h->expert_uses_.resize(m.experts.size());
  for (size_t k = 0; k < m.gates.size(); ++k) {
    DTRN_ASSIGN_OR_RETURN(auto mlp, h->MakeMlp({&m.gates[k].layer}, cache, observed, false));
    h->gates_.push_back(std::move(mlp));
    for (size_t s = 0; s < m.gates[k].experts.size(); ++s)
      h->expert_uses_[m.gates[k].experts[s]].push_back({static_cast<int>(k), static_cast<int>(s)});
  }
  for (const auto& t : m.towers) {
    Mlp mlp;
    if (m.mtl == Mtl::Towers) {
      DTRN_ASSIGN_OR_RETURN(mlp, h->MakeMlp(Pointers(t), cache, observed, false));
    } else {  // input o_k, not r_k: no rewrite
      DTRN_ASSIGN_OR_RETURN(mlp.full, DenseChain::Create(Pointers(t), cache));
    }
    h->towers_.push_back(std::move(mlp));
  }
  return h;
}

Result<MultiTaskHead::Mlp> MultiTaskHead::MakeMlp(const std::vector<const LinearSpec*>& layers, WeightCache* cache,
                                                  bool observed, bool expert) {
  Mlp mlp;
  mlp.is_expert = expert;
  if (observed || n_uc_ == 0) {
    need_full_r_ = true;
    DTRN_ASSIGN_OR_RETURN(mlp.full, DenseChain::Create(layers, cache));
    return mlp;
  }
  DTRN_ASSIGN_OR_RETURN(mlp.split,
                        SplitDense::Create(*layers[0], static_cast<int>(d_), is_uc_, uc_slot_, item_slot_, cache));
  int8_split_ = int8_split_ || mlp.split->int8();
  f32_split_ = f32_split_ || !mlp.split->int8();
  size_t end = layers.size();
  if (expert && layers.size() > 1 && layers.back()->precision == Precision::INT8) {
    DTRN_ASSIGN_OR_RETURN(mlp.last, Int8Linear::Create(*layers.back(), cache));
    mlp.last_spec = layers.back();
    --end;
  }
  if (end > 1) {
    DTRN_ASSIGN_OR_RETURN(mlp.rest, DenseChain::Create({layers.begin() + 1, layers.begin() + end}, cache));
  }
  return mlp;
}

void MultiTaskHead::PrepareRequest(const FieldEmbeddings& emb) {
  for (auto* group : {&experts_, &gates_, &towers_})
    for (Mlp& mlp : *group)
      if (mlp.split) mlp.split->PrepareRequest(emb.uc());
}

void MultiTaskHead::ShareRequest(const MultiTaskHead& prepared) {
  std::vector<Mlp>* mine[] = {&experts_, &gates_, &towers_};
  const std::vector<Mlp>* theirs[] = {&prepared.experts_, &prepared.gates_, &prepared.towers_};
  for (int g = 0; g < 3; ++g)
    for (size_t i = 0; i < mine[g]->size(); ++i)
      if ((*mine[g])[i].split) (*mine[g])[i].split->ShareRequest(*(*theirs[g])[i].split);
}

// r_k's columns, as the layers read them: r_rest (item fields and interests, times a_{k,i};
// F32 split layers), r_int (the interests times a_{k,b}; INT8 split layers, which add the
// item products themselves), a_uc and a_item (the TRM weights of the fields whose products
// are per request or per candidate), and r whole where an MLP runs unsplit.
Status MultiTaskHead::BuildInputs(size_t T, const FieldEmbeddings& emb, const Tim& tim, const Trm& trm) {
  const size_t F = m_.F, B = m_.B;
  float* rs = need_full_r_ ? r_.Reserve(K_ * T * D_) : nullptr;
  float* rest_all = f32_split_ ? r_rest_.Reserve(K_ * T * D_rest_) : nullptr;
  float* int_all = int8_split_ ? r_int_.Reserve(K_ * T * B * d_) : nullptr;
  float* au = a_uc_.Reserve(K_ * T * n_uc_);
  float* ai_all = a_item_.Reserve(K_ * T * n_item_);
  if ((need_full_r_ && !rs) || (f32_split_ && !rest_all) || (int8_split_ && !int_all) || !au || !ai_all)
    return OutOfMemory("head inputs r_k");
  for (size_t k = 0; k < K_; ++k)
    for (size_t c = 0; c < T; ++c) {
      const float* a = trm.Weights(static_cast<int>(k), c);
      const size_t row = k * T + c;
      float* rest = rest_all ? rest_all + row * D_rest_ : nullptr;
      for (size_t i = 0; i < n_; ++i) {
        const float ai = a[i];
        const float* xi =
            i < F ? emb.Field(static_cast<int>(i), c) : tim.Interest(static_cast<int>(k), c, static_cast<int>(i - F));
        if (rs) {
          float* dst = rs + row * D_ + i * d_;
          for (size_t e = 0; e < d_; ++e) dst[e] = ai * xi[e];
        }
        if (is_uc_[i]) {
          au[row * n_uc_ + uc_slot_[i]] = ai;
          continue;
        }
        if (item_slot_[i] >= 0) ai_all[row * n_item_ + item_slot_[i]] = ai;
        if (int_all && i >= F) {
          float* dst = int_all + (row * B + (i - F)) * d_;
          for (size_t e = 0; e < d_; ++e) dst[e] = ai * xi[e];
        }
        if (rest) {
          for (size_t e = 0; e < d_; ++e) rest[e] = ai * xi[e];
          rest += d_;
        }
      }
    }
  return Status::Ok();
}

Status MultiTaskHead::RunMlp(Mlp& mlp, size_t row0, size_t rows, float* out, const Exec& x, const float* mix,
                             size_t ldmix) {
  if (mlp.full) return mlp.full->Run(rows, r_.data() + row0 * D_, out, x);
  const QuantizedRows* q = mlp.split->int8() ? &q_int_ : nullptr;
  if (mlp.split->int8()) mlp.split->PrepareTile(tile_, q_items_, epoch_);
  if (!mlp.rest && !mlp.last)
    return mlp.split->Run(row0, rows, tile_, r_rest_.data(), q, a_uc_.data(), a_item_.data(), out, x.pool, mix, ldmix);
  float* h = split_out_.Reserve(rows * mlp.split->out_features());
  if (h == nullptr) return OutOfMemory("head split layer output");
  DTRN_RETURN_IF_ERROR(mlp.split->Run(row0, rows, tile_, r_rest_.data(), q, a_uc_.data(), a_item_.data(), h, x.pool));
  if (mlp.rest) {
    float* y = mlp.last ? expert_hidden_.Reserve(rows * mlp.rest->out_features()) : out;
    if (y == nullptr) return OutOfMemory("head hidden layer");
    DTRN_RETURN_IF_ERROR(mlp.rest->Run(rows, h, y, x));
    h = y;
  }
  if (mlp.last) {
    int8::Epilogue e;
    e.relu = mlp.last_spec->relu;
    e.mix = mix, e.ldmix = ldmix;
    return mlp.last->Run(rows, h, mlp.last_spec->in, out, mlp.last_spec->out, e, x.pool);
  }
  return Status::Ok();
}

Status MultiTaskHead::Run(size_t T, const FieldEmbeddings& emb, const Tim& tim, const Trm& trm, const Exec& x,
                          float* logits) {
  tile_ = T;
  DTRN_RETURN_IF_ERROR(BuildInputs(T, emb, tim, trm));
  ++epoch_;
  if (int8_split_) {
    // Quantized once for every INT8 split layer: the interests per (task, candidate), and
    // each item slot's embeddings per candidate (slot-major: row s·T + c).
    DTRN_RETURN_IF_ERROR(q_int_.Quantize(K_ * T, m_.B * d_, r_int_.data(), m_.B * d_));
    DTRN_RETURN_IF_ERROR(q_items_.Reserve(n_item_ * T, d_));
    for (size_t s = 0; s < n_item_; ++s) q_items_.QuantizeInto(s * T, T, emb.items() + s * d_, emb.item_stride());
  }
  const float* tower_in = nullptr;  // towers head: the towers read r_k themselves
  size_t tower_w = 0;
  if (m_.mtl != Mtl::Towers) {
    // g_k = softmax(W_g,k r_k + c_g,k) over the gate's experts.
    const size_t h_out = m_.expert_hidden.back();
    const size_t go = m_.gates[0].experts.size();
    float* gs = gate_.Reserve(K_ * T * go);
    float* os = mix_.Reserve(K_ * T * h_out);
    float* ys = expert_out_.Reserve(K_ * T * h_out);
    if (gs == nullptr || os == nullptr || ys == nullptr) return OutOfMemory("head experts");
    for (size_t k = 0; k < K_; ++k) {
      DTRN_RETURN_IF_ERROR(RunMlp(gates_[k], k * T, T, gs + k * T * go, x));
      kernels::SoftmaxRows(gs + k * T * go, T, go, go);
    }
    // o_k = Σ_e g_{k,e} Expert_e(r_k): an expert in every gate (at one slot) runs once over
    // all K·T rows, a task's own expert over that task's T rows. Experts ending in an INT8
    // layer add g · y into o_k in that layer's epilogue; the others go through y.
    std::memset(os, 0, K_ * T * h_out * sizeof(float));
    for (size_t e = 0; e < experts_.size(); ++e) {
      const std::vector<ExpertUse>& uses = expert_uses_[e];
      bool one_slot = uses.size() == K_;
      for (size_t i = 0; i < uses.size(); ++i)
        one_slot = one_slot && uses[i].task == static_cast<int>(i) && uses[i].slot == uses[0].slot;
      Mlp& mlp = experts_[e];
      if (mlp.mixes()) {
        if (one_slot) {
          DTRN_RETURN_IF_ERROR(RunMlp(mlp, 0, K_ * T, os, x, gs + uses[0].slot, go));
        } else {
          for (const ExpertUse& u : uses)
            DTRN_RETURN_IF_ERROR(
                RunMlp(mlp, u.task * T, T, os + u.task * T * h_out, x, gs + u.task * T * go + u.slot, go));
        }
        continue;
      }
      if (one_slot) DTRN_RETURN_IF_ERROR(RunMlp(mlp, 0, K_ * T, ys, x));
      for (const ExpertUse& u : uses) {
        const size_t k = u.task;
        const float* y = one_slot ? ys + k * T * h_out : ys;
        if (!one_slot) DTRN_RETURN_IF_ERROR(RunMlp(mlp, k * T, T, ys, x));
        for (size_t c = 0; c < T; ++c)
          kernels::Axpy(h_out, gs[(k * T + c) * go + u.slot], y + c * h_out, os + (k * T + c) * h_out);
      }
    }
    tower_in = os;
    tower_w = h_out;
  }
  float* ls = tower_out_.Reserve(T);
  if (ls == nullptr) return OutOfMemory("tower output");
  for (size_t k = 0; k < K_; ++k) {
    if (tower_in)
      DTRN_RETURN_IF_ERROR(towers_[k].full->Run(T, tower_in + k * T * tower_w, ls, x));
    else
      DTRN_RETURN_IF_ERROR(RunMlp(towers_[k], k * T, T, ls, x));
    for (size_t c = 0; c < T; ++c) logits[c * K_ + k] = ls[c];
  }
  return Status::Ok();
}

}  // namespace dtrn
