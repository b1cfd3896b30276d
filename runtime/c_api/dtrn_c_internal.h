// The C API's handles and helpers, shared by the core (dtrn_c.cc) and the JSON request
// parser (dtrn_c_json.cc, its own target so an app that builds requests field by field
// does not link a JSON library). Internal.
#pragma once

#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "dtrn.h"
#include "dtrn/runtime.h"

namespace dtrn::c_api {

// Where each name lives in a dtrn::Request; built once per loaded model, shared by its requests.
struct Layout {
  struct Slot {
    FieldGroup group;
    size_t index;  // within the group
    const FieldInfo* info;
  };
  std::vector<std::string> tasks, behaviors;
  std::vector<FieldInfo> user, context, item;  // each group's fields in the model's order
  std::vector<std::string> seq_fields;         // the model's seq_fields (item fields each event carries)
  std::unordered_map<std::string, Slot> fields;
  std::unordered_map<std::string, size_t> behavior_index;
  std::string field_list;  // for "unknown field" messages

  Layout(const Layout&) = delete;  // slots point into the field lists
  explicit Layout(const Model& model);
  bool SameFields(const Layout& o) const;
};

int Fill(dtrn_error_t* err, int code, const std::string& msg);
inline int Ok(dtrn_error_t* err) { return Fill(err, DTRN_OK, ""); }
inline int Invalid(dtrn_error_t* err, const std::string& msg) { return Fill(err, DTRN_INVALID_ARGUMENT, msg); }
inline int FromStatus(dtrn_error_t* err, const Status& st) {
  return st.ok() ? Ok(err) : Fill(err, static_cast<int>(st.code()), st.message());
}

// Runs body, turning any exception into DTRN_INTERNAL (none may cross into C).
template <class F>
int Guard(dtrn_error_t* err, F&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Fill(err, DTRN_INTERNAL, "out of memory");
  } catch (const std::exception& e) {
    return Fill(err, DTRN_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return Fill(err, DTRN_INTERNAL, "internal error");
  }
}

}  // namespace dtrn::c_api

struct dtrn_model {
  std::shared_ptr<const dtrn::Model> model;
  std::shared_ptr<const dtrn::c_api::Layout> layout;
};

struct dtrn_session {
  std::shared_ptr<const dtrn::c_api::Layout> layout;
  std::unique_ptr<dtrn::Session> session;
};

struct dtrn_request {
  std::shared_ptr<const dtrn::c_api::Layout> layout;
  dtrn::Request request;
  // Which values were set (built field by field); all true for a request from JSON.
  std::vector<char> user_set, context_set, behavior_set;
  std::vector<char> item_set;  // N x item fields

  void Resize(size_t n) {
    request.candidates.resize(n, std::vector<dtrn::FieldValue>(layout->item.size()));
    item_set.resize(n * layout->item.size(), 0);
  }
};

struct dtrn_scores {
  dtrn::Scores scores;
  std::vector<float> weights;  // the scored request's (empty = all 1)
  bool valid = false;
};
