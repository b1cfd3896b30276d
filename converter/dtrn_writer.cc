#include "dtrn_writer.h"

#include <cstring>

#include "dtrn/tools/atomic_file.h"
#include "dtrn/version.h"
#include "dtrn_format.h"

namespace dtrn::convert {
namespace {

namespace f = dtrn::fb;
using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

using format::Align;

Offset<f::Linear> PutLinear(FlatBufferBuilder& b, const LinearDesc& l) {
  return f::CreateLinear(b, b.CreateString(l.name), l.in, l.out, l.relu, l.precision, l.weight, l.bias);
}

Offset<f::Mlp> PutMlp(FlatBufferBuilder& b, const std::vector<LinearDesc>& layers) {
  std::vector<Offset<f::Linear>> v;
  for (const LinearDesc& l : layers) v.push_back(PutLinear(b, l));
  return f::CreateMlp(b, b.CreateVector(v));
}

}  // namespace

std::string ProducerString() { return std::string("dtrn-convert ") + DTRN_VERSION_STRING; }

Result<std::vector<uint8_t>> SerializeDtrn(const ModelDesc& m) {
  const ModelConfig& c = m.config;
  // Constant segment layout first: the FlatBuffer records offsets and the checksum.
  std::vector<uint64_t> offsets(m.tensors.size());
  uint64_t z = 0;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    offsets[i] = z;
    z = Align(z + m.tensors[i].nbytes());
  }
  std::vector<uint8_t> segment(z, 0);
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    if (m.tensors[i].nbytes())
      std::memcpy(segment.data() + offsets[i], m.tensors[i].data->data(), m.tensors[i].nbytes());
  }
  FlatBufferBuilder b(1 << 16);
  std::vector<Offset<f::Tensor>> tensors;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const TensorDesc& t = m.tensors[i];
    Offset<f::Quantization> q = 0;
    if (!t.scales.empty()) {
      q = f::CreateQuantization(b, b.CreateVector(t.scales), b.CreateVector(t.zero_points), t.quantized_dimension);
    }
    tensors.push_back(
        f::CreateTensor(b, b.CreateString(t.name), b.CreateVector(t.shape), t.type, offsets[i], t.nbytes(), q));
  }
  std::vector<Offset<f::EmbeddingTable>> tables;
  for (size_t i = 0; i < c.tables.size(); ++i) {
    tables.push_back(f::CreateEmbeddingTable(b, b.CreateString(c.tables[i].name), c.tables[i].vocab, c.tables[i].hashed,
                                             m.table_weight[i]));
  }
  std::vector<Offset<f::Field>> fields;
  for (size_t i = 0; i < c.fields.size(); ++i) {
    const FieldConfig& fc = c.fields[i];
    const bool dense = fc.kind == FieldKind::kDense;
    fields.push_back(f::CreateField(b, b.CreateString(fc.name), static_cast<f::Group>(fc.group),
                                    dense ? f::FieldKind::Dense : f::FieldKind::Sparse, dense ? -1 : fc.table_index,
                                    dense ? fc.width : 0, dense ? PutLinear(b, m.projection[i]) : 0));
  }
  std::vector<Offset<f::Block>> blocks;
  for (const BlockDesc& bl : m.blocks) {
    blocks.push_back(f::CreateBlock(b, PutLinear(b, bl.attn_in), PutLinear(b, bl.attn_out), PutLinear(b, bl.ffn1),
                                    PutLinear(b, bl.ffn2)));
  }
  std::vector<Offset<f::Trm>> trm;
  for (size_t k = 0; k < m.trm_fc1.size(); ++k) {
    trm.push_back(f::CreateTrm(b, PutLinear(b, m.trm_fc1[k]), PutLinear(b, m.trm_fc2[k])));
  }
  std::vector<Offset<f::Mlp>> experts, towers;
  for (const auto& e : m.experts) experts.push_back(PutMlp(b, e));
  for (const auto& t : m.towers) towers.push_back(PutMlp(b, t));
  std::vector<Offset<f::Gate>> gates;
  for (size_t k = 0; k < m.gates.size(); ++k)
    gates.push_back(f::CreateGate(b, PutLinear(b, m.gates[k]), b.CreateVector(c.gate_experts(static_cast<int>(k)))));
  std::vector<Offset<f::LayerDecision>> decisions;
  for (const DecisionDesc& dd : m.decisions) {
    decisions.push_back(f::CreateLayerDecision(b, b.CreateString(dd.layer), dd.precision, b.CreateString(dd.reason)));
  }
  std::vector<Offset<flatbuffers::String>> tasks, behaviors;
  for (const auto& s : c.tasks) tasks.push_back(b.CreateString(s));
  for (const auto& s : c.behaviors) behaviors.push_back(b.CreateString(s));
  const Offset<f::Linear> query = m.has_query ? PutLinear(b, m.query) : 0;
  const f::Pooling pooling = c.pooling == Pooling::Target ? f::Pooling::Target : f::Pooling::Mean;
  const f::Mtl mtl = c.mtl == Mtl::Towers ? f::Mtl::Towers : c.mtl == Mtl::Mmoe ? f::Mtl::Mmoe : f::Mtl::Ple;
  std::vector<int> seq_fields;
  for (const std::string& name : c.seq_fields)
    for (size_t i = 0; i < c.fields.size(); ++i)
      if (c.fields[i].name == name) seq_fields.push_back(static_cast<int>(i));
  const auto name = b.CreateString(c.name), producer = b.CreateString(ProducerString());
  const auto tasks_v = b.CreateVector(tasks), behaviors_v = b.CreateVector(behaviors);
  auto root = f::CreateModel(b, format::kFormatVersion, name, producer, c.d, tasks_v, behaviors_v, c.L, c.blocks,
                             c.heads, c.d_ff, b.CreateVector(tables), b.CreateVector(fields), c.item_table, c.pooling,
                             c.mtl, c.experts_shared, c.experts_per_task, b.CreateVector(c.expert_hidden),
                             b.CreateVector(c.towers), c.trm_hidden, m.positions, m.cln, b.CreateVector(blocks), query,
                             b.CreateVector(trm), b.CreateVector(experts), b.CreateVector(towers),
                             b.CreateVector(tensors), b.CreateVector(decisions), b.CreateVector(gates),
                             b.CreateVector(seq_fields), b.CreateString(m.checkpoint_digest));
  f::FinishModelBuffer(b, root);
  return format::WriteFile(b.GetBufferPointer(), b.GetSize(), segment.data(), segment.size());
}

Status WriteFileAtomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  DTRN_ASSIGN_OR_RETURN(auto file, tools::AtomicFile::Create(path));
  DTRN_RETURN_IF_ERROR(file->Write(bytes.data(), bytes.size()));
  return file->Commit();
}

}  // namespace dtrn::convert
