// libFuzzer target: scoring valid models with structured fuzzed requests. The input bytes
// drive a FuzzedDataProvider that picks one of four models (the test model builder's: f32,
// int8 tables and head, seq_fields, ple + mean pooling) and builds a Request near the
// boundaries: ids at 0, V-1, V, -1, INT64_MIN/MAX or anything; dense values with NaN, Inf
// and wrong widths; sequences of length 0..L+5 (out-of-range ids in the part truncation
// drops are valid); side ids of other lengths; N in 0..1000; weights of any count with
// NaN/Inf. An oracle here says whether the request is valid; Session::Score must agree:
// a valid request scores (probabilities in [0, 1] when every dense value is moderate, and
// Rank works), an invalid one is refused with a message. Aborts on any disagreement.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "model_builder.h"

namespace {

using dtrn::FieldGroup;
using dtrn::FieldInfo;
using dtrn::FieldKind;
using dtrn::FieldValue;
using dtrn::Model;
using dtrn::Request;
using dtrn::fuzz::Fail;

struct Loaded {
  std::string bytes;
  std::shared_ptr<const Model> model;
  std::unique_ptr<dtrn::Session> session;
};

std::vector<Loaded>& Models() {
  static std::vector<Loaded> models = [] {
    using dtrn::testing::TestModelConfig;
    std::vector<TestModelConfig> configs(4);
    configs[1].table_type = dtrn::fb::DType::INT8;
    configs[1].int8_head = true;
    configs[2].fields.push_back({"brand", FieldGroup::kItem, FieldKind::kSparse, 5, false, 0, ""});
    configs[2].seq_fields = {"category", "brand"};
    configs[3].mtl = dtrn::fb::Mtl::Ple;
    configs[3].experts_per_task = 1;
    configs[3].experts_shared = 1;
    configs[3].pooling = dtrn::fb::Pooling::Mean;
    std::vector<Loaded> out(configs.size());
    for (size_t i = 0; i < configs.size(); ++i) {
      configs[i].seed = 100 + i;
      out[i].bytes = dtrn::testing::BuildTestModel(configs[i]);
      auto m = Model::FromBuffer(out[i].bytes.data(), out[i].bytes.size());
      if (!m.ok()) Fail("test model " + std::to_string(i) + ": " + m.status().ToString());
      out[i].model = m.value();
      auto s = dtrn::Session::Create(out[i].model);
      if (!s.ok()) Fail("session: " + s.status().ToString());
      out[i].session = std::move(s).value();
    }
    return out;
  }();
  return models;
}

// Builds values near the edges and keeps the oracle's verdict.
class Maker {
 public:
  Maker(FuzzedDataProvider& in, const Model& m) : in_(in), m_(m) {}

  bool valid = true;
  bool moderate = true;  // every dense value |x| <= 1e3 (then probabilities must be finite)

  int64_t Id(const FieldInfo& f, bool checked) {
    const int64_t V = f.vocab;
    int64_t id;
    switch (in_.ConsumeIntegralInRange<int>(0, 9)) {
      case 0: id = 0; break;
      case 1: id = V - 1; break;
      case 2: id = V; break;
      case 3: id = -1; break;
      case 4: id = std::numeric_limits<int64_t>::min(); break;
      case 5: id = std::numeric_limits<int64_t>::max(); break;
      case 6: id = in_.ConsumeIntegral<int64_t>(); break;
      default: id = in_.ConsumeIntegralInRange<int64_t>(0, V - 1); break;
    }
    if (checked && !f.hashed && (id < 0 || id >= V)) valid = false;
    return id;
  }

  float Float() {
    switch (in_.ConsumeIntegralInRange<int>(0, 15)) {
      case 0: valid = false; return std::numeric_limits<float>::quiet_NaN();
      case 1: valid = false; return std::numeric_limits<float>::infinity();
      case 2: valid = false; return -std::numeric_limits<float>::infinity();
      case 3: moderate = false; return std::numeric_limits<float>::max();
      case 4: return std::numeric_limits<float>::denorm_min();
      case 5: return -0.f;
      default: return in_.ConsumeFloatingPointInRange<float>(-1e3f, 1e3f);
    }
  }

  FieldValue Value(const FieldInfo& f) {
    FieldValue v;
    if (f.kind == FieldKind::kSparse) {
      v.id = Id(f, true);
      if (in_.ConsumeIntegralInRange<int>(0, 63) == 0) {  // a dense vector on a sparse field is ignored
        v.dense.push_back(1.f);
      }
      return v;
    }
    size_t width = static_cast<size_t>(f.width);
    if (in_.ConsumeIntegralInRange<int>(0, 31) == 0) {
      width = in_.ConsumeIntegralInRange<size_t>(0, width + 2);
      if (width != static_cast<size_t>(f.width)) valid = false;
    }
    for (size_t i = 0; i < width; ++i) v.dense.push_back(Float());
    return v;
  }

  std::vector<FieldValue> Group(FieldGroup g) {
    std::vector<FieldValue> out;
    for (int i : m_.group_fields(g)) out.push_back(Value(m_.fields()[i]));
    if (!out.empty() && in_.ConsumeIntegralInRange<int>(0, 63) == 0) {
      out.pop_back();
      valid = false;
    } else if (in_.ConsumeIntegralInRange<int>(0, 63) == 0) {
      out.emplace_back();
      valid = false;
    }
    return out;
  }

 private:
  FuzzedDataProvider& in_;
  const Model& m_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  auto& models = Models();
  Loaded& loaded = models[in.ConsumeIntegralInRange<size_t>(0, models.size() - 1)];
  const Model& m = *loaded.model;
  Maker mk(in, m);
  Request r;
  r.id = in.ConsumeBytesAsString(in.ConsumeIntegralInRange<size_t>(0, 8));
  r.user = mk.Group(FieldGroup::kUser);
  r.context = mk.Group(FieldGroup::kContext);

  const size_t B = m.behaviors().size(), S = m.seq_fields().size(), K = m.tasks().size();
  const size_t L = static_cast<size_t>(m.seq_len());
  size_t nb = B;
  if (in.ConsumeIntegralInRange<int>(0, 63) == 0) nb = in.ConsumeIntegralInRange<size_t>(0, B + 1);
  if (nb != B) mk.valid = false;
  const FieldInfo& item = m.fields()[m.group_fields(FieldGroup::kItem)[0]];
  const bool bad_side = in.ConsumeIntegralInRange<int>(0, 31) == 0;
  for (size_t b = 0; b < nb; ++b) {
    const size_t len = in.ConsumeIntegralInRange<size_t>(0, L + 5);
    const size_t first = len > L ? len - L : 0;  // truncation keeps the most recent L: only those are checked
    std::vector<int64_t> seq;
    for (size_t j = 0; j < len; ++j) seq.push_back(mk.Id(item, j >= first));
    r.behaviors.push_back(std::move(seq));
    if (S == 0) continue;
    // [seq field][event]; with bad_side, another number of lists or of ids.
    std::vector<std::vector<int64_t>> side;
    const size_t nf = bad_side ? in.ConsumeIntegralInRange<size_t>(0, S + 1) : S;
    if (nf != S) mk.valid = false;
    for (size_t f = 0; f < nf; ++f) {
      const size_t flen = bad_side && in.ConsumeBool() ? in.ConsumeIntegralInRange<size_t>(0, L + 5) : len;
      if (flen != len) mk.valid = false;
      const FieldInfo& sf = m.fields()[m.seq_fields()[f < S ? f : S - 1]];
      std::vector<int64_t> ids;
      for (size_t j = 0; j < flen; ++j) ids.push_back(mk.Id(sf, j >= first));
      side.push_back(std::move(ids));
    }
    r.behavior_side_ids.push_back(std::move(side));
  }
  if (S == 0 && bad_side) {  // side ids for a model without seq_fields
    r.behavior_side_ids.assign(nb > 0 ? nb : 1, {});
    mk.valid = false;
  }

  size_t n;
  switch (in.ConsumeIntegralInRange<int>(0, 15)) {
    case 0: n = 0; break;
    case 1: n = in.ConsumeIntegralInRange<size_t>(0, 1000); break;
    default: n = in.ConsumeIntegralInRange<size_t>(1, 20); break;
  }
  if (n == 0) mk.valid = false;
  for (size_t c = 0; c < n; ++c) r.candidates.push_back(mk.Group(FieldGroup::kItem));

  auto weight = [&]() -> float {
    switch (in.ConsumeIntegralInRange<int>(0, 11)) {
      case 0: mk.valid = false; return std::numeric_limits<float>::quiet_NaN();
      case 1: mk.valid = false; return -std::numeric_limits<float>::infinity();
      case 2: return std::numeric_limits<float>::max();
      case 3: return 0.f;
      default: return in.ConsumeFloatingPointInRange<float>(-10.f, 10.f);
    }
  };
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: break;  // none: all 1
    case 3: {       // another count: 0 means the default, anything but K is an error
      const size_t count = in.ConsumeIntegralInRange<size_t>(0, K + 2);
      if (count != 0 && count != K) mk.valid = false;
      for (size_t k = 0; k < count; ++k) r.weights.push_back(weight());
      break;
    }
    default:
      for (size_t k = 0; k < K; ++k) r.weights.push_back(weight());
  }

  dtrn::Scores scores;
  const dtrn::Status st = loaded.session->Score(r, &scores);
  if (mk.valid && !st.ok()) Fail("a valid request was refused: " + st.ToString());
  if (!mk.valid && st.ok()) Fail("an invalid request was scored (request id '" + r.id + "')");
  if (!st.ok()) {
    if (st.message().empty()) Fail("refused without a message");
    return 0;
  }
  if (scores.num_candidates != n || scores.num_tasks != K || scores.probabilities.size() != n * K ||
      scores.logits.size() != n * K)
    Fail("scores of the wrong shape");
  if (mk.moderate)
    for (size_t i = 0; i < n * K; ++i)
      if (!(scores.probabilities[i] >= 0.f && scores.probabilities[i] <= 1.f) || !std::isfinite(scores.logits[i]))
        Fail("a non-finite or out-of-range score for a valid request with moderate values: p " +
             std::to_string(scores.probabilities[i]) + ", logit " + std::to_string(scores.logits[i]));
  auto order = dtrn::Rank(scores, r.weights);
  if (!order.ok()) Fail("Rank refused a scored request's weights: " + order.status().ToString());
  std::vector<char> seen(n, 0);
  for (int i : order.value()) {
    if (i < 0 || static_cast<size_t>(i) >= n || seen[i]) Fail("Rank's order is not a permutation");
    seen[i] = 1;
  }
  return 0;
}
