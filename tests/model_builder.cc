#include "model_builder.h"

#include <cmath>
#include <cstring>

#include "dtrn/dtrn_generated.h"

namespace dtrn::testing {
namespace {

uint16_t FloatToHalf(float f) {  // round to nearest even; test data stays in range
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xFF) - 127 + 15;
  uint32_t mant = x & 0x7FFFFFu;
  if (exp <= 0) {  // subnormal half
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

class Builder {
 public:
  explicit Builder(const TestModelConfig& c) : c_(c), rng_(c.seed) {}

  std::string Build() {
    const int d = c_.d, K = static_cast<int>(c_.tasks.size()), B = static_cast<int>(c_.behaviors.size());
    const int F = static_cast<int>(c_.fields.size()), n = F + B, D = n * d;
    const int trm_hidden = c_.trm_hidden > 0 ? c_.trm_hidden : (n + 1) / 2;

    // Tables (one per distinct table name), then fields.
    std::vector<std::string> table_names;
    std::vector<flatbuffers::Offset<fb::EmbeddingTable>> tables;
    std::vector<flatbuffers::Offset<fb::Field>> fields;
    int item_table = -1;
    for (const TestField& f : c_.fields) {
      int table = -1;
      flatbuffers::Offset<fb::Linear> proj = 0;
      if (f.kind == FieldKind::kSparse) {
        std::string tn = f.table.empty() ? f.name : f.table;
        for (size_t t = 0; t < table_names.size(); ++t)
          if (table_names[t] == tn) table = static_cast<int>(t);
        if (table < 0) {
          table = static_cast<int>(table_names.size());
          table_names.push_back(tn);
          int w = Table("emb." + tn + ".weight", f.vocab, d);
          tables.push_back(fb::CreateEmbeddingTableDirect(fbb_, tn.c_str(), f.vocab, f.hashed, w));
        }
        if (f.group == FieldGroup::kItem && item_table < 0) item_table = table;
      } else {
        proj = Linear("dense." + f.name, f.width, d, false, false);
      }
      fields.push_back(fb::CreateFieldDirect(fbb_, f.name.c_str(), static_cast<fb::Group>(f.group),
                                             static_cast<fb::FieldKind>(f.kind), table, f.width, proj));
    }
    int positions = F32("tim.pos", {c_.L, d}, Uniform(c_.L * d, 0.5f));
    std::vector<float> cln;
    for (int k = 0; k < K; ++k)
      for (int b = 0; b < B; ++b)
        for (int l = 0; l < 2 * c_.blocks; ++l) {
          for (int i = 0; i < d; ++i) cln.push_back(1.f + U(0.3f));
          for (int i = 0; i < d; ++i) cln.push_back(U(0.3f));
        }
    int cln_t = F32("cln", {K, B, 2 * c_.blocks, 2, d}, cln);
    std::vector<flatbuffers::Offset<fb::Block>> blocks;
    for (int i = 0; i < c_.blocks; ++i) {
      std::string p = "tim.blocks." + std::to_string(i);
      auto ai = Linear(p + ".attn.in_proj", d, 3 * d, false, false);
      auto ao = Linear(p + ".attn.out_proj", d, d, false, false);
      auto f1 = Linear(p + ".ffn1", d, c_.d_ff, true, false);
      auto f2 = Linear(p + ".ffn2", c_.d_ff, d, false, false);
      blocks.push_back(fb::CreateBlock(fbb_, ai, ao, f1, f2));
    }
    flatbuffers::Offset<fb::Linear> query = 0;
    if (c_.pooling == fb::Pooling::Target) query = Linear("tim.query", d, d, false, false);
    std::vector<flatbuffers::Offset<fb::Trm>> trm;
    for (int k = 0; k < K; ++k) {
      auto f1 = Linear("trm." + std::to_string(k) + ".fc1", n, trm_hidden, true, false);
      auto f2 = Linear("trm." + std::to_string(k) + ".fc2", trm_hidden, n, false, false);
      trm.push_back(fb::CreateTrm(fbb_, f1, f2));
    }
    int num_experts = 0, gate_out = 0;
    if (c_.mtl == fb::Mtl::Mmoe) num_experts = gate_out = c_.experts_shared;
    if (c_.mtl == fb::Mtl::Ple) {
      num_experts = K * c_.experts_per_task + c_.experts_shared;
      gate_out = c_.experts_per_task + c_.experts_shared;
    }
    std::vector<flatbuffers::Offset<fb::Mlp>> experts, towers;
    std::vector<flatbuffers::Offset<fb::Gate>> gates;
    for (int e = 0; e < num_experts; ++e)
      experts.push_back(Mlp("experts." + std::to_string(e), D, c_.expert_hidden, true));
    if (c_.mtl != fb::Mtl::Towers)
      for (int k = 0; k < K; ++k) {
        // docs/checkpoint-format.md's numbering: task k's own experts, then the shared ones.
        std::vector<int> wired;
        const int Et = c_.mtl == fb::Mtl::Ple ? c_.experts_per_task : 0;
        for (int e = 0; e < Et; ++e) wired.push_back(k * Et + e);
        for (int e = 0; e < c_.experts_shared; ++e) wired.push_back(K * Et + e);
        auto layer = Linear("gates." + std::to_string(k), D, gate_out, false, c_.int8_head);
        gates.push_back(fb::CreateGateDirect(fbb_, layer, &wired));
      }
    std::vector<int> tw = c_.tower_hidden;
    tw.push_back(1);
    const int tower_in = c_.mtl == fb::Mtl::Towers ? D : c_.expert_hidden.back();
    for (int k = 0; k < K; ++k) towers.push_back(Mlp("towers." + std::to_string(k), tower_in, tw, false));

    // The segment: tensors at 64-aligned offsets.
    std::string segment;
    std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
    for (const T& t : tensors_) {
      segment.resize((segment.size() + 63) / 64 * 64, '\0');
      uint64_t off = segment.size();
      segment += t.bytes;
      flatbuffers::Offset<fb::Quantization> q = 0;
      if (!t.scales.empty()) q = fb::CreateQuantizationDirect(fbb_, &t.scales, nullptr, 0);
      tensors.push_back(fb::CreateTensorDirect(fbb_, t.name.c_str(), &t.shape, t.type, off, t.bytes.size(), q));
    }
    std::vector<flatbuffers::Offset<flatbuffers::String>> tasks, behs;
    for (const auto& s : c_.tasks) tasks.push_back(fbb_.CreateString(s));
    for (const auto& s : c_.behaviors) behs.push_back(fbb_.CreateString(s));
    std::vector<int> seq_fields;
    for (const std::string& name : c_.seq_fields)
      for (int i = 0; i < F; ++i)
        if (c_.fields[i].name == name) seq_fields.push_back(i);
    auto model = fb::CreateModelDirect(fbb_, c_.format_version, c_.name.c_str(), "model_builder", d, &tasks, &behs,
                                       c_.L, c_.blocks, c_.heads, c_.d_ff, &tables, &fields, item_table, c_.pooling,
                                       c_.mtl, c_.experts_shared, c_.experts_per_task, &c_.expert_hidden,
                                       &c_.tower_hidden, trm_hidden, positions, cln_t, &blocks, query, &trm, &experts,
                                       &towers, &tensors, nullptr, &gates, &seq_fields, "");
    fb::FinishModelBuffer(fbb_, model);
    std::vector<uint8_t> file = format::WriteFile(fbb_.GetBufferPointer(), fbb_.GetSize(),
                                                  reinterpret_cast<const uint8_t*>(segment.data()), segment.size());
    if (c_.format_version != format::kFormatVersion) std::memcpy(file.data() + 4, &c_.format_version, 4);
    return std::string(file.begin(), file.end());
  }

 private:
  struct T {
    std::string name;
    std::vector<int64_t> shape;
    fb::DType type;
    std::string bytes;
    std::vector<float> scales;
  };

  float U(float a) { return std::uniform_real_distribution<float>(-a, a)(rng_); }
  std::vector<float> Uniform(size_t count, float a) {
    std::vector<float> v(count);
    for (float& x : v) x = U(a);
    return v;
  }
  template <class V>
  int Add(const std::string& name, std::vector<int64_t> shape, fb::DType type, const std::vector<V>& data,
          std::vector<float> scales = {}) {
    T t{name, std::move(shape), type, std::string(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(V)),
        std::move(scales)};
    tensors_.push_back(std::move(t));
    return static_cast<int>(tensors_.size() - 1);
  }
  int F32(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
    return Add(name, std::move(shape), fb::DType::F32, v);
  }
  // Symmetric per-row int8: scale = max|row| / 127 (1 for a zero row).
  static void QuantizeRows(const std::vector<float>& w, int rows, int cols, std::vector<int8_t>* q,
                           std::vector<float>* scales) {
    q->resize(w.size());
    scales->resize(rows);
    for (int r = 0; r < rows; ++r) {
      float mx = 0.f;
      for (int c = 0; c < cols; ++c) mx = std::max(mx, std::fabs(w[r * cols + c]));
      float s = mx > 0.f ? mx / 127.f : 1.f;
      (*scales)[r] = s;
      for (int c = 0; c < cols; ++c) (*q)[r * cols + c] = static_cast<int8_t>(std::nearbyint(w[r * cols + c] / s));
    }
  }
  int Table(const std::string& name, int64_t vocab, int d) {
    std::vector<float> w = Uniform(static_cast<size_t>(vocab) * d, 0.8f);
    if (c_.table_type == fb::DType::F16) {
      std::vector<uint16_t> h(w.size());
      for (size_t i = 0; i < w.size(); ++i) h[i] = FloatToHalf(w[i]);
      return Add(name, {vocab, d}, fb::DType::F16, h);
    }
    if (c_.table_type == fb::DType::INT8) {
      std::vector<int8_t> q;
      std::vector<float> s;
      QuantizeRows(w, static_cast<int>(vocab), d, &q, &s);
      return Add(name, {vocab, d}, fb::DType::INT8, q, s);
    }
    return F32(name, {vocab, d}, w);
  }
  flatbuffers::Offset<fb::Linear> Linear(const std::string& name, int in, int out, bool relu, bool int8) {
    const float a = std::sqrt(6.f / in);
    std::vector<float> w = Uniform(static_cast<size_t>(in) * out, a), b = Uniform(out, 0.1f);
    if (!int8) {
      int wt = F32(name + ".weight", {out, in}, w), bt = F32(name + ".bias", {out}, b);
      return fb::CreateLinearDirect(fbb_, name.c_str(), in, out, relu, fb::Precision::F32, wt, bt);
    }
    // INT8: weights per row, f32 bias; the activations are quantized at run time.
    std::vector<int8_t> q;
    std::vector<float> s;
    QuantizeRows(w, out, in, &q, &s);
    int wt = Add(name + ".weight", {out, in}, fb::DType::INT8, q, s);
    int bt = F32(name + ".bias", {out}, b);
    return fb::CreateLinearDirect(fbb_, name.c_str(), in, out, relu, fb::Precision::INT8, wt, bt);
  }
  flatbuffers::Offset<fb::Mlp> Mlp(const std::string& prefix, int in, const std::vector<int>& widths, bool relu_last) {
    std::vector<flatbuffers::Offset<fb::Linear>> layers;
    for (size_t j = 0; j < widths.size(); ++j) {
      bool relu = relu_last || j + 1 < widths.size();
      layers.push_back(Linear(prefix + "." + std::to_string(j), in, widths[j], relu, c_.int8_head));
      in = widths[j];
    }
    return fb::CreateMlpDirect(fbb_, &layers);
  }

  TestModelConfig c_;
  std::mt19937_64 rng_;
  flatbuffers::FlatBufferBuilder fbb_{1 << 16};
  std::vector<T> tensors_;
};

}  // namespace

std::string BuildTestModel(const TestModelConfig& config) { return Builder(config).Build(); }

Request RandomRequest(const Model& model, std::mt19937_64& rng, size_t N, size_t max_len, const std::string& id) {
  auto value = [&](const FieldInfo& f) {
    FieldValue v;
    if (f.kind == FieldKind::kSparse) {
      v.id = f.hashed ? static_cast<int64_t>(rng()) : static_cast<int64_t>(rng() % static_cast<uint64_t>(f.vocab));
    } else {
      for (int i = 0; i < f.width; ++i) v.dense.push_back(std::uniform_real_distribution<float>(-1.f, 1.f)(rng));
    }
    return v;
  };
  Request r;
  r.id = id;
  for (int i : model.group_fields(FieldGroup::kUser)) r.user.push_back(value(model.fields()[i]));
  for (int i : model.group_fields(FieldGroup::kContext)) r.context.push_back(value(model.fields()[i]));
  const FieldInfo& item = model.fields()[model.group_fields(FieldGroup::kItem)[0]];
  for (size_t b = 0; b < model.behaviors().size(); ++b) {
    size_t len = rng() % (max_len + 1);
    std::vector<int64_t> seq;
    for (size_t j = 0; j < len; ++j) seq.push_back(value(item).id);
    if (!model.seq_fields().empty()) {
      std::vector<std::vector<int64_t>> side;
      for (int f : model.seq_fields()) {
        std::vector<int64_t> ids;
        for (size_t j = 0; j < len; ++j) ids.push_back(value(model.fields()[f]).id);
        side.push_back(std::move(ids));
      }
      r.behavior_side_ids.push_back(std::move(side));
    }
    r.behaviors.push_back(std::move(seq));
  }
  for (size_t c = 0; c < N; ++c) {
    std::vector<FieldValue> cand;
    for (int i : model.group_fields(FieldGroup::kItem)) cand.push_back(value(model.fields()[i]));
    r.candidates.push_back(std::move(cand));
  }
  return r;
}

}  // namespace dtrn::testing
