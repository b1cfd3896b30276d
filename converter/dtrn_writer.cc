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

// Every child is built into a named local before its parent: C++ leaves the evaluation
// order of function arguments open (GCC goes right to left on x86-64, left to right on
// aarch64), and the FlatBuffer's bytes follow the order things are built in. This way the
// same model gives the same .dtrn bytes whatever compiled the converter.
Offset<f::Linear> PutLinear(FlatBufferBuilder& b, const LinearDesc& l) {
  const auto name = b.CreateString(l.name);
  return f::CreateLinear(b, name, l.in, l.out, l.relu, l.precision, l.weight, l.bias);
}

Offset<f::Mlp> PutMlp(FlatBufferBuilder& b, const std::vector<LinearDesc>& layers) {
  std::vector<Offset<f::Linear>> v;
  for (const LinearDesc& l : layers) v.push_back(PutLinear(b, l));
  const auto vec = b.CreateVector(v);
  return f::CreateMlp(b, vec);
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
      const auto scales = b.CreateVector(t.scales);
      const auto zero_points = b.CreateVector(t.zero_points);
      q = f::CreateQuantization(b, scales, zero_points, t.quantized_dimension);
    }
    const auto name = b.CreateString(t.name);
    const auto shape = b.CreateVector(t.shape);
    tensors.push_back(f::CreateTensor(b, name, shape, t.type, offsets[i], t.nbytes(), q));
  }
  std::vector<Offset<f::EmbeddingTable>> tables;
  for (size_t i = 0; i < c.tables.size(); ++i) {
    const auto name = b.CreateString(c.tables[i].name);
    tables.push_back(f::CreateEmbeddingTable(b, name, c.tables[i].vocab, c.tables[i].hashed, m.table_weight[i]));
  }
  std::vector<Offset<f::Field>> fields;
  for (size_t i = 0; i < c.fields.size(); ++i) {
    const FieldConfig& fc = c.fields[i];
    const bool dense = fc.kind == FieldKind::kDense;
    const auto name = b.CreateString(fc.name);
    const Offset<f::Linear> projection = dense ? PutLinear(b, m.projection[i]) : 0;
    fields.push_back(f::CreateField(b, name, static_cast<f::Group>(fc.group),
                                    dense ? f::FieldKind::Dense : f::FieldKind::Sparse, dense ? -1 : fc.table_index,
                                    dense ? fc.width : 0, projection));
  }
  std::vector<Offset<f::Block>> blocks;
  for (const BlockDesc& bl : m.blocks) {
    const auto attn_in = PutLinear(b, bl.attn_in);
    const auto attn_out = PutLinear(b, bl.attn_out);
    const auto ffn1 = PutLinear(b, bl.ffn1);
    const auto ffn2 = PutLinear(b, bl.ffn2);
    blocks.push_back(f::CreateBlock(b, attn_in, attn_out, ffn1, ffn2));
  }
  std::vector<Offset<f::Trm>> trm;
  for (size_t k = 0; k < m.trm_fc1.size(); ++k) {
    const auto fc1 = PutLinear(b, m.trm_fc1[k]);
    const auto fc2 = PutLinear(b, m.trm_fc2[k]);
    trm.push_back(f::CreateTrm(b, fc1, fc2));
  }
  std::vector<Offset<f::Mlp>> experts, towers;
  for (const auto& e : m.experts) experts.push_back(PutMlp(b, e));
  for (const auto& t : m.towers) towers.push_back(PutMlp(b, t));
  std::vector<Offset<f::Gate>> gates;
  for (size_t k = 0; k < m.gates.size(); ++k) {
    const auto layer = PutLinear(b, m.gates[k]);
    const auto wired = b.CreateVector(c.gate_experts(static_cast<int>(k)));
    gates.push_back(f::CreateGate(b, layer, wired));
  }
  std::vector<Offset<f::LayerDecision>> decisions;
  for (const DecisionDesc& dd : m.decisions) {
    const auto layer = b.CreateString(dd.layer);
    const auto reason = b.CreateString(dd.reason);
    decisions.push_back(f::CreateLayerDecision(b, layer, dd.precision, reason));
  }
  std::vector<Offset<flatbuffers::String>> tasks, behaviors;
  for (const auto& s : c.tasks) tasks.push_back(b.CreateString(s));
  for (const auto& s : c.behaviors) behaviors.push_back(b.CreateString(s));
  const Offset<f::Linear> query = m.has_query ? PutLinear(b, m.query) : 0;
  std::vector<int> seq_fields;
  for (const std::string& name : c.seq_fields)
    for (size_t i = 0; i < c.fields.size(); ++i)
      if (c.fields[i].name == name) seq_fields.push_back(static_cast<int>(i));
  const auto name = b.CreateString(c.name);
  const auto producer = b.CreateString(ProducerString());
  const auto tasks_v = b.CreateVector(tasks);
  const auto behaviors_v = b.CreateVector(behaviors);
  const auto tables_v = b.CreateVector(tables);
  const auto fields_v = b.CreateVector(fields);
  const auto expert_hidden_v = b.CreateVector(c.expert_hidden);
  const auto towers_hidden_v = b.CreateVector(c.towers);
  const auto blocks_v = b.CreateVector(blocks);
  const auto trm_v = b.CreateVector(trm);
  const auto experts_v = b.CreateVector(experts);
  const auto towers_v = b.CreateVector(towers);
  const auto tensors_v = b.CreateVector(tensors);
  const auto decisions_v = b.CreateVector(decisions);
  const auto gates_v = b.CreateVector(gates);
  const auto seq_fields_v = b.CreateVector(seq_fields);
  const auto digest = b.CreateString(m.checkpoint_digest);
  auto root =
      f::CreateModel(b, format::kFormatVersion, name, producer, c.d, tasks_v, behaviors_v, c.L, c.blocks, c.heads,
                     c.d_ff, tables_v, fields_v, c.item_table, c.pooling, c.mtl, c.experts_shared, c.experts_per_task,
                     expert_hidden_v, towers_hidden_v, c.trm_hidden, m.positions, m.cln, blocks_v, query, trm_v,
                     experts_v, towers_v, tensors_v, decisions_v, gates_v, seq_fields_v, digest);
  f::FinishModelBuffer(b, root);
  return format::WriteFile(b.GetBufferPointer(), b.GetSize(), segment.data(), segment.size());
}

Status WriteFileAtomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  DTRN_ASSIGN_OR_RETURN(auto file, tools::AtomicFile::Create(path));
  DTRN_RETURN_IF_ERROR(file->Write(bytes.data(), bytes.size()));
  return file->Commit();
}

}  // namespace dtrn::convert
