// The C API (dtrn.h) over the C++ runtime: handles own C++ objects, every call catches
// exceptions (none may cross into C) and reports through the caller's dtrn_error_t.
// dtrn_request_from_json lives apart (dtrn_c_json.cc) so this part needs no JSON library.
#include "dtrn.h"

#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "dtrn/runtime.h"
#include "dtrn_c_internal.h"

// Status codes: the C enum mirrors dtrn::StatusCode value for value.
static_assert(DTRN_OK == static_cast<int>(dtrn::StatusCode::kOk) &&
                  DTRN_INVALID_ARGUMENT == static_cast<int>(dtrn::StatusCode::kInvalidArgument) &&
                  DTRN_NOT_FOUND == static_cast<int>(dtrn::StatusCode::kNotFound) &&
                  DTRN_DATA_LOSS == static_cast<int>(dtrn::StatusCode::kDataLoss) &&
                  DTRN_UNIMPLEMENTED == static_cast<int>(dtrn::StatusCode::kUnimplemented) &&
                  DTRN_INTERNAL == static_cast<int>(dtrn::StatusCode::kInternal) &&
                  DTRN_IO == static_cast<int>(dtrn::StatusCode::kIo),
              "dtrn_status must equal dtrn::StatusCode");
static_assert(DTRN_GROUP_USER == static_cast<int>(dtrn::FieldGroup::kUser) &&
                  DTRN_GROUP_CONTEXT == static_cast<int>(dtrn::FieldGroup::kContext) &&
                  DTRN_GROUP_ITEM == static_cast<int>(dtrn::FieldGroup::kItem) &&
                  DTRN_FIELD_SPARSE == static_cast<int>(dtrn::FieldKind::kSparse) &&
                  DTRN_FIELD_DENSE == static_cast<int>(dtrn::FieldKind::kDense),
              "dtrn_field_group / dtrn_field_kind must equal the C++ enums");

namespace dtrn::c_api {

Layout::Layout(const Model& model) : tasks(model.tasks()), behaviors(model.behaviors()) {
  for (int i : model.group_fields(FieldGroup::kUser)) user.push_back(model.fields()[i]);
  for (int i : model.group_fields(FieldGroup::kContext)) context.push_back(model.fields()[i]);
  for (int i : model.group_fields(FieldGroup::kItem)) item.push_back(model.fields()[i]);
  auto add = [&](const std::vector<FieldInfo>& group, FieldGroup g) {
    for (size_t i = 0; i < group.size(); ++i) fields.emplace(group[i].name, Slot{g, i, &group[i]});
  };
  add(user, FieldGroup::kUser);
  add(context, FieldGroup::kContext);
  add(item, FieldGroup::kItem);
  for (size_t b = 0; b < behaviors.size(); ++b) behavior_index.emplace(behaviors[b], b);
  for (int i : model.seq_fields()) seq_fields.push_back(model.fields()[i].name);
  for (const FieldInfo& f : model.fields()) field_list += (field_list.empty() ? "" : ", ") + f.name;
}

bool Layout::SameFields(const Layout& o) const {
  auto same = [](const std::vector<FieldInfo>& x, const std::vector<FieldInfo>& y) {
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i)
      if (x[i].name != y[i].name || x[i].kind != y[i].kind || x[i].width != y[i].width) return false;
    return true;
  };
  return tasks == o.tasks && behaviors == o.behaviors && same(user, o.user) && same(context, o.context) &&
         same(item, o.item) && seq_fields == o.seq_fields;
}

int Fill(dtrn_error_t* err, int code, const std::string& msg) {
  if (err) {
    err->code = code;
    size_t n = std::min(msg.size(), sizeof(err->message) - 1);
    // Cut at a UTF-8 boundary: JNI's NewStringUTF and Swift expect well-formed text.
    if (n < msg.size())
      while (n > 0 && (static_cast<unsigned char>(msg[n]) & 0xC0) == 0x80) --n;
    std::memcpy(err->message, msg.data(), n);
    err->message[n] = '\0';
  }
  return code;
}

}  // namespace dtrn::c_api

using dtrn::FieldGroup;
using dtrn::FieldKind;
using dtrn::Status;
using dtrn::c_api::Fill;
using dtrn::c_api::FromStatus;
using dtrn::c_api::Guard;
using dtrn::c_api::Invalid;
using dtrn::c_api::Layout;
using dtrn::c_api::Ok;

namespace {

int CreateModel(dtrn::Result<std::shared_ptr<const dtrn::Model>> loaded, dtrn_model_t** out, dtrn_error_t* err) {
  if (!loaded.ok()) return FromStatus(err, loaded.status());
  auto m = std::make_unique<dtrn_model>();
  m->model = std::move(loaded).value();
  m->layout = std::make_shared<const Layout>(*m->model);
  *out = m.release();
  return Ok(err);
}

// Finds a field for a setter and checks its group and kind; *slot on success.
int FindField(const dtrn_request_t* r, const char* field, bool item, FieldKind kind, const Layout::Slot** slot,
              dtrn_error_t* err) {
  if (!field) return Invalid(err, "field name is NULL");
  auto it = r->layout->fields.find(field);
  if (it == r->layout->fields.end())
    return Fill(err, DTRN_NOT_FOUND,
                std::string("unknown field '") + field + "' (the model's fields: " + r->layout->field_list + ")");
  const Layout::Slot& s = it->second;
  const bool is_item = s.group == FieldGroup::kItem;
  if (is_item != item)
    return Invalid(err, std::string("field '") + field + "' is " + (is_item ? "an " : "a ") + FieldGroupName(s.group) +
                            " field: use " + (is_item ? "dtrn_request_set_candidate_" : "dtrn_request_set_") +
                            (s.info->kind == FieldKind::kSparse ? "sparse" : "dense"));
  if (s.info->kind != kind)
    return Invalid(err, std::string("field '") + field + "' is " +
                            (s.info->kind == FieldKind::kSparse ? "sparse: set an id" : "dense: set a vector"));
  *slot = &s;
  return DTRN_OK;
}

int CheckDense(const dtrn::FieldInfo& f, const std::string& where, const float* values, size_t count,
               dtrn_error_t* err) {
  if (count != static_cast<size_t>(f.width))
    return Invalid(err, where + ": expected " + std::to_string(f.width) + " values, got " + std::to_string(count));
  if (count && !values) return Invalid(err, where + ": values is NULL");
  for (size_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i])) return Invalid(err, where + "[" + std::to_string(i) + "]: expected a finite number");
  return DTRN_OK;
}

// Every value must be set before scoring; names the first one that is not.
int CheckComplete(const dtrn_request_t* r, dtrn_error_t* err) {
  const auto& s = (*r->layout);
  const std::string who = r->request.id.empty() ? "request: " : "request " + r->request.id + ": ";
  for (size_t i = 0; i < s.user.size(); ++i)
    if (!r->user_set[i]) return Invalid(err, who + "user." + s.user[i].name + " was never set");
  for (size_t i = 0; i < s.context.size(); ++i)
    if (!r->context_set[i]) return Invalid(err, who + "context." + s.context[i].name + " was never set");
  for (size_t b = 0; b < s.behaviors.size(); ++b)
    if (!r->behavior_set[b])
      return Invalid(err, who + "behaviors." + s.behaviors[b] + " was never set (set an empty sequence for none)");
  const size_t f = s.item.size();
  for (size_t c = 0; c < r->request.candidates.size(); ++c)
    for (size_t i = 0; i < f; ++i)
      if (!r->item_set[c * f + i])
        return Invalid(err, who + "candidates[" + std::to_string(c) + "]." + s.item[i].name + " was never set");
  return DTRN_OK;
}

int RankInto(const dtrn_scores_t* scores, const float* weights, size_t num_weights, bool top, size_t k, int32_t* order,
             size_t capacity, size_t* count, dtrn_error_t* err) {
  if (!scores) return Invalid(err, "scores is NULL");
  if (!scores->valid) return Invalid(err, "scores: nothing scored yet");
  if (num_weights && !weights) return Invalid(err, "weights is NULL but num_weights is " + std::to_string(num_weights));
  std::vector<float> w = num_weights ? std::vector<float>(weights, weights + num_weights) : scores->weights;
  const size_t n = scores->scores.num_candidates;
  const size_t want = top ? std::min(k, n) : n;
  if (want && !order) return Invalid(err, "order is NULL");
  if (capacity < want)
    return Invalid(err,
                   "order has room for " + std::to_string(capacity) + " indices, " + std::to_string(want) + " needed");
  dtrn::Result<std::vector<int>> ranked = top ? dtrn::TopK(scores->scores, w, k) : dtrn::Rank(scores->scores, w);
  if (!ranked.ok()) return FromStatus(err, ranked.status());
  const std::vector<int>& v = ranked.value();
  for (size_t i = 0; i < v.size() && i < capacity; ++i) order[i] = static_cast<int32_t>(v[i]);
  if (count) *count = std::min(v.size(), capacity);
  return Ok(err);
}

}  // namespace

extern "C" {

const char* dtrn_version(void) {
  static const std::string v =
      std::string("dtrn-edge ") + dtrn::Version() + " (.dtrn format " + std::to_string(dtrn::FormatVersion()) + ")";
  return v.c_str();
}

const char* dtrn_status_name(int code) {
  if (code < DTRN_OK || code > DTRN_IO) return "UNKNOWN";
  return dtrn::StatusCodeName(static_cast<dtrn::StatusCode>(code));
}

// ---- model ----

int dtrn_model_load(const char* path, dtrn_model_t** out, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!out) return Invalid(err, "out is NULL");
    *out = nullptr;
    if (!path) return Invalid(err, "path is NULL");
    return CreateModel(dtrn::Model::Load(path), out, err);
  });
}

int dtrn_model_load_buffer(const void* data, size_t size, dtrn_model_t** out, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!out) return Invalid(err, "out is NULL");
    *out = nullptr;
    if (!data && size) return Invalid(err, "data is NULL");
    return CreateModel(dtrn::Model::FromBuffer(data, size), out, err);
  });
}

void dtrn_model_free(dtrn_model_t* model) { delete model; }

const char* dtrn_model_name(const dtrn_model_t* m) { return m ? m->model->name().c_str() : nullptr; }
size_t dtrn_model_num_tasks(const dtrn_model_t* m) { return m ? m->model->tasks().size() : 0; }
const char* dtrn_model_task_name(const dtrn_model_t* m, size_t k) {
  return m && k < m->model->tasks().size() ? m->model->tasks()[k].c_str() : nullptr;
}
size_t dtrn_model_num_behaviors(const dtrn_model_t* m) { return m ? m->model->behaviors().size() : 0; }
const char* dtrn_model_behavior_name(const dtrn_model_t* m, size_t b) {
  return m && b < m->model->behaviors().size() ? m->model->behaviors()[b].c_str() : nullptr;
}
size_t dtrn_model_num_fields(const dtrn_model_t* m) { return m ? m->model->fields().size() : 0; }
const char* dtrn_model_field_name(const dtrn_model_t* m, size_t f) {
  return m && f < m->model->fields().size() ? m->model->fields()[f].name.c_str() : nullptr;
}
int dtrn_model_field_group(const dtrn_model_t* m, size_t f) {
  return m && f < m->model->fields().size() ? static_cast<int>(m->model->fields()[f].group) : -1;
}
int dtrn_model_field_kind(const dtrn_model_t* m, size_t f) {
  return m && f < m->model->fields().size() ? static_cast<int>(m->model->fields()[f].kind) : -1;
}
int dtrn_model_field_width(const dtrn_model_t* m, size_t f) {
  return m && f < m->model->fields().size() ? m->model->fields()[f].width : -1;
}
int dtrn_model_seq_len(const dtrn_model_t* m) { return m ? m->model->seq_len() : -1; }
size_t dtrn_model_num_seq_fields(const dtrn_model_t* m) { return m ? m->layout->seq_fields.size() : 0; }
const char* dtrn_model_seq_field_name(const dtrn_model_t* m, size_t j) {
  return m && j < m->layout->seq_fields.size() ? m->layout->seq_fields[j].c_str() : nullptr;
}

// ---- session ----

int dtrn_session_create(const dtrn_model_t* model, int threads, dtrn_session_t** out, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!out) return Invalid(err, "out is NULL");
    *out = nullptr;
    if (!model) return Invalid(err, "model is NULL");
    if (threads < 1) return Invalid(err, "threads must be >= 1, got " + std::to_string(threads));
    dtrn::SessionOptions options;
    options.threads = threads;
    auto created = dtrn::Session::Create(model->model, options);
    if (!created.ok()) return FromStatus(err, created.status());
    auto s = std::make_unique<dtrn_session>();
    s->layout = model->layout;
    s->session = std::move(created).value();
    *out = s.release();
    return Ok(err);
  });
}

void dtrn_session_free(dtrn_session_t* session) { delete session; }

// ---- request ----

int dtrn_request_create(const dtrn_model_t* model, size_t num_candidates, dtrn_request_t** out, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!out) return Invalid(err, "out is NULL");
    *out = nullptr;
    if (!model) return Invalid(err, "model is NULL");
    if (num_candidates < 1) return Invalid(err, "a request needs at least one candidate");
    auto r = std::make_unique<dtrn_request>();
    r->layout = model->layout;
    const auto& s = (*r->layout);
    r->request.user.resize(s.user.size());
    r->request.context.resize(s.context.size());
    r->request.behaviors.resize(s.behaviors.size());
    if (!s.seq_fields.empty())
      r->request.behavior_side_ids.assign(s.behaviors.size(), std::vector<std::vector<int64_t>>(s.seq_fields.size()));
    r->user_set.assign(s.user.size(), 0);
    r->context_set.assign(s.context.size(), 0);
    r->behavior_set.assign(s.behaviors.size(), 0);
    r->Resize(num_candidates);
    *out = r.release();
    return Ok(err);
  });
}

void dtrn_request_free(dtrn_request_t* request) { delete request; }

int dtrn_request_set_id(dtrn_request_t* r, const char* id, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!r) return Invalid(err, "request is NULL");
    if (!id) return Invalid(err, "id is NULL");
    r->request.id = id;
    return Ok(err);
  });
}

int dtrn_request_set_num_candidates(dtrn_request_t* r, size_t n, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!r) return Invalid(err, "request is NULL");
    if (n < 1) return Invalid(err, "a request needs at least one candidate");
    r->Resize(n);
    // Labels are per candidate: they no longer match.
    r->request.labels.clear();
    return Ok(err);
  });
}

size_t dtrn_request_num_candidates(const dtrn_request_t* r) { return r ? r->request.candidates.size() : 0; }

int dtrn_request_set_sparse(dtrn_request_t* r, const char* field, int64_t id, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!r) return Invalid(err, "request is NULL");
    const Layout::Slot* slot = nullptr;
    if (int rc = FindField(r, field, false, FieldKind::kSparse, &slot, err)) return rc;
    auto& values = slot->group == FieldGroup::kUser ? r->request.user : r->request.context;
    auto& set = slot->group == FieldGroup::kUser ? r->user_set : r->context_set;
    values[slot->index].id = id;
    set[slot->index] = 1;
    return Ok(err);
  });
}

int dtrn_request_set_dense(dtrn_request_t* r, const char* field, const float* values, size_t count, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!r) return Invalid(err, "request is NULL");
    const Layout::Slot* slot = nullptr;
    if (int rc = FindField(r, field, false, FieldKind::kDense, &slot, err)) return rc;
    if (int rc = CheckDense(*slot->info, std::string(FieldGroupName(slot->group)) + "." + field, values, count, err))
      return rc;
    auto& dst = slot->group == FieldGroup::kUser ? r->request.user : r->request.context;
    auto& set = slot->group == FieldGroup::kUser ? r->user_set : r->context_set;
    dst[slot->index].dense.assign(values, values + count);
    set[slot->index] = 1;
    return Ok(err);
  });
}

int dtrn_request_set_candidate_sparse(dtrn_request_t* r, size_t candidate, const char* field, int64_t id,
                                      dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!r) return Invalid(err, "request is NULL");
    const size_t n = r->request.candidates.size();
    if (candidate >= n)
      return Invalid(err, "candidate " + std::to_string(candidate) + " out of range (N = " + std::to_string(n) + ")");
    const Layout::Slot* slot = nullptr;
    if (int rc = FindField(r, field, true, FieldKind::kSparse, &slot, err)) return rc;
    r->request.candidates[candidate][slot->index].id = id;
    r->item_set[candidate * r->layout->item.size() + slot->index] = 1;
    return Ok(err);
  });
}

int dtrn_request_set_candidate_dense(dtrn_request_t* r, size_t candidate, const char* field, const float* values,
                                     size_t count, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!r) return Invalid(err, "request is NULL");
    const size_t n = r->request.candidates.size();
    if (candidate >= n)
      return Invalid(err, "candidate " + std::to_string(candidate) + " out of range (N = " + std::to_string(n) + ")");
    const Layout::Slot* slot = nullptr;
    if (int rc = FindField(r, field, true, FieldKind::kDense, &slot, err)) return rc;
    const std::string where = "candidates[" + std::to_string(candidate) + "]." + field;
    if (int rc = CheckDense(*slot->info, where, values, count, err)) return rc;
    r->request.candidates[candidate][slot->index].dense.assign(values, values + count);
    r->item_set[candidate * r->layout->item.size() + slot->index] = 1;
    return Ok(err);
  });
}

// The behaviour's index for a setter, or an error naming the model's behaviour types.
static int FindBehavior(const dtrn_request_t* r, const char* behavior, size_t* index, dtrn_error_t* err) {
  if (!behavior) return Invalid(err, "behavior is NULL");
  auto it = r->layout->behavior_index.find(behavior);
  if (it == r->layout->behavior_index.end()) {
    std::string names;
    for (const std::string& b : r->layout->behaviors) names += (names.empty() ? "" : ", ") + b;
    return Fill(err, DTRN_NOT_FOUND,
                std::string("unknown behaviour type '") + behavior + "' (the model's: " + names + ")");
  }
  *index = it->second;
  return DTRN_OK;
}

static std::string JoinSeqFields(const Layout& l) {
  std::string s;
  for (const std::string& f : l.seq_fields) s += (s.empty() ? "" : ", ") + f;
  return s;
}

int dtrn_request_set_behavior(dtrn_request_t* r, const char* behavior, const int64_t* ids, size_t count,
                              dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!r) return Invalid(err, "request is NULL");
    size_t b = 0;
    if (int rc = FindBehavior(r, behavior, &b, err)) return rc;
    if (!r->layout->seq_fields.empty())
      return Invalid(err, std::string("behaviors.") + behavior + ": the model's events also carry " +
                              JoinSeqFields(*r->layout) + " (seq_fields): use dtrn_request_set_behavior_fields");
    if (count && !ids) return Invalid(err, std::string("behaviors.") + behavior + ": ids is NULL");
    r->request.behaviors[b].assign(ids, ids + count);
    r->behavior_set[b] = 1;
    return Ok(err);
  });
}

int dtrn_request_set_behavior_fields(dtrn_request_t* r, const char* behavior, const int64_t* item_ids,
                                     const int64_t* const* side_ids, size_t count, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!r) return Invalid(err, "request is NULL");
    size_t b = 0;
    if (int rc = FindBehavior(r, behavior, &b, err)) return rc;
    const Layout& l = *r->layout;
    const std::string where = std::string("behaviors.") + behavior;
    if (count && !item_ids) return Invalid(err, where + ": item_ids is NULL");
    if (!l.seq_fields.empty() && count && !side_ids)
      return Invalid(err, where + ": side_ids is NULL (the model's seq_fields: " + JoinSeqFields(l) + ")");
    for (size_t f = 0; f < l.seq_fields.size() && count; ++f)
      if (!side_ids[f])
        return Invalid(err, where + "." + l.seq_fields[f] + ": side_ids[" + std::to_string(f) + "] is NULL");
    r->request.behaviors[b].assign(item_ids, item_ids + count);
    for (size_t f = 0; f < l.seq_fields.size(); ++f) {
      std::vector<int64_t>& dst = r->request.behavior_side_ids[b][f];
      if (count)
        dst.assign(side_ids[f], side_ids[f] + count);
      else
        dst.clear();
    }
    r->behavior_set[b] = 1;
    return Ok(err);
  });
}

int dtrn_request_set_weights(dtrn_request_t* r, const float* weights, size_t count, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!r) return Invalid(err, "request is NULL");
    const size_t k = r->layout->tasks.size();
    if (count == 0) {
      r->request.weights.clear();
      return Ok(err);
    }
    if (!weights) return Invalid(err, "weights is NULL");
    if (count != k)
      return Invalid(err, "weights: expected " + std::to_string(k) + " (one per task), got " + std::to_string(count));
    for (size_t i = 0; i < count; ++i)
      if (!std::isfinite(weights[i]))
        return Invalid(err, "weights[" + std::to_string(i) + "]: expected a finite number");
    r->request.weights.assign(weights, weights + count);
    return Ok(err);
  });
}

// ---- scoring ----

int dtrn_scores_create(dtrn_scores_t** out, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!out) return Invalid(err, "out is NULL");
    *out = new dtrn_scores();
    return Ok(err);
  });
}

void dtrn_scores_free(dtrn_scores_t* scores) { delete scores; }

int dtrn_session_score(dtrn_session_t* session, const dtrn_request_t* r, dtrn_scores_t* scores, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!session) return Invalid(err, "session is NULL");
    if (!r) return Invalid(err, "request is NULL");
    if (!scores) return Invalid(err, "scores is NULL");
    scores->valid = false;
    if (r->layout != session->layout && !r->layout->SameFields(*session->layout))
      return Invalid(err, "request " + r->request.id + " was built for a model with other fields than the session's");
    if (int rc = CheckComplete(r, err)) return rc;
    Status st = session->session->Score(r->request, &scores->scores);
    if (!st.ok()) return FromStatus(err, st);
    scores->weights = r->request.weights;
    scores->valid = true;
    return Ok(err);
  });
}

size_t dtrn_scores_num_candidates(const dtrn_scores_t* s) { return s && s->valid ? s->scores.num_candidates : 0; }
size_t dtrn_scores_num_tasks(const dtrn_scores_t* s) { return s && s->valid ? s->scores.num_tasks : 0; }
const float* dtrn_scores_probabilities(const dtrn_scores_t* s) {
  return s && s->valid ? s->scores.probabilities.data() : nullptr;
}
const float* dtrn_scores_logits(const dtrn_scores_t* s) { return s && s->valid ? s->scores.logits.data() : nullptr; }

int dtrn_scores_rank(const dtrn_scores_t* scores, const float* weights, size_t num_weights, int32_t* order,
                     size_t capacity, dtrn_error_t* err) {
  return Guard(err, [&] { return RankInto(scores, weights, num_weights, false, 0, order, capacity, nullptr, err); });
}

int dtrn_scores_top_k(const dtrn_scores_t* scores, const float* weights, size_t num_weights, size_t k, int32_t* order,
                      size_t capacity, size_t* count, dtrn_error_t* err) {
  return Guard(err, [&] {
    if (count) *count = 0;
    return RankInto(scores, weights, num_weights, true, k, order, capacity, count, err);
  });
}

}  // extern "C"
