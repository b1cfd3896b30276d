#include "inspect.h"

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <vector>

#include "dtrn/runtime.h"
#include "dtrn_format.h"
#include "strfmt.h"

namespace dtrn::convert {
namespace {

namespace f = dtrn::fb;

std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string("(none)"); }

template <class V>
std::string List(const V* v) {
  std::string out = "[";
  if (v) {
    for (flatbuffers::uoffset_t i = 0; i < v->size(); ++i) out += (i ? ", " : "") + std::to_string(v->Get(i));
  }
  return out + "]";
}

std::string Names(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v) {
  std::string out = "[";
  if (v) {
    for (flatbuffers::uoffset_t i = 0; i < v->size(); ++i) out += (i ? ", " : "") + v->Get(i)->str();
  }
  return out + "]";
}

const char* TypeName(f::DType t) {
  const char* n = f::EnumNameDType(t);
  return n && *n ? n : "?";
}

std::string Human(uint64_t bytes) {
  if (bytes >= (1u << 20)) return Fmt("%.2f MiB", bytes / 1048576.0);
  if (bytes >= 1024) return Fmt("%.1f KiB", bytes / 1024.0);
  return Fmt("%" PRIu64 " B", bytes);
}

void PrintLinear(std::ostream& out, const f::Linear* l) {
  if (!l) return;
  out << Fmt("  %-28s %5d -> %-5d %-4s %-4s", Str(l->name()).c_str(), l->in_features(), l->out_features(),
             l->relu() ? "relu" : "", f::EnumNamePrecision(l->precision()));
  if (l->precision() == f::Precision::INT8) out << "  activations quantized per row, f32 output";
  out << "\n";
}

}  // namespace

Status InspectDtrn(const uint8_t* data, size_t size, std::ostream& out) {
  out << "file size: " << size << " bytes (" << Human(size) << ")\n";
  auto parsed = format::Header::Parse(data, size);
  if (!parsed.ok()) return parsed.status();
  const format::Header& h = parsed.value();
  out << "format_version: " << h.version << "\n";
  const uint8_t* fbb = data + h.flatbuffer_offset;
  if (!f::ModelBufferHasIdentifier(fbb)) return DataLoss("the FlatBuffer's identifier is not \"DTRN\"");
  flatbuffers::Verifier verifier(fbb, h.flatbuffer_size);
  if (!f::VerifyModelBuffer(verifier)) return DataLoss("the FlatBuffer fails verification (corrupted)");
  const f::Model* m = f::GetModel(fbb);
  out << "producer: " << Str(m->producer())
      << "\ncheckpoint: " << (m->checkpoint_digest() ? m->checkpoint_digest()->str() : std::string("(not recorded)"))
      << "\n";
  const uint64_t seg = h.segment_offset, z = h.segment_size, s = h.flatbuffer_size;
  out << "\n== config\n";
  out << "name: " << Str(m->name()) << "\nd: " << m->d() << "  L: " << m->seq_len() << "  blocks: " << m->blocks()
      << "  heads: " << m->heads() << "  d_ff: " << m->d_ff() << "  trm_hidden: " << m->trm_hidden() << "\n";
  out << "tasks: " << Names(m->tasks()) << "\nbehaviors: " << Names(m->behaviors()) << "\n";
  out << "pooling: " << f::EnumNamePooling(m->pooling()) << "  mtl: " << f::EnumNameMtl(m->mtl())
      << "  experts: shared " << m->experts_shared() << ", per_task " << m->experts_per_task() << ", hidden "
      << List(m->expert_hidden()) << "  towers: " << List(m->tower_hidden()) << "\n";
  if (m->task_gates()) {
    for (flatbuffers::uoffset_t k = 0; k < m->task_gates()->size(); ++k)
      out << "gate " << k << " ("
          << Str(m->task_gates()->Get(k)->layer() ? m->task_gates()->Get(k)->layer()->name() : nullptr)
          << ") over experts " << List(m->task_gates()->Get(k)->experts()) << "\n";
  }
  if (m->seq_fields() && m->seq_fields()->size())
    out << "seq_fields (field indices): " << List(m->seq_fields()) << "\n";
  out << "tables:\n";
  if (m->tables()) {
    for (flatbuffers::uoffset_t i = 0; i < m->tables()->size(); ++i) {
      const f::EmbeddingTable* t = m->tables()->Get(i);
      out << Fmt("  [%u] %-16s vocab %-9" PRId64 " %-7s tensor #%d%s\n", i, Str(t->name()).c_str(), t->vocab(),
                 t->hashed() ? "hashed" : "", t->weight(),
                 static_cast<int>(i) == m->item_table() ? "  (item table)" : "");
    }
  }
  out << "fields:\n";
  if (m->fields()) {
    for (const f::Field* fl : *m->fields()) {
      if (fl->kind() == f::FieldKind::Sparse) {
        out << Fmt("  %-16s %-8s sparse  table %d\n", Str(fl->name()).c_str(), f::EnumNameGroup(fl->group()),
                   fl->table());
      } else {
        out << Fmt("  %-16s %-8s dense   width %d\n", Str(fl->name()).c_str(), f::EnumNameGroup(fl->group()),
                   fl->width());
      }
    }
  }
  out << "\n== layers (name, in -> out, relu, precision)\n";
  if (m->fields()) {
    for (const f::Field* fl : *m->fields()) PrintLinear(out, fl->projection());
  }
  if (m->tim_blocks()) {
    for (const f::Block* b : *m->tim_blocks()) {
      for (const f::Linear* l : {b->attn_in(), b->attn_out(), b->ffn1(), b->ffn2()}) PrintLinear(out, l);
    }
  }
  PrintLinear(out, m->query());
  if (m->trm()) {
    for (const f::Trm* t : *m->trm()) {
      PrintLinear(out, t->fc1());
      PrintLinear(out, t->fc2());
    }
  }
  for (auto* mlps : {m->experts(), m->towers()}) {
    if (!mlps) continue;
    for (const f::Mlp* mlp : *mlps) {
      if (!mlp->layers()) continue;
      for (const f::Linear* l : *mlp->layers()) PrintLinear(out, l);
    }
    if (mlps == m->experts() && m->task_gates()) {
      for (const f::Gate* g : *m->task_gates()) PrintLinear(out, g->layer());
    }
  }
  out << "\n== tensors (#, name, type, shape, bytes, quantization)\n";
  std::map<std::string, std::pair<int, uint64_t>> by_type;
  uint64_t total = 0;
  Status bounds;
  if (m->tensors()) {
    for (flatbuffers::uoffset_t i = 0; i < m->tensors()->size(); ++i) {
      const f::Tensor* t = m->tensors()->Get(i);
      std::string q = "-";
      if (const f::Quantization* qq = t->quantization()) {
        const auto* sc = qq->scale();
        const size_t ns = sc ? sc->size() : 0;
        float lo = 0, hi = 0;
        for (size_t j = 0; j < ns; ++j) {
          lo = j ? std::min(lo, sc->Get(j)) : sc->Get(j);
          hi = j ? std::max(hi, sc->Get(j)) : sc->Get(j);
        }
        q = ns == 1 ? Fmt("per-tensor scale %.4g", lo)
                    : Fmt("%zu scales (dim %d) in [%.3g, %.3g]", ns, qq->quantized_dimension(), lo, hi);
        if (qq->zero_point() && qq->zero_point()->size()) q += Fmt(", %u zero points", qq->zero_point()->size());
      }
      out << Fmt("  %3u %-36s %-5s %-16s %10" PRIu64 "  %s\n", i, Str(t->name()).c_str(), TypeName(t->type()),
                 List(t->shape()).c_str(), t->size(), q.c_str());
      auto& bt = by_type[TypeName(t->type())];
      bt.first++;
      bt.second += t->size();
      total += t->size();
      if (bounds.ok() && (t->offset() % 64 != 0 || t->offset() > z || t->size() > z - t->offset())) {
        bounds = DataLoss("tensor #" + std::to_string(i) + " '" + Str(t->name()) +
                          "' lies outside the constant segment or is misaligned");
      }
    }
  }
  out << "\n== totals\n";
  for (const auto& [type, cb] : by_type)
    out << Fmt("  %-5s %4d tensors %12" PRIu64 " bytes\n", type.c_str(), cb.first, cb.second);
  out << Fmt("  all   %4u tensors %12" PRIu64 " bytes (%s); segment %" PRIu64 " bytes at offset %" PRIu64
             "; FlatBuffer %" PRIu64 " bytes\n",
             m->tensors() ? m->tensors()->size() : 0u, total, Human(total).c_str(), z, seg, s);
  if (m->decisions() && m->decisions()->size()) {
    out << "\n== int8 decisions (measured by the converter)\n";
    for (const f::LayerDecision* dcs : *m->decisions()) {
      out << Fmt("  %-28s %-4s ", Str(dcs->layer()).c_str(), f::EnumNamePrecision(dcs->precision()))
          << Str(dcs->reason()) << "\n";
    }
  }
  out << "\n";
  const uint64_t sum = format::Checksum(data + format::kHeaderSize, size - format::kHeaderSize);
  const bool ok = sum == h.body_checksum;
  out << Fmt("checksum: %s (XXH3-64 of bytes [%zu, %zu): %016" PRIx64 ", stored %016" PRIx64 ")\n",
             ok ? "ok" : "MISMATCH", format::kHeaderSize, size, sum, h.body_checksum);
  if (!ok) return DataLoss("checksum mismatch (corrupted file)");
  DTRN_RETURN_IF_ERROR(bounds);
  auto loaded = Model::FromBuffer(data, size);
  out << "runtime load: " << (loaded.ok() ? std::string("ok") : loaded.status().ToString()) << "\n";
  if (!loaded.ok()) return loaded.status();
  return Status::Ok();
}

Status InspectDtrnFile(const std::string& path, std::ostream& out) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return NotFound("cannot open '" + path + "'");
  const std::streamoff len = in.tellg();
  std::vector<uint8_t> bytes(len > 0 ? static_cast<size_t>(len) : 0);
  in.seekg(0);
  if (len > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), len)) return IoError("cannot read '" + path + "'");
  out << "model: " << path << "\n";
  return InspectDtrn(bytes.data(), bytes.size(), out);
}

}  // namespace dtrn::convert
