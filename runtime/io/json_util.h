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
// object keys (nlohmann would keep the last silently), a leading byte order mark (nlohmann
// would skip it; JSON Lines text has none) and nesting deeper than kMaxJsonDepth. On failure
// *error says what and where.
//
// A number token that no C++ number type holds exactly as JSON means it (an integer outside
// [-2^63, 2^64), which nlohmann would turn into a double, or a number that overflows a
// double, such as 1e400, which nlohmann refuses naming only the byte) is kept as a "number
// text" value instead (IsNumberText, NumberText): the reader then refuses it naming the
// request and the field, with the token as written.
bool ParseStrictJson(std::string_view text, nlohmann::json* out, std::string* error);
constexpr size_t kMaxJsonDepth = 64;

// A number token kept as text by ParseStrictJson (stored as a binary value: JSON text has none).
bool IsNumberText(const nlohmann::json& v);
std::string NumberText(const nlohmann::json& v);
// -?[0-9]+: an integer token (no fraction, no exponent).
bool IsIntegerToken(std::string_view token);

// v with 9 significant digits (round-trips a float32), locale-independent, like Python's
// format(x, ".9g"); a non-finite value (not a JSON number) as null.
void AppendJsonFloat(float v, std::string* out);

// A JSON string literal for s, escaped as Python's json.dumps does (ASCII only, \uXXXX).
void AppendJsonString(const std::string& s, std::string* out);

}  // namespace dtrn::io
