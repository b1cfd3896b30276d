// Verification of an untrusted .dtrn file. Nothing is read before it is checked:
//   1. the framing (format::Header::Parse: magic, version, header checksum, regions), then
//      the checksum over every byte after the header (LoadOptions::verify_checksum);
//   2. the FlatBuffer (identifier, FlatBuffers verifier, version, zero padding);
//   3. every tensor (dtype, shape x dtype = size, 64-aligned, inside the segment, no two
//      overlapping, each used by exactly one role);
//   4. the config and every layer against it: shapes, relu flags, enums in range,
//      quantization scales positive and finite, zero points in range, gate wiring, and
//      no int8 layer's int32 accumulator able to overflow.
// Without the checksum (the fast path) 2-4 still hold, so a damaged file never reads out
// of bounds; with it (the default) any change to the file is refused.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>

#include "model_impl.h"

namespace dtrn {

// The public enums mirror the schema's.
static_assert(static_cast<int>(FieldGroup::kUser) == static_cast<int>(fb::Group::User) &&
                  static_cast<int>(FieldGroup::kContext) == static_cast<int>(fb::Group::Context) &&
                  static_cast<int>(FieldGroup::kItem) == static_cast<int>(fb::Group::Item),
              "FieldGroup must match the schema's Group");
static_assert(static_cast<int>(FieldKind::kSparse) == static_cast<int>(fb::FieldKind::Sparse) &&
                  static_cast<int>(FieldKind::kDense) == static_cast<int>(fb::FieldKind::Dense),
              "FieldKind must match the schema's FieldKind");

namespace {

constexpr int64_t kMaxDim = int64_t{1} << 24;  // sanity bound on config sizes

std::string ShapeString(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

// An empty vector's data pointer is never read (FlatBuffers 2.0 leaves empty int64 vectors
// 4-aligned), so only a non-empty one must be aligned.
template <typename V>
bool Aligned8(const V* v) {
  return v->size() == 0 || reinterpret_cast<uintptr_t>(v->data()) % 8 == 0;
}

bool PositiveNormal(float x) { return x > 0.f && std::isnormal(x); }
bool PositiveFinite(float x) { return x > 0.f && std::isfinite(x); }

class Verifier {
 public:
  Verifier(const std::string& where, ModelView* m) : where_(where), m_(m) {}

  Status Run(const LoadOptions& options) {
    DTRN_RETURN_IF_ERROR(CheckFraming(options));
    DTRN_RETURN_IF_ERROR(CheckTensors());
    DTRN_RETURN_IF_ERROR(ResolveConfig());
    DTRN_RETURN_IF_ERROR(ResolveTables());
    DTRN_RETURN_IF_ERROR(ResolveFields());
    DTRN_RETURN_IF_ERROR(ResolveTim());
    DTRN_RETURN_IF_ERROR(ResolveTrm());
    DTRN_RETURN_IF_ERROR(ResolveHead());
    return CheckEveryTensorUsed();
  }

 private:
  Status Loss(const std::string& msg) const { return DataLoss(where_ + ": " + msg); }
  Status Bad(const std::string& msg) const { return InvalidArgument(where_ + ": " + msg); }
  Status Prefixed(const Status& st) const { return Status(st.code(), where_ + ": " + st.message()); }

  Status CheckFraming(const LoadOptions& options) {
    const uint8_t* b = m_->bytes;
    const size_t size = m_->size;
    auto header = format::Header::Parse(b, size);
    if (!header.ok()) return Prefixed(header.status());
    const format::Header& h = header.value();
    m_->header = h;
    if (options.verify_checksum) {
      Status st = h.VerifyBody(b, size);
      if (!st.ok()) return Prefixed(st);
    }
    const uint8_t* fbb = b + h.flatbuffer_offset;
    if (!flatbuffers::BufferHasIdentifier(fbb, fb::ModelIdentifier()))
      return Loss("corrupted: the FlatBuffer's identifier is not \"" + std::string(fb::ModelIdentifier()) + "\"");
    flatbuffers::Verifier v(fbb, h.flatbuffer_size);
    if (!fb::VerifyModelBuffer(v))
      return Loss("corrupted: the FlatBuffer (" + std::to_string(h.flatbuffer_size) + " bytes) fails verification");
    m_->fbm = fb::GetModel(fbb);
    if (m_->fbm->format_version() != h.version)
      return Loss("corrupted: Model.format_version " + std::to_string(m_->fbm->format_version()) +
                  " differs from the header's " + std::to_string(h.version));
    for (uint64_t i = h.flatbuffer_offset + h.flatbuffer_size; i < h.segment_offset; ++i)
      if (b[i] != 0) return Loss("corrupted: non-zero padding byte at offset " + std::to_string(i));
    m_->segment = b + h.segment_offset;
    segment_size_ = h.segment_size;
    return Status::Ok();
  }

  Status CheckTensors() {
    const auto* ts = m_->fbm->tensors();
    if (ts == nullptr) return Loss("model has no tensor list");
    std::vector<std::pair<uint64_t, uint32_t>> extents;  // (offset, index) of non-empty tensors
    for (flatbuffers::uoffset_t i = 0; i < ts->size(); ++i) {
      const fb::Tensor* t = ts->Get(i);
      const std::string what = "tensor " + std::to_string(i) + " '" + Str(t->name()) + "'";
      if (t->shape() == nullptr) return Loss(what + ": no shape");
      // The FlatBuffers verifier (2.0) checks a vector's length field only: a vector of 8-byte
      // elements may sit 4 bytes off, and reading it would be a misaligned load (undefined
      // behaviour; found by fuzz/fuzz_dtrn_load). A FlatBuffers builder always aligns them.
      if (!Aligned8(t->shape()) ||
          (t->quantization() && t->quantization()->zero_point() && !Aligned8(t->quantization()->zero_point())))
        return Loss(what + ": corrupted: a vector of 64-bit integers is not 8-byte aligned");
      const size_t elem = format::DTypeSize(t->type());
      if (elem == 0) return Loss(what + ": unknown dtype " + std::to_string(static_cast<int>(t->type())));
      uint64_t numel = 1;
      for (int64_t dim : *t->shape()) {
        if (dim < 0 || dim > static_cast<int64_t>(segment_size_ + 1))
          return Loss(what + ": invalid dimension " + std::to_string(dim));
        numel *= static_cast<uint64_t>(dim);
        if (numel > segment_size_ + 1) return Loss(what + ": shape larger than the constant segment");
      }
      if (numel * elem != t->size())
        return Loss(what + ": size " + std::to_string(t->size()) + " bytes does not match shape x " +
                    format::DTypeName(t->type()) + " (" + std::to_string(numel * elem) + " bytes)");
      if (t->offset() % format::kAlignment != 0)
        return Loss(what + ": offset " + std::to_string(t->offset()) + " is not 64-aligned");
      if (t->offset() > segment_size_ || t->size() > segment_size_ - t->offset())
        return Loss(what + ": bytes [" + std::to_string(t->offset()) + ", +" + std::to_string(t->size()) +
                    ") lie outside the constant segment (" + std::to_string(segment_size_) + " bytes)");
      if (t->size() > 0) extents.emplace_back(t->offset(), i);
    }
    std::sort(extents.begin(), extents.end());
    for (size_t j = 1; j < extents.size(); ++j) {
      const fb::Tensor* a = ts->Get(extents[j - 1].second);
      const fb::Tensor* b = ts->Get(extents[j].second);
      if (a->offset() + a->size() > b->offset())
        return Loss("tensors " + std::to_string(extents[j - 1].second) + " '" + Str(a->name()) + "' and " +
                    std::to_string(extents[j].second) + " '" + Str(b->name()) + "' overlap in the constant segment");
    }
    uses_.assign(ts->size(), 0);
    return Status::Ok();
  }

  // The tensor at `index`, checked to have the dtype and shape `role` needs; counted as used.
  Result<const fb::Tensor*> Tensor(int index, const std::string& role, DType type, const std::vector<int64_t>& shape) {
    const auto* ts = m_->fbm->tensors();
    if (index < 0 || static_cast<uint64_t>(index) >= ts->size())
      return Bad(role + ": tensor index " + std::to_string(index) + " out of range (" + std::to_string(ts->size()) +
                 " tensors)");
    const fb::Tensor* t = ts->Get(index);
    if (t->type() != type)
      return Bad(role + ": tensor '" + Str(t->name()) + "' has dtype " + format::DTypeName(t->type()) + ", expected " +
                 format::DTypeName(type));
    std::vector<int64_t> got(t->shape()->begin(), t->shape()->end());
    if (got != shape)
      return Bad(role + ": tensor '" + Str(t->name()) + "' has shape " + ShapeString(got) + ", expected " +
                 ShapeString(shape));
    if (uses_[index]++ != 0)
      return Bad(role + ": tensor " + std::to_string(index) + " '" + Str(t->name()) +
                 "' is already used by another role (each tensor belongs to one)");
    return t;
  }

  Status CheckEveryTensorUsed() const {
    for (size_t i = 0; i < uses_.size(); ++i)
      if (uses_[i] == 0)
        return Bad("tensor " + std::to_string(i) + " '" + Str(m_->fbm->tensors()->Get(i)->name()) +
                   "' is not used by any layer or table");
    return Status::Ok();
  }

  const uint8_t* Data(const fb::Tensor* t) const { return m_->segment + t->offset(); }

  Status ResolveLinear(const fb::Linear* l, const std::string& role, int64_t in, int64_t out, bool relu,
                       LinearSpec* spec) {
    if (l == nullptr) return Bad(role + ": missing");
    spec->name = Str(l->name());
    const std::string what = role + " ('" + spec->name + "')";
    if (l->in_features() != in || l->out_features() != out)
      return Bad(what + ": shape " + std::to_string(l->out_features()) + "x" + std::to_string(l->in_features()) +
                 " (out x in), the config needs " + std::to_string(out) + "x" + std::to_string(in));
    if (l->relu() != relu)
      return Bad(what + ": relu is " + (l->relu() ? "true" : "false") + ", the model requires " +
                 (relu ? "true" : "false"));
    spec->in = static_cast<int>(in);
    spec->out = static_cast<int>(out);
    spec->relu = relu;
    if (l->precision() != Precision::F32 && l->precision() != Precision::INT8)
      return Bad(what + ": unknown precision " + std::to_string(static_cast<int>(l->precision())));
    spec->precision = l->precision();
    DTRN_ASSIGN_OR_RETURN(auto b, Tensor(l->bias(), what + " bias", DType::F32, {out}));
    spec->bias_f32 = reinterpret_cast<const float*>(Data(b));
    if (l->precision() == Precision::F32) {
      DTRN_ASSIGN_OR_RETURN(auto w, Tensor(l->weight(), what + " weight", DType::F32, {out, in}));
      spec->weight_f32 = reinterpret_cast<const float*>(Data(w));
      return Status::Ok();
    }
    m_->has_int8 = true;
    DTRN_ASSIGN_OR_RETURN(auto w, Tensor(l->weight(), what + " weight", DType::INT8, {out, in}));
    const fb::Quantization* q = w->quantization();
    if (q == nullptr || q->scale() == nullptr || q->scale()->size() != static_cast<uint64_t>(out))
      return Bad(what + ": INT8 weight needs " + std::to_string(out) + " per-channel scales");
    if (q->quantized_dimension() != 0)
      return Bad(what + ": INT8 weight quantized_dimension is " + std::to_string(q->quantized_dimension()) +
                 ", expected 0");
    if (q->zero_point() != nullptr)
      for (int64_t zp : *q->zero_point())
        if (zp != 0) return Bad(what + ": INT8 weight must be symmetric (zero point " + std::to_string(zp) + ")");
    for (int64_t o = 0; o < out; ++o) {
      const float s = q->scale()->Get(static_cast<flatbuffers::uoffset_t>(o));
      if (!PositiveNormal(s))
        return Bad(what + ": weight scale of output " + std::to_string(o) + " is " + std::to_string(s));
    }
    spec->weight_i8 = reinterpret_cast<const int8_t*>(Data(w));
    spec->weight_scale = q->scale()->data();
    // The kernels accumulate sum_i q_i * w[o][i] in int32, q_i in [0, 255] (dynamic uint8
    // activations): that must not overflow for any input, so 255 * sum_i |w[o][i]| <=
    // INT32_MAX. Only a damaged or hostile file with a huge in_features can break it; one
    // pass over the layer's weights.
    for (int64_t o = 0; o < out; ++o) {
      int64_t bound = 0;
      const int8_t* row = spec->weight_i8 + o * in;
      for (int64_t i = 0; i < in; ++i) bound += 255 * std::abs(static_cast<int64_t>(row[i]));
      if (bound > INT32_MAX)
        return Bad(what + ": output " + std::to_string(o) +
                   "'s int32 accumulator can overflow (255 * sum |w| = " + std::to_string(bound) + ")");
    }
    return Status::Ok();
  }

  Status Names(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v, const char* what,
               std::vector<std::string>* out) {
    if (v == nullptr || v->size() == 0) return Bad(std::string("no ") + what);
    if (v->size() > 1024) return Bad(std::string("too many ") + what);
    std::set<std::string> seen;
    for (const auto* s : *v) {
      std::string name = Str(s);
      if (name.empty()) return Bad(std::string("empty name in ") + what);
      if (!seen.insert(name).second) return Bad(std::string("duplicate name '") + name + "' in " + what);
      out->push_back(name);
    }
    return Status::Ok();
  }

  Status Range(const char* what, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
      return Bad(std::string(what) + " = " + std::to_string(v) + " outside [" + std::to_string(lo) + ", " +
                 std::to_string(hi) + "]");
    return Status::Ok();
  }

  Status ResolveConfig() {
    const fb::Model* f = m_->fbm;
    m_->name = Str(f->name());
    m_->producer = Str(f->producer());
    m_->checkpoint_digest = Str(f->checkpoint_digest());
    DTRN_RETURN_IF_ERROR(Names(f->tasks(), "tasks", &m_->tasks));
    DTRN_RETURN_IF_ERROR(Names(f->behaviors(), "behaviors", &m_->behaviors));
    m_->K = static_cast<int>(m_->tasks.size());
    m_->B = static_cast<int>(m_->behaviors.size());
    DTRN_RETURN_IF_ERROR(Range("d", f->d(), 1, 65536));
    DTRN_RETURN_IF_ERROR(Range("seq_len", f->seq_len(), 1, 1 << 20));
    DTRN_RETURN_IF_ERROR(Range("blocks", f->blocks(), 0, 64));
    DTRN_RETURN_IF_ERROR(Range("heads", f->heads(), 1, f->d()));
    DTRN_RETURN_IF_ERROR(Range("d_ff", f->d_ff(), 1, kMaxDim));
    DTRN_RETURN_IF_ERROR(Range("trm_hidden", f->trm_hidden(), 1, kMaxDim));
    if (f->d() % f->heads() != 0)
      return Bad("d = " + std::to_string(f->d()) + " is not a multiple of heads = " + std::to_string(f->heads()));
    m_->d = f->d();
    m_->L = f->seq_len();
    m_->blocks = f->blocks();
    m_->heads = f->heads();
    m_->d_ff = f->d_ff();
    m_->trm_hidden = f->trm_hidden();
    switch (f->pooling()) {
      case Pooling::Target:
      case Pooling::Mean: m_->pooling = f->pooling(); break;
      default: return Bad("unknown pooling " + std::to_string(static_cast<int>(f->pooling())));
    }
    switch (f->mtl()) {
      case Mtl::Towers:
      case Mtl::Mmoe:
      case Mtl::Ple: m_->mtl = f->mtl(); break;
      default: return Bad("unknown mtl head " + std::to_string(static_cast<int>(f->mtl())));
    }
    DTRN_RETURN_IF_ERROR(Range("experts_shared", f->experts_shared(), 0, 1024));
    DTRN_RETURN_IF_ERROR(Range("experts_per_task", f->experts_per_task(), 0, 1024));
    m_->experts_shared = f->experts_shared();
    m_->experts_per_task = f->experts_per_task();
    if (f->expert_hidden())
      for (int h : *f->expert_hidden()) {
        DTRN_RETURN_IF_ERROR(Range("expert_hidden width", h, 1, kMaxDim));
        m_->expert_hidden.push_back(h);
      }
    if (f->tower_hidden())
      for (int h : *f->tower_hidden()) {
        DTRN_RETURN_IF_ERROR(Range("tower_hidden width", h, 1, kMaxDim));
        m_->tower_hidden.push_back(h);
      }
    if (m_->mtl == Mtl::Mmoe) {
      if (m_->experts_shared < 1) return Bad("mmoe needs at least one shared expert");
      if (m_->experts_per_task != 0) return Bad("mmoe has no per-task experts (experts_per_task must be 0)");
    }
    if (m_->mtl == Mtl::Ple && m_->experts_shared + m_->experts_per_task < 1)
      return Bad("ple needs at least one expert");
    if (m_->mtl != Mtl::Towers && m_->expert_hidden.empty()) return Bad("experts need at least one hidden layer");
    return Status::Ok();
  }

  Status ResolveTables() {
    const auto* ts = m_->fbm->tables();
    if (ts == nullptr || ts->size() == 0) return Bad("no embedding tables");
    for (flatbuffers::uoffset_t i = 0; i < ts->size(); ++i) {
      const fb::EmbeddingTable* t = ts->Get(i);
      TableSpec spec;
      spec.name = Str(t->name());
      const std::string what = "table " + std::to_string(i) + " '" + spec.name + "'";
      if (t->vocab() < 1) return Bad(what + ": vocab " + std::to_string(t->vocab()) + " must be >= 1");
      spec.vocab = t->vocab();
      spec.hashed = t->hashed();
      const auto* tensors = m_->fbm->tensors();
      if (t->weight() < 0 || static_cast<uint64_t>(t->weight()) >= tensors->size())
        return Bad(what + ": tensor index " + std::to_string(t->weight()) + " out of range");
      const DType type = tensors->Get(t->weight())->type();
      if (type != DType::F32 && type != DType::F16 && type != DType::INT8)
        return Bad(what + ": " + format::DTypeName(type) + " embeddings are not supported");
      DTRN_ASSIGN_OR_RETURN(auto w, Tensor(t->weight(), what, type, {spec.vocab, m_->d}));
      spec.data = Data(w);
      spec.type = type;
      if (type == DType::INT8) {
        const fb::Quantization* q = w->quantization();
        if (q == nullptr || q->scale() == nullptr || q->scale()->size() != static_cast<uint64_t>(spec.vocab))
          return Bad(what + ": INT8 table needs one scale per row (" + std::to_string(spec.vocab) + ")");
        if (q->quantized_dimension() != 0) return Bad(what + ": INT8 table must be quantized along dimension 0");
        for (flatbuffers::uoffset_t r = 0; r < q->scale()->size(); ++r)
          if (!PositiveFinite(q->scale()->Get(r)))
            return Bad(what + ": row " + std::to_string(r) + " scale " + std::to_string(q->scale()->Get(r)) +
                       " is not positive and finite");
        spec.row_scale = q->scale()->data();
      } else if (w->quantization() != nullptr) {
        return Bad(what + ": a " + format::DTypeName(type) + " table has no quantization");
      }
      m_->tables.push_back(std::move(spec));
    }
    return Status::Ok();
  }

  Status ResolveFields() {
    const auto* fs = m_->fbm->fields();
    if (fs == nullptr || fs->size() == 0) return Bad("no fields");
    if (fs->size() > 4096) return Bad("too many fields");
    std::set<std::string> seen;
    std::vector<int> table_users(m_->tables.size(), 0);
    for (flatbuffers::uoffset_t i = 0; i < fs->size(); ++i) {
      const fb::Field* f = fs->Get(i);
      FieldInfo info;
      FieldSpec spec;
      info.name = Str(f->name());
      const std::string what = "field " + std::to_string(i) + " '" + info.name + "'";
      if (info.name.empty()) return Bad(what + ": empty name");
      if (!seen.insert(info.name).second) return Bad(what + ": duplicate field name");
      const int g = static_cast<int>(f->group());
      if (g < 0 || g > 2) return Bad(what + ": unknown group " + std::to_string(g));
      info.group = static_cast<FieldGroup>(g);
      if (f->kind() == fb::FieldKind::Sparse) {
        info.kind = FieldKind::kSparse;
        if (f->table() < 0 || static_cast<size_t>(f->table()) >= m_->tables.size())
          return Bad(what + ": table index " + std::to_string(f->table()) + " out of range (" +
                     std::to_string(m_->tables.size()) + " tables)");
        if (f->projection() != nullptr || f->width() != 0) return Bad(what + ": a sparse field has no projection");
        spec.table = f->table();
        ++table_users[spec.table];
        info.vocab = m_->tables[spec.table].vocab;
        info.hashed = m_->tables[spec.table].hashed;
      } else if (f->kind() == fb::FieldKind::Dense) {
        info.kind = FieldKind::kDense;
        if (f->table() != -1)
          return Bad(what + ": a dense field has no table (table " + std::to_string(f->table()) + ")");
        DTRN_RETURN_IF_ERROR(Range("dense field width", f->width(), 1, kMaxDim));
        info.width = spec.width = f->width();
        DTRN_RETURN_IF_ERROR(
            ResolveLinear(f->projection(), what + " projection", f->width(), m_->d, false, &spec.projection));
      } else {
        return Bad(what + ": unknown kind " + std::to_string(static_cast<int>(f->kind())));
      }
      auto& group = m_->group_fields[g];
      spec.group_slot = static_cast<int>(group.size());
      group.push_back(static_cast<int>(i));
      if (info.group == FieldGroup::kItem && m_->item_field < 0) {
        if (info.kind != FieldKind::kSparse || info.name != "item_id")
          return Bad(what + ": the first item field must be the sparse field 'item_id'");
        m_->item_field = static_cast<int>(i);
      }
      m_->fields.push_back(std::move(info));
      m_->field_specs.push_back(std::move(spec));
    }
    for (size_t t = 0; t < table_users.size(); ++t)
      if (table_users[t] == 0) return Bad("table " + std::to_string(t) + " '" + m_->tables[t].name + "' has no field");
    if (m_->item_field < 0) return Bad("no item field: the first item field must be the sparse field 'item_id'");
    m_->item_table = m_->fbm->item_table();
    if (m_->item_table != m_->field_specs[m_->item_field].table)
      return Bad("item_table = " + std::to_string(m_->item_table) + " is not item_id's table (" +
                 std::to_string(m_->field_specs[m_->item_field].table) + ")");
    m_->F = static_cast<int>(m_->fields.size());
    m_->n = m_->F + m_->B;
    if (const auto* sf = m_->fbm->seq_fields()) {
      for (flatbuffers::uoffset_t j = 0; j < sf->size(); ++j) {
        const int i = sf->Get(j);
        const std::string what = "seq_fields[" + std::to_string(j) + "]";
        if (i < 0 || i >= m_->F) return Bad(what + ": field index " + std::to_string(i) + " out of range");
        const FieldInfo& info = m_->fields[i];
        if (info.group != FieldGroup::kItem || info.kind != FieldKind::kSparse || i == m_->item_field)
          return Bad(what + ": '" + info.name + "' is not an item sparse field other than item_id");
        if (std::find(m_->seq_fields.begin(), m_->seq_fields.end(), i) != m_->seq_fields.end())
          return Bad(what + ": '" + info.name + "' is listed twice");
        m_->seq_fields.push_back(i);
      }
    }
    return Status::Ok();
  }

  Status ResolveTim() {
    const fb::Model* f = m_->fbm;
    const int64_t d = m_->d, K = m_->K, B = m_->B;
    DTRN_ASSIGN_OR_RETURN(auto pos, Tensor(f->positions(), "positions", DType::F32, {m_->L, d}));
    m_->positions = reinterpret_cast<const float*>(Data(pos));
    DTRN_ASSIGN_OR_RETURN(auto cln, Tensor(f->cln(), "cln", DType::F32, {K, B, 2 * m_->blocks, 2, d}));
    m_->cln = reinterpret_cast<const float*>(Data(cln));
    const auto* bs = f->tim_blocks();
    const size_t nb = bs ? bs->size() : 0;
    if (nb != static_cast<size_t>(m_->blocks))
      return Bad("tim_blocks has " + std::to_string(nb) + " blocks, the config says " + std::to_string(m_->blocks));
    for (int i = 0; i < m_->blocks; ++i) {
      const fb::Block* b = bs->Get(i);
      const std::string role = "tim_blocks[" + std::to_string(i) + "]";
      if (b == nullptr) return Bad(role + ": missing");
      BlockSpec spec;
      DTRN_RETURN_IF_ERROR(ResolveLinear(b->attn_in(), role + ".attn_in", d, 3 * d, false, &spec.attn_in));
      DTRN_RETURN_IF_ERROR(ResolveLinear(b->attn_out(), role + ".attn_out", d, d, false, &spec.attn_out));
      DTRN_RETURN_IF_ERROR(ResolveLinear(b->ffn1(), role + ".ffn1", d, m_->d_ff, true, &spec.ffn1));
      DTRN_RETURN_IF_ERROR(ResolveLinear(b->ffn2(), role + ".ffn2", m_->d_ff, d, false, &spec.ffn2));
      m_->tim_blocks.push_back(std::move(spec));
    }
    if (m_->pooling == Pooling::Target) {
      DTRN_RETURN_IF_ERROR(ResolveLinear(f->query(), "query", d, d, false, &m_->query));
      m_->has_query = true;
    } else if (f->query() != nullptr) {
      return Bad("query: mean pooling has no target-attention query");
    }
    return Status::Ok();
  }

  Status ResolveTrm() {
    const auto* ts = m_->fbm->trm();
    const size_t nt = ts ? ts->size() : 0;
    if (nt != static_cast<size_t>(m_->K))
      return Bad("trm has " + std::to_string(nt) + " entries, expected one per task (" + std::to_string(m_->K) + ")");
    for (int k = 0; k < m_->K; ++k) {
      const fb::Trm* t = ts->Get(k);
      const std::string role = "trm[" + std::to_string(k) + "]";
      if (t == nullptr) return Bad(role + ": missing");
      TrmSpec spec;
      DTRN_RETURN_IF_ERROR(ResolveLinear(t->fc1(), role + ".fc1", m_->n, m_->trm_hidden, true, &spec.fc1));
      DTRN_RETURN_IF_ERROR(ResolveLinear(t->fc2(), role + ".fc2", m_->trm_hidden, m_->n, false, &spec.fc2));
      m_->trm.push_back(std::move(spec));
    }
    return Status::Ok();
  }

  Status ResolveMlp(const fb::Mlp* mlp, const std::string& role, int64_t in, const std::vector<int>& widths,
                    bool relu_last, std::vector<LinearSpec>* out) {
    if (mlp == nullptr) return Bad(role + ": missing");
    const size_t nl = mlp->layers() ? mlp->layers()->size() : 0;
    if (nl != widths.size())
      return Bad(role + ": " + std::to_string(nl) + " layers, the config needs " + std::to_string(widths.size()));
    for (size_t j = 0; j < nl; ++j) {
      LinearSpec spec;
      const bool relu = relu_last || j + 1 < nl;
      DTRN_RETURN_IF_ERROR(ResolveLinear(mlp->layers()->Get(static_cast<flatbuffers::uoffset_t>(j)),
                                         role + ".layers[" + std::to_string(j) + "]", in, widths[j], relu, &spec));
      in = widths[j];
      out->push_back(std::move(spec));
    }
    return Status::Ok();
  }

  // Experts and gates. The file lists each gate's experts; the checks here are structural
  // (counts, ranges, no expert twice in a gate or unused) and the head type's shape
  // (mmoe: every gate over every expert; ple: E_t + E_s experts per gate).
  Status ResolveHead() {
    const fb::Model* f = m_->fbm;
    const int64_t rd = static_cast<int64_t>(m_->n) * m_->d;
    if (rd > kMaxDim) return Bad("n * d = " + std::to_string(rd) + " is too large");
    int num_experts = 0, gate_out = 0;
    if (m_->mtl == Mtl::Mmoe) num_experts = gate_out = m_->experts_shared;
    if (m_->mtl == Mtl::Ple) {
      num_experts = m_->K * m_->experts_per_task + m_->experts_shared;
      gate_out = m_->experts_per_task + m_->experts_shared;
    }
    const size_t ne = f->experts() ? f->experts()->size() : 0;
    if (ne != static_cast<size_t>(num_experts))
      return Bad("experts has " + std::to_string(ne) + " entries, the config needs " + std::to_string(num_experts));
    for (int e = 0; e < num_experts; ++e) {
      std::vector<LinearSpec> layers;
      DTRN_RETURN_IF_ERROR(ResolveMlp(f->experts()->Get(e), "experts[" + std::to_string(e) + "]", rd, m_->expert_hidden,
                                      /*relu_last=*/true, &layers));
      m_->experts.push_back(std::move(layers));
    }
    const size_t ng = f->task_gates() ? f->task_gates()->size() : 0;
    const size_t want_gates = m_->mtl == Mtl::Towers ? 0 : m_->K;
    if (ng != want_gates)
      return Bad("task_gates has " + std::to_string(ng) + " entries, the config needs " + std::to_string(want_gates));
    std::vector<int> used(num_experts, 0);
    for (size_t k = 0; k < ng; ++k) {
      const fb::Gate* g = f->task_gates()->Get(static_cast<flatbuffers::uoffset_t>(k));
      const std::string role = "task_gates[" + std::to_string(k) + "]";
      if (g == nullptr) return Bad(role + ": missing");
      GateSpec spec;
      DTRN_RETURN_IF_ERROR(ResolveLinear(g->layer(), role, rd, gate_out, false, &spec.layer));
      const size_t nx = g->experts() ? g->experts()->size() : 0;
      if (nx != static_cast<size_t>(gate_out))
        return Bad(role + ": lists " + std::to_string(nx) + " experts, its layer has " + std::to_string(gate_out) +
                   " outputs");
      for (int e : *g->experts()) {
        if (e < 0 || e >= num_experts)
          return Bad(role + ": expert index " + std::to_string(e) + " out of range (" + std::to_string(num_experts) +
                     " experts)");
        if (std::find(spec.experts.begin(), spec.experts.end(), e) != spec.experts.end())
          return Bad(role + ": expert " + std::to_string(e) + " listed twice");
        spec.experts.push_back(e);
        ++used[e];
      }
      m_->gates.push_back(std::move(spec));
    }
    for (int e = 0; e < num_experts; ++e) {
      const bool shared_count_ok = used[e] == 1 || used[e] == m_->K;
      if (used[e] == 0 || (m_->mtl == Mtl::Mmoe && used[e] != m_->K) || !shared_count_ok)
        return Bad("experts[" + std::to_string(e) + "] is in " + std::to_string(used[e]) + " of " +
                   std::to_string(m_->K) + " gates (a task's own expert is in one, a shared expert in every gate)");
    }
    const size_t nt = f->towers() ? f->towers()->size() : 0;
    if (nt != static_cast<size_t>(m_->K))
      return Bad("towers has " + std::to_string(nt) + " entries, expected one per task (" + std::to_string(m_->K) +
                 ")");
    std::vector<int> widths = m_->tower_hidden;
    widths.push_back(1);
    const int64_t tower_in = m_->mtl == Mtl::Towers ? rd : m_->expert_hidden.back();
    for (int k = 0; k < m_->K; ++k) {
      std::vector<LinearSpec> layers;
      DTRN_RETURN_IF_ERROR(ResolveMlp(f->towers()->Get(k), "towers[" + std::to_string(k) + "]", tower_in, widths,
                                      /*relu_last=*/false, &layers));
      m_->towers.push_back(std::move(layers));
    }
    return Status::Ok();
  }

  std::string where_;
  ModelView* m_;
  uint64_t segment_size_ = 0;
  std::vector<int> uses_;  // per tensor: roles that read it
};

}  // namespace

Status VerifyAndResolve(const std::string& where, const LoadOptions& options, ModelView* impl) {
  return Verifier(where, impl).Run(options);
}

}  // namespace dtrn
