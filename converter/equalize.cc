#include "equalize.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "model_build.h"

namespace dtrn::convert {
namespace {

// The layers whose input is r_k (width n*d).
std::vector<std::string> RkReaders(const ModelDesc& m) {
  std::vector<std::string> out;
  for (const auto& e : m.experts) out.push_back(e.front().name);
  for (const LinearDesc& g : m.gates) out.push_back(g.name);
  if (m.config.mtl == Mtl::Towers) {
    for (const auto& t : m.towers) out.push_back(t.front().name);
  }
  return out;
}

// Multiplies columns [c0, c1) of a [rows, cols] F32 tensor (all of it for cols = 0) by f.
Status ScaleTensor(TensorDesc* t, size_t cols, size_t c0, size_t c1, float f) {
  std::vector<float> v = TensorFloats(*t);
  const size_t rows = cols ? v.size() / cols : 1;
  if (!cols) cols = v.size(), c0 = 0, c1 = v.size();
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = c0; c < c1; ++c) {
      float& x = v[r * cols + c];
      x *= f;
      if (!std::isfinite(x)) return InvalidArgument("equalization: rescaling '" + t->name + "' overflows float32");
    }
  }
  auto b = std::make_shared<std::vector<uint8_t>>(v.size() * 4);
  if (!v.empty()) std::memcpy(b->data(), v.data(), b->size());
  t->data = std::move(b);
  return Status::Ok();
}

}  // namespace

bool FieldScaling::any() const {
  return std::any_of(exponent.begin(), exponent.end(), [](int e) { return e != 0; });
}

std::string FieldScaling::Describe(const ModelConfig& c) const {
  std::string out;
  for (size_t f = 0; f < exponent.size(); ++f) {
    if (exponent[f] == 0) continue;
    out += (out.empty() ? "" : ", ") + c.fields[f].name + " x2^" + std::to_string(exponent[f]);
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, " (estimated int8 noise of the readers %.3g -> %.3g)", error_before, error_after);
  return (out.empty() ? "none" : out) + buf;
}

namespace {

// One layer reading the rescalable fields, reduced to per-group sums: the int8 error of
// y = W x is estimated as weight rounding (per-row step max|W_o,:|/127) plus input
// rounding (one per-tensor step over the input's range), each as uniform noise step^2/12.
struct Reader {
  std::vector<std::vector<double>> w2, wmax;  // [out][group]: sum W^2, max |W|
  std::vector<double> ms, cmin, cmax;         // [group]: sum of column mean squares, min, max
  std::vector<double> signal;                 // [out]: sum_j W_oj^2 E[x_j^2] (scale-free)
};

double Error(const std::vector<Reader>& readers, const std::vector<int>& e) {
  const size_t G = e.size() + 1;  // last group: fixed columns (scale 1)
  std::vector<double> s(G, 1.0);
  for (size_t g = 0; g + 1 < G; ++g) s[g] = std::ldexp(1.0, e[g]);
  double total = 0;
  for (const Reader& r : readers) {
    double lo = 0, hi = 0, ms = 0;
    for (size_t g = 0; g < G; ++g) {
      lo = std::min(lo, r.cmin[g] * s[g]);
      hi = std::max(hi, r.cmax[g] * s[g]);
      ms += r.ms[g] * s[g] * s[g];
    }
    const double step_in = (hi - lo) / 255.0;
    double err = 0, sig = 0;
    for (size_t o = 0; o < r.w2.size(); ++o) {
      double wm = 0, w2 = 0;
      for (size_t g = 0; g < G; ++g) {
        wm = std::max(wm, r.wmax[o][g] / s[g]);
        w2 += r.w2[o][g] / (s[g] * s[g]);
      }
      const double step_w = wm / 127.0;
      err += (step_w * step_w * ms + step_in * step_in * w2) / 12.0;
      sig += r.signal[o];
    }
    if (sig > 0) total += err / sig;
  }
  return total;
}

}  // namespace

FieldScaling ChooseFieldScaling(const ModelDesc& m, const Calibration& cal) {
  const ModelConfig& c = m.config;
  const size_t d = c.d, F = c.fields.size(), n = c.n();
  FieldScaling s;
  s.exponent.assign(F, 0);
  // Variables: one exponent per rescalable table (shared by its fields) or dense field.
  // Tables the behaviour sequences read (the item table; the tables of seq_fields) stay at
  // scale 1: TIM sums their rows into its input, where no reader's weights compensate.
  std::vector<bool> seq_table(c.tables.size(), false);
  if (c.item_table >= 0 && static_cast<size_t>(c.item_table) < c.tables.size()) seq_table[c.item_table] = true;
  for (const std::string& name : c.seq_fields)
    for (const FieldConfig& fc : c.fields)
      if (fc.name == name && fc.kind != FieldKind::kDense) seq_table[fc.table_index] = true;
  std::vector<int> var_of_field(F, -1), var_of_table(c.tables.size(), -1);
  int vars = 0;
  for (size_t f = 0; f < F; ++f) {
    const FieldConfig& fc = c.fields[f];
    if (fc.kind == FieldKind::kDense) {
      var_of_field[f] = vars++;
    } else if (!seq_table[fc.table_index]) {
      if (var_of_table[fc.table_index] < 0) var_of_table[fc.table_index] = vars++;
      var_of_field[f] = var_of_table[fc.table_index];
    }
  }
  if (vars == 0) return s;
  const size_t G = vars + 1;
  std::vector<Reader> readers;
  std::vector<std::string> names = RkReaders(m);
  for (const LinearDesc& t : m.trm_fc1) names.push_back(t.name);
  for (const std::string& name : names) {
    auto it = cal.layers.find(name);
    const LinearDesc* l = m.FindLinear(name);
    if (!l || it == cal.layers.end() || it->second.in_rows == 0) continue;
    const LayerCalibration& lc = it->second;
    const size_t in = l->in;
    const bool per_field = in == n;  // TRM fc1: one column per field; else d columns per field
    if (lc.in_col_min.size() != in || (!per_field && in != n * d)) continue;
    auto group = [&](size_t j) {
      const size_t f = per_field ? j : j / d;
      return f < F && var_of_field[f] >= 0 ? static_cast<size_t>(var_of_field[f]) : G - 1;
    };
    Reader r;
    r.ms.assign(G, 0);
    r.cmin.assign(G, 0);
    r.cmax.assign(G, 0);
    std::vector<double> col_ms(in);
    for (size_t j = 0; j < in; ++j) {
      const size_t g = group(j);
      col_ms[j] = lc.in_col_sumsq[j] / lc.in_rows;
      r.ms[g] += col_ms[j];
      r.cmin[g] = std::min<double>(r.cmin[g], lc.in_col_min[j]);
      r.cmax[g] = std::max<double>(r.cmax[g], lc.in_col_max[j]);
    }
    const std::vector<float> w = TensorFloats(m.tensors[l->weight]);
    r.w2.assign(l->out, std::vector<double>(G, 0));
    r.wmax.assign(l->out, std::vector<double>(G, 0));
    r.signal.assign(l->out, 0);
    for (int o = 0; o < l->out; ++o) {
      for (size_t j = 0; j < in; ++j) {
        const double v = w[o * in + j];
        const size_t g = group(j);
        r.w2[o][g] += v * v;
        r.wmax[o][g] = std::max(r.wmax[o][g], std::fabs(v));
        r.signal[o] += v * v * col_ms[j];
      }
    }
    readers.push_back(std::move(r));
  }
  if (readers.empty()) return s;
  // Coordinate descent over the exponents.
  std::vector<int> e(vars, 0);
  double best = Error(readers, e);
  s.error_before = best;
  for (int round = 0; round < 4; ++round) {
    bool changed = false;
    for (int v = 0; v < vars; ++v) {
      const int keep = e[v];
      int best_e = keep;
      for (int cand = -10; cand <= 10; ++cand) {
        e[v] = cand;
        const double err = Error(readers, e);
        if (err < best * (1 - 1e-9)) best = err, best_e = cand;
      }
      e[v] = best_e;
      changed = changed || best_e != keep;
    }
    if (!changed) break;
  }
  s.error_after = best;
  for (size_t f = 0; f < F; ++f) s.exponent[f] = var_of_field[f] >= 0 ? e[var_of_field[f]] : 0;
  return s;
}

Status ApplyFieldScaling(ModelDesc* m, const FieldScaling& s) {
  const ModelConfig& c = m->config;
  const size_t d = c.d, n = c.n();
  std::vector<bool> table_done(c.tables.size(), false);
  for (size_t f = 0; f < c.fields.size(); ++f) {
    const int e = s.exponent[f];
    if (e == 0) continue;
    const float up = std::ldexp(1.f, e), down = std::ldexp(1.f, -e);
    const FieldConfig& fc = c.fields[f];
    if (fc.kind == FieldKind::kSparse) {
      if (!table_done[fc.table_index]) {
        DTRN_RETURN_IF_ERROR(ScaleTensor(&m->tensors[m->table_weight[fc.table_index]], 0, 0, 0, up));
        table_done[fc.table_index] = true;
      }
    } else {
      DTRN_RETURN_IF_ERROR(ScaleTensor(&m->tensors[m->projection[f].weight], 0, 0, 0, up));
      DTRN_RETURN_IF_ERROR(ScaleTensor(&m->tensors[m->projection[f].bias], 0, 0, 0, up));
    }
    for (LinearDesc& t : m->trm_fc1) DTRN_RETURN_IF_ERROR(ScaleTensor(&m->tensors[t.weight], n, f, f + 1, down));
    for (const std::string& name : RkReaders(*m)) {
      DTRN_RETURN_IF_ERROR(ScaleTensor(&m->tensors[m->FindLinear(name)->weight], n * d, f * d, (f + 1) * d, down));
    }
  }
  return Status::Ok();
}

}  // namespace dtrn::convert
