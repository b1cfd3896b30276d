#include "cost.h"

namespace dtrn {
namespace {

void AddLinear(const LinearSpec& l, double rows, MacCount* c) {
  (l.precision == Precision::INT8 ? c->int8 : c->f32) += rows * l.in * l.out;
}

}  // namespace

RequestCost CountMacs(const ModelView& m, const std::vector<size_t>& seq_len, size_t N, bool split) {
  RequestCost cost;
  MacCount& u = cost.user;
  MacCount& c = cost.candidates;
  const double d = m.d, K = m.K, n = N;
  double R0 = 0;
  for (size_t l : seq_len) R0 += l;
  const int n_uc = static_cast<int>(m.group_fields[0].size() + m.group_fields[1].size());
  const bool splits = split && n_uc > 0;
  const double n_item = static_cast<double>(m.group_fields[2].size());
  for (int i = 0; i < m.F; ++i)
    if (m.fields[i].kind == FieldKind::kDense)
      AddLinear(m.field_specs[i].projection, m.fields[i].group == FieldGroup::kItem ? n : 1.0,
                m.fields[i].group == FieldGroup::kItem ? &c : &u);
  // TIM: block 0's attention is shared by the K tasks.
  for (int i = 0; i < m.blocks; ++i) {
    const BlockSpec& b = m.tim_blocks[i];
    const double rows = i == 0 ? R0 : K * R0, sets = i == 0 ? 1 : K;
    AddLinear(b.attn_in, rows, &u);
    for (size_t l : seq_len) u.f32 += sets * 2.0 * static_cast<double>(l) * l * d;  // QKᵀ and the αV products
    AddLinear(b.attn_out, rows, &u);
    AddLinear(b.ffn1, K * R0, &u);
    AddLinear(b.ffn2, K * R0, &u);
  }
  if (m.pooling == Pooling::Target) {
    AddLinear(m.query, n, &c);
    c.f32 += n * K * 2.0 * R0 * d;  // q·H'ᵀ and α·H' per task
  }
  for (const TrmSpec& t : m.trm) {
    AddLinear(t.fc1, n, &c);
    AddLinear(t.fc2, n, &c);
  }
  // A head MLP on `rows` r_k rows: its first layer split (rest columns per candidate, the
  // user/context products per request, their sum in the epilogue) or whole.
  const double rest = static_cast<double>(m.n - n_uc) * d;
  auto mlp = [&](const std::vector<LinearSpec>& layers, double rows, bool on_r) {
    for (size_t j = 0; j < layers.size(); ++j) {
      const LinearSpec& l = layers[j];
      if (j == 0 && on_r && splits && l.precision == Precision::INT8) {
        // The item fields' products once per candidate, the interests per row.
        c.int8 += n * n_item * d * l.out + rows * m.B * d * l.out;
        c.f32 += rows * (n_uc + n_item) * l.out;
        u.f32 += static_cast<double>(n_uc) * d * l.out;
      } else if (j == 0 && on_r && splits) {
        c.f32 += rows * rest * l.out + rows * n_uc * l.out;
        u.f32 += static_cast<double>(n_uc) * d * l.out;
      } else {
        AddLinear(l, rows, &c);
      }
    }
  };
  std::vector<int> uses(m.experts.size(), 0);
  for (const GateSpec& g : m.gates) {
    mlp({g.layer}, n, true);
    for (int e : g.experts) ++uses[e];
  }
  for (size_t e = 0; e < m.experts.size(); ++e) {
    mlp(m.experts[e], n * uses[e], true);
    c.f32 += n * uses[e] * m.expert_hidden.back();  // o_k += g_{k,e} · Expert_e
  }
  for (const auto& t : m.towers) mlp(t, n, m.mtl == Mtl::Towers);
  return cost;
}

}  // namespace dtrn
