// The two request parsers behind ParseRequestJson (internal header; tests use both).
#pragma once

#include <string_view>

#include "dtrn/io/requests.h"

namespace dtrn::io {

// nlohmann-json DOM, then a strict walk: the definition of what is accepted, and the
// error messages (line, id, field).
Result<Request> ParseRequestDom(const RequestSchema& schema, std::string_view line, size_t line_no);

// SAX events straight into *out, no DOM. True only for a request the DOM walk accepts, with
// the same result; false (with *out unspecified) on anything else, without saying why.
bool ParseRequestFast(const RequestSchema& schema, std::string_view line, Request* out);

}  // namespace dtrn::io
