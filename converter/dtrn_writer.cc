#include "dtrn_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <xxhash.h>

#ifndef DTRN_VERSION
#define DTRN_VERSION "0"
#endif

namespace dtrn::convert {
namespace {

namespace f = dtrn::fb;
using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

constexpr uint64_t kAlign = 64;
uint64_t Align(uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

Offset<f::Linear> PutLinear(FlatBufferBuilder& b, const LinearDesc& l) {
  return f::CreateLinear(b, b.CreateString(l.name), l.in, l.out, l.relu, l.precision, l.weight, l.bias, l.input_scale,
                         l.input_zero_point, l.output_scale, l.output_zero_point);
}

Offset<f::Mlp> PutMlp(FlatBufferBuilder& b, const std::vector<LinearDesc>& layers) {
  std::vector<Offset<f::Linear>> v;
  for (const LinearDesc& l : layers) v.push_back(PutLinear(b, l));
  return f::CreateMlp(b, b.CreateVector(v));
}

std::string Errno() { return std::strerror(errno); }

}  // namespace

std::string ProducerString() { return std::string("dtrn-convert ") + DTRN_VERSION; }

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
    if (m.tensors[i].nbytes()) std::memcpy(segment.data() + offsets[i], m.tensors[i].data->data(), m.tensors[i].nbytes());
  }
  const uint64_t checksum = XXH3_64bits(segment.data(), segment.size());

  FlatBufferBuilder b(1 << 16);
  std::vector<Offset<f::Tensor>> tensors;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const TensorDesc& t = m.tensors[i];
    Offset<f::Quantization> q = 0;
    if (!t.scales.empty()) {
      q = f::CreateQuantization(b, b.CreateVector(t.scales), b.CreateVector(t.zero_points), t.quantized_dimension);
    }
    tensors.push_back(f::CreateTensor(b, b.CreateString(t.name), b.CreateVector(t.shape), t.type, offsets[i],
                                      t.nbytes(), q));
  }
  std::vector<Offset<f::EmbeddingTable>> tables;
  for (size_t i = 0; i < c.tables.size(); ++i) {
    tables.push_back(f::CreateEmbeddingTable(b, b.CreateString(c.tables[i].name), c.tables[i].vocab,
                                             c.tables[i].hashed, m.table_weight[i]));
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
  std::vector<Offset<f::Linear>> gates;
  for (const LinearDesc& g : m.gates) gates.push_back(PutLinear(b, g));
  std::vector<Offset<f::LayerDecision>> decisions;
  for (const DecisionDesc& dd : m.decisions) {
    decisions.push_back(f::CreateLayerDecision(b, b.CreateString(dd.layer), dd.precision, b.CreateString(dd.reason)));
  }
  std::vector<Offset<flatbuffers::String>> tasks, behaviors;
  for (const auto& s : c.tasks) tasks.push_back(b.CreateString(s));
  for (const auto& s : c.behaviors) behaviors.push_back(b.CreateString(s));
  const Offset<f::Linear> query = m.has_query ? PutLinear(b, m.query) : 0;
  const f::Pooling pooling = c.pooling == PoolingKind::kTarget ? f::Pooling::Target : f::Pooling::Mean;
  const f::Mtl mtl = c.mtl == MtlKind::kTowers ? f::Mtl::Towers : c.mtl == MtlKind::kMmoe ? f::Mtl::Mmoe : f::Mtl::Ple;
  auto root = f::CreateModel(
      b, kFormatVersion, b.CreateString(c.name), b.CreateString(ProducerString()), c.d, b.CreateVector(tasks),
      b.CreateVector(behaviors), c.L, c.blocks, c.heads, c.d_ff, b.CreateVector(tables), b.CreateVector(fields),
      c.item_table, pooling, mtl, c.experts_shared, c.experts_per_task, b.CreateVector(c.expert_hidden),
      b.CreateVector(c.towers), c.trm_hidden, m.positions, m.cln, b.CreateVector(blocks), query, b.CreateVector(trm),
      b.CreateVector(experts), b.CreateVector(gates), b.CreateVector(towers), b.CreateVector(tensors), z, checksum,
      b.CreateVector(decisions));
  f::FinishSizePrefixedModelBuffer(b, root);

  const uint64_t head = b.GetSize();  // 4 + S
  const uint64_t seg_start = Align(head);
  std::vector<uint8_t> out(seg_start + z, 0);
  std::memcpy(out.data(), b.GetBufferPointer(), head);
  if (z) std::memcpy(out.data() + seg_start, segment.data(), z);
  return out;
}

Status WriteFileAtomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string tmpl = path + ".tmp-XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  if (fd < 0) return IoError("cannot create a temporary file beside '" + path + "': " + Errno());
  const std::string tmp = name.data();
  auto fail = [&](const std::string& what) {
    const std::string msg = what + " '" + tmp + "': " + Errno();
    ::close(fd);
    ::unlink(tmp.c_str());
    return IoError(msg);
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("cannot write");
    done += static_cast<size_t>(n);
  }
  const mode_t mask = ::umask(0);  // mkstemp makes 0600; give the usual 0666 & ~umask
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0) return fail("cannot chmod");
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    const std::string msg = "cannot close '" + tmp + "': " + Errno();
    ::unlink(tmp.c_str());
    return IoError(msg);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string msg = "cannot rename '" + tmp + "' to '" + path + "': " + Errno();
    ::unlink(tmp.c_str());
    return IoError(msg);
  }
  // The rename itself is durable only once the directory is synced.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace dtrn::convert
