#include "model_build.h"

#include <cmath>
#include <cstring>

#include "folding.h"
#include "half.h"
#include "weights.h"

namespace dtrn::convert {
namespace {

template <class T>
std::shared_ptr<const std::vector<uint8_t>> Bytes(const std::vector<T>& v) {
  auto b = std::make_shared<std::vector<uint8_t>>(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b->data(), v.data(), b->size());
  return b;
}

int AddF32(ModelDesc* m, const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
  TensorDesc t;
  t.name = name;
  t.shape = std::move(shape);
  t.type = fb::DType::F32;
  t.data = Bytes(v);
  return m->AddTensor(std::move(t));
}

// ckpt_prefix names the checkpoint tensors (<prefix>.weight / .bias, or in_proj_weight / in_proj_bias).
LinearDesc AddLinear(ModelDesc* m, const SafeTensors& st, const std::string& name, const std::string& w_name,
                     const std::string& b_name, bool relu) {
  const StTensor& w = *st.Find(w_name);
  LinearDesc l;
  l.name = name;
  l.out = static_cast<int>(w.shape[0]);
  l.in = static_cast<int>(w.shape[1]);
  l.relu = relu;
  l.weight = AddF32(m, name + ".weight", {l.out, l.in}, st.Floats(w));
  l.bias = AddF32(m, name + ".bias", {l.out}, st.Floats(*st.Find(b_name)));
  return l;
}

LinearDesc AddLinear(ModelDesc* m, const SafeTensors& st, const std::string& prefix, bool relu) {
  return AddLinear(m, st, prefix, prefix + ".weight", prefix + ".bias", relu);
}

}  // namespace

Result<EmbeddingType> ParseEmbeddingType(const std::string& s) {
  if (s == "f32") return EmbeddingType::kF32;
  if (s == "f16") return EmbeddingType::kF16;
  if (s == "int8") return EmbeddingType::kInt8;
  return InvalidArgument("--embeddings: expected f32, f16 or int8, got '" + s + "'");
}

const char* EmbeddingTypeName(EmbeddingType t) {
  return t == EmbeddingType::kF32 ? "f32" : t == EmbeddingType::kF16 ? "f16" : "int8";
}

std::vector<float> TensorFloats(const TensorDesc& t) {
  std::vector<float> v(t.nbytes() / 4);
  if (!v.empty()) std::memcpy(v.data(), t.data->data(), v.size() * 4);
  return v;
}

Result<ModelDesc> BuildF32Desc(const ModelConfig& c, const SafeTensors& st) {
  ModelDesc m;
  m.config = c;
  for (const TableConfig& tab : c.tables) {
    const std::string name = "emb." + tab.name + ".weight";
    const StTensor& t = *st.Find(name);
    m.table_weight.push_back(AddF32(&m, name, t.shape, st.Floats(t)));
  }
  m.projection.resize(c.fields.size());
  for (size_t i = 0; i < c.fields.size(); ++i) {
    if (c.fields[i].kind == FieldKind::kDense) m.projection[i] = AddLinear(&m, st, "dense." + c.fields[i].name, false);
  }
  m.positions = AddF32(&m, "tim.pos", {c.L, c.d}, st.Floats(*st.Find("tim.pos")));
  std::vector<float> cln = FoldHypernetwork(c, st);
  for (size_t i = 0; i < cln.size(); ++i) {
    if (!std::isfinite(cln[i])) {
      return InvalidArgument("hypernetwork: folded LayerNorm parameter " + std::to_string(i) +
                             " is not finite (weights overflow float32)");
    }
  }
  m.cln = AddF32(&m, "cln", {c.K(), c.B(), c.n_ln(), 2, c.d}, cln);
  for (int i = 0; i < c.blocks; ++i) {
    const std::string p = "tim.blocks." + std::to_string(i);
    BlockDesc b;
    b.attn_in = AddLinear(&m, st, p + ".attn.in_proj", p + ".attn.in_proj_weight", p + ".attn.in_proj_bias", false);
    b.attn_out = AddLinear(&m, st, p + ".attn.out_proj", false);
    b.ffn1 = AddLinear(&m, st, p + ".ffn1", true);
    b.ffn2 = AddLinear(&m, st, p + ".ffn2", false);
    m.blocks.push_back(std::move(b));
  }
  if (c.pooling == Pooling::Target) {
    m.has_query = true;
    m.query = AddLinear(&m, st, "tim.query", false);
  }
  for (int k = 0; k < c.K(); ++k) {
    m.trm_fc1.push_back(AddLinear(&m, st, "trm." + std::to_string(k) + ".fc1", true));
    m.trm_fc2.push_back(AddLinear(&m, st, "trm." + std::to_string(k) + ".fc2", false));
  }
  for (int e = 0; e < c.num_experts(); ++e) {
    std::vector<LinearDesc> layers;
    for (size_t j = 0; j < c.expert_hidden.size(); ++j) {
      layers.push_back(AddLinear(&m, st, "experts." + std::to_string(e) + "." + std::to_string(j), true));
    }
    m.experts.push_back(std::move(layers));
  }
  if (c.mtl != Mtl::Towers) {
    for (int k = 0; k < c.K(); ++k) m.gates.push_back(AddLinear(&m, st, "gates." + std::to_string(k), false));
  }
  for (int k = 0; k < c.K(); ++k) {
    std::vector<LinearDesc> layers;
    for (size_t j = 0; j <= c.towers.size(); ++j) {
      const bool hidden = j < c.towers.size();
      layers.push_back(AddLinear(&m, st, "towers." + std::to_string(k) + "." + std::to_string(j), hidden));
    }
    m.towers.push_back(std::move(layers));
  }
  return m;
}

Status SetEmbeddings(ModelDesc* m, EmbeddingType type) {
  if (type == EmbeddingType::kF32) return Status::Ok();
  for (int idx : m->table_weight) {
    TensorDesc& t = m->tensors[idx];
    if (t.type != fb::DType::F32) return InvalidArgument("embedding table '" + t.name + "' is already converted");
    const std::vector<float> v = TensorFloats(t);
    const size_t rows = static_cast<size_t>(t.shape[0]), cols = static_cast<size_t>(t.shape[1]);
    if (type == EmbeddingType::kF16) {
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        if (!quant::FitsHalf(v[i])) {
          return InvalidArgument("embedding table '" + t.name + "' row " + std::to_string(i / cols) + ": value " +
                                 std::to_string(v[i]) + " is outside the f16 range (use --embeddings f32 or int8)");
        }
        h[i] = quant::FloatToHalf(v[i]);
      }
      t.type = fb::DType::F16;
      t.data = Bytes(h);
    } else {
      quant::RowQuantized q = quant::QuantizeRows(v.data(), rows, cols);
      t.type = fb::DType::INT8;
      t.data = Bytes(q.q);
      t.scales = std::move(q.scales);
      t.zero_points.clear();
      t.quantized_dimension = 0;
    }
  }
  return Status::Ok();
}

Status QuantizeLinear(ModelDesc* m, LinearDesc* l) {
  if (l->precision != fb::Precision::F32) return InvalidArgument("layer '" + l->name + "' is already int8");
  const std::vector<float> w = TensorFloats(m->tensors[l->weight]);
  quant::RowQuantized q = quant::QuantizeRows(w.data(), l->out, l->in);
  TensorDesc& wt = m->tensors[l->weight];
  wt.type = fb::DType::INT8;
  wt.data = Bytes(q.q);
  wt.scales = std::move(q.scales);
  wt.zero_points.clear();
  wt.quantized_dimension = 0;
  l->precision = fb::Precision::INT8;
  return Status::Ok();
}

}  // namespace dtrn::convert
