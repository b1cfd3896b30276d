#include "fuzz_support.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dtrn::fuzz {
namespace {

FieldInfo Sparse(const char* name, FieldGroup g, int64_t vocab, bool hashed) {
  FieldInfo f;
  f.name = name;
  f.group = g;
  f.kind = FieldKind::kSparse;
  f.vocab = vocab;
  f.hashed = hashed;
  return f;
}

FieldInfo Dense(const char* name, FieldGroup g, int width) {
  FieldInfo f;
  f.name = name;
  f.group = g;
  f.kind = FieldKind::kDense;
  f.width = width;
  return f;
}

io::RequestSchema MakeSmall(bool seq) {
  io::RequestSchema s;
  s.tasks = {"click", "purchase"};
  s.behaviors = {"click", "cart", "purchase"};
  s.user = {Sparse("user_id", FieldGroup::kUser, 1000, true), Sparse("user_segment", FieldGroup::kUser, 1000, false),
            Dense("user_profile", FieldGroup::kUser, 4)};
  s.context = {Sparse("hour", FieldGroup::kContext, 1000, false)};
  s.item = {Sparse("item_id", FieldGroup::kItem, 10000, true), Sparse("category", FieldGroup::kItem, 1000, false),
            Dense("item_stats", FieldGroup::kItem, 3)};
  if (seq) s.seq_fields = {s.item[1]};
  return s;
}

bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool SameValues(const std::vector<FieldValue>& a, const std::vector<FieldValue>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].id != b[i].id || !SameFloats(a[i].dense, b[i].dense)) return false;
  return true;
}

}  // namespace

const io::RequestSchema& SmallSchema() {
  static const io::RequestSchema s = MakeSmall(false);
  return s;
}

const io::RequestSchema& SmallSeqSchema() {
  static const io::RequestSchema s = MakeSmall(true);
  return s;
}

bool SameRequest(const Request& a, const Request& b) {
  if (a.id != b.id || !SameValues(a.user, b.user) || !SameValues(a.context, b.context) || a.behaviors != b.behaviors ||
      a.behavior_side_ids != b.behavior_side_ids || a.candidates.size() != b.candidates.size() ||
      a.labels.size() != b.labels.size() || !SameFloats(a.weights, b.weights))
    return false;
  for (size_t i = 0; i < a.candidates.size(); ++i)
    if (!SameValues(a.candidates[i], b.candidates[i])) return false;
  for (size_t i = 0; i < a.labels.size(); ++i)
    if (!SameFloats(a.labels[i], b.labels[i])) return false;
  return true;
}

Request ValidRequest(const Model& model, size_t n) {
  auto value = [&](int field) {
    FieldValue v;
    const FieldInfo& f = model.fields()[field];
    if (f.kind == FieldKind::kDense) v.dense.assign(static_cast<size_t>(f.width), 0.f);
    return v;
  };
  Request r;
  r.id = "fixed";
  for (int i : model.group_fields(FieldGroup::kUser)) r.user.push_back(value(i));
  for (int i : model.group_fields(FieldGroup::kContext)) r.context.push_back(value(i));
  r.behaviors.assign(model.behaviors().size(), std::vector<int64_t>(3, 0));
  if (!model.seq_fields().empty())
    r.behavior_side_ids.assign(model.behaviors().size(), std::vector<std::vector<int64_t>>(model.seq_fields().size(),
                                                                                           std::vector<int64_t>(3, 0)));
  std::vector<FieldValue> cand;
  for (int i : model.group_fields(FieldGroup::kItem)) cand.push_back(value(i));
  r.candidates.assign(n, cand);
  return r;
}

void Fail(const std::string& what) {
  std::fprintf(stderr, "dtrn fuzz: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace dtrn::fuzz
