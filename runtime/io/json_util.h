// Helpers shared by the JSON readers and writers of dtrn_io (internal header).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace dtrn::io {

// At most max_bytes of s, cut at a UTF-8 character boundary, "..." appended when cut.
std::string TruncateUtf8(const std::string& s, size_t max_bytes);

// A JSON value as compact text for error messages, shortened to about 48 bytes.
std::string ShowJson(const nlohmann::json& v);

// Parses exactly one JSON value (nothing but whitespace after it), rejecting duplicate
// object keys (nlohmann would keep the last silently). On failure *error says what and where.
bool ParseStrictJson(std::string_view text, nlohmann::json* out, std::string* error);

// v with 9 significant digits (round-trips a float32), locale-independent, like Python's
// format(x, ".9g"); a non-finite value (not a JSON number) as null.
void AppendJsonFloat(float v, std::string* out);

// A JSON string literal for s, escaped as Python's json.dumps does (ASCII only, \uXXXX).
void AppendJsonString(const std::string& s, std::string* out);

}  // namespace dtrn::io
