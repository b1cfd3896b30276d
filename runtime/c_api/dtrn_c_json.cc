// dtrn_request_from_json: the one C entry point that needs the JSON request parser
// (target dtrn_c_json; the core C API, dtrn_c, has no JSON dependency).
#include <string_view>

#include "dtrn/io/requests.h"
#include "dtrn_c_internal.h"

using dtrn::c_api::Guard;
using dtrn::c_api::Invalid;

extern "C" int dtrn_request_from_json(const dtrn_model_t* model, const char* json, size_t length, dtrn_request_t** out,
                                      dtrn_error_t* err) {
  return Guard(err, [&] {
    if (!out) return Invalid(err, "out is NULL");
    *out = nullptr;
    if (!model) return Invalid(err, "model is NULL");
    if (!json && length) return Invalid(err, "json is NULL");
    auto parsed = dtrn::io::ParseRequestJson(*model->model, std::string_view(json ? json : "", length), 0);
    if (!parsed.ok()) return dtrn::c_api::FromStatus(err, parsed.status());
    auto r = std::make_unique<dtrn_request>();
    r->layout = model->layout;
    r->request = std::move(parsed).value();
    const auto& l = *r->layout;
    r->user_set.assign(l.user.size(), 1);
    r->context_set.assign(l.context.size(), 1);
    r->behavior_set.assign(l.behaviors.size(), 1);
    r->item_set.assign(r->request.candidates.size() * l.item.size(), 1);
    *out = r.release();
    return dtrn::c_api::Ok(err);
  });
}
