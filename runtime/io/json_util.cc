#include "json_util.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <vector>

namespace dtrn::io {

using json = nlohmann::json;

namespace {

// Length of the UTF-8 sequence starting at s[i] and its code point; 0 if malformed.
size_t DecodeUtf8(const std::string& s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n;
  uint32_t v;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    v = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    v = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    v = c & 0x07;
  } else
    return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < kMin[n] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

void AppendU(uint32_t u, std::string* out) {
  static const char* kHex = "0123456789abcdef";
  char buf[6] = {'\\', 'u', kHex[(u >> 12) & 15], kHex[(u >> 8) & 15], kHex[(u >> 4) & 15], kHex[u & 15]};
  out->append(buf, 6);
}

}  // namespace

std::string TruncateUtf8(const std::string& s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t cut = max_bytes;
  // Back up over continuation bytes so no character is split.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

std::string ShowJson(const json& v) {
  if (v.is_binary()) return TruncateUtf8(NumberText(v), 48);  // a number kept as text
  return TruncateUtf8(v.dump(-1, ' ', false, json::error_handler_t::replace), 48);
}

namespace {

// A DOM built from SAX events: nlohmann's own DOM parser, plus the checks ParseStrictJson
// promises (duplicate keys, depth) and number tokens kept as text (json_util.h).
class DomBuilder {
 public:
  DomBuilder(json* root, const std::vector<std::pair<std::string, std::string>>& placeholders)
      : root_(root), placeholders_(placeholders) {}

  bool null() { return Put(json(nullptr)) != nullptr; }
  bool boolean(bool v) { return Put(json(v)) != nullptr; }
  bool number_integer(int64_t v) { return Put(json(v)) != nullptr; }
  bool number_unsigned(uint64_t v) { return Put(json(v)) != nullptr; }
  bool number_float(double v, const std::string& token) {
    for (const auto& [placeholder, original] : placeholders_)
      if (token == placeholder) return Put(Text(original)) != nullptr;
    // An integer token only arrives here when it fits neither int64 nor uint64.
    if (IsIntegerToken(token)) return Put(Text(token)) != nullptr;
    return Put(json(v)) != nullptr;
  }
  bool string(std::string& v) { return Put(json(std::move(v))) != nullptr; }
  bool binary(json::binary_t&) { return false; }  // never from JSON text
  bool start_object(size_t) { return Open(json::object()); }
  bool end_object() { return Close(); }
  bool start_array(size_t) { return Open(json::array()); }
  bool end_array() { return Close(); }
  bool key(std::string& k) {
    if (stack_.back()->contains(k)) {
      error = "invalid JSON: key \"" + TruncateUtf8(k, 48) + "\" appears twice in one object";
      return false;
    }
    key_ = std::move(k);
    return true;
  }
  bool parse_error(size_t position, const std::string& token, const nlohmann::detail::exception& e) {
    error_id = e.id;
    error_position = position;
    error_token = token;
    // e.what(): "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..."
    const std::string what = e.what();
    const size_t col = what.find("column ");
    const size_t colon = col == std::string::npos ? std::string::npos : what.find(": ", col);
    std::string detail = what;
    if (colon != std::string::npos)
      detail = what.substr(colon + 2);
    else if (what.rfind("[json.exception.", 0) == 0 && what.find("] ") != std::string::npos)
      detail = what.substr(what.find("] ") + 2);
    error = "invalid JSON at byte " + std::to_string(position) + ": " + detail;
    return false;
  }

  std::string error;
  int error_id = 0;
  size_t error_position = 0;
  std::string error_token;

 private:
  static json Text(const std::string& token) { return json::binary(std::vector<uint8_t>(token.begin(), token.end())); }

  // Stores v where the parser is: the root, the next array element, or the pending key's value.
  json* Put(json&& v) {
    if (stack_.empty()) {
      *root_ = std::move(v);
      return root_;
    }
    json* top = stack_.back();
    if (top->is_array()) {
      top->push_back(std::move(v));
      return &top->back();
    }
    json& slot = (*top)[key_];
    slot = std::move(v);
    return &slot;
  }
  bool Open(json&& container) {
    if (stack_.size() >= kMaxJsonDepth) {
      error = "invalid JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
      return false;
    }
    json* p = Put(std::move(container));
    stack_.push_back(p);
    return true;
  }
  bool Close() {
    stack_.pop_back();
    return true;
  }

  json* root_;
  const std::vector<std::pair<std::string, std::string>>& placeholders_;
  std::vector<json*> stack_;  // open containers, innermost last (pointers stay valid: only the innermost grows)
  std::string key_;
};

}  // namespace

bool IsIntegerToken(std::string_view t) {
  size_t i = !t.empty() && t[0] == '-' ? 1 : 0;
  if (i == t.size()) return false;
  for (; i < t.size(); ++i)
    if (t[i] < '0' || t[i] > '9') return false;
  return true;
}

bool IsNumberText(const json& v) { return v.is_binary(); }

std::string NumberText(const json& v) {
  if (!v.is_binary()) return std::string();
  const auto& b = v.get_binary();
  return std::string(b.begin(), b.end());
}

bool ParseStrictJson(std::string_view text, json* out, std::string* error) {
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") {
    *error = "invalid JSON: a byte order mark (U+FEFF) before the value (JSON Lines text has none)";
    return false;
  }
  // A number that overflows a double stops nlohmann's parser (error 406). Such a token is
  // replaced by a placeholder number and the text parsed again, until it parses or fails
  // otherwise; the placeholder reads back as the original token. The placeholder ends in
  // exponent digits ("1e-3100", finite: it underflows to 0), so the character after it, which
  // did not continue the original token, cannot continue it either: the tokens stay the same.
  std::vector<std::pair<std::string, std::string>> placeholders;
  std::string edited;
  constexpr int kMaxOverflows = 16;
  for (int attempt = 0;; ++attempt) {
    std::string_view input = placeholders.empty() ? text : std::string_view(edited);
    *out = json();
    DomBuilder builder(out, placeholders);
    bool ok = false;
    try {
      ok = json::sax_parse(input.begin(), input.end(), &builder, json::input_format_t::json, /*strict=*/true,
                           /*ignore_comments=*/false);
    } catch (const json::exception& e) {
      *error = std::string("invalid JSON: ") + e.what();
      return false;
    }
    if (ok) return true;
    const std::string& token = builder.error_token;
    const size_t end = builder.error_position;
    if (builder.error_id == 406 && attempt < kMaxOverflows && !token.empty() && end >= token.size() &&
        input.substr(end - token.size(), token.size()) == token) {
      std::string placeholder = "1e-" + std::to_string(3100 + attempt);
      std::string next(input.substr(0, end - token.size()));
      next += placeholder;
      next += input.substr(end);
      placeholders.emplace_back(std::move(placeholder), token);
      edited = std::move(next);
      continue;
    }
    *error = builder.error.empty() ? "invalid JSON" : builder.error;
    return false;
  }
}

void AppendJsonFloat(float v, std::string* out) {
  if (!std::isfinite(v)) {
    out->append("null");
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), static_cast<double>(v), std::chars_format::general, 9);
  out->append(buf, r.ptr);
}

void AppendJsonString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      out->push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        ++i;
        continue;
      case '\\':
        out->append("\\\\");
        ++i;
        continue;
      case '\n':
        out->append("\\n");
        ++i;
        continue;
      case '\r':
        out->append("\\r");
        ++i;
        continue;
      case '\t':
        out->append("\\t");
        ++i;
        continue;
      case '\b':
        out->append("\\b");
        ++i;
        continue;
      case '\f':
        out->append("\\f");
        ++i;
        continue;
      default: break;
    }
    uint32_t cp;
    size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0) {  // malformed byte: U+FFFD, as a lenient decoder would
      AppendU(0xFFFD, out);
      ++i;
      continue;
    }
    if (cp >= 0x10000) {  // surrogate pair, as json.dumps writes it
      cp -= 0x10000;
      AppendU(0xD800 + (cp >> 10), out);
      AppendU(0xDC00 + (cp & 0x3FF), out);
    } else {
      AppendU(cp, out);
    }
    i += n;
  }
  out->push_back('"');
}

}  // namespace dtrn::io
