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

std::string ShowJson(const json& v) { return TruncateUtf8(v.dump(-1, ' ', false, json::error_handler_t::replace), 48); }

bool ParseStrictJson(std::string_view text, json* out, std::string* error) {
  // Keys of the objects being parsed, innermost last; starts[i] is where object i's keys begin.
  std::vector<std::string> keys;
  std::vector<size_t> starts;
  std::string duplicate;
  json::parser_callback_t cb = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: starts.push_back(keys.size()); break;
      case json::parse_event_t::key: {
        const std::string& k = parsed.get_ref<const std::string&>();
        for (size_t i = starts.back(); i < keys.size(); ++i)
          if (keys[i] == k && duplicate.empty()) duplicate = k;
        keys.push_back(k);
        break;
      }
      case json::parse_event_t::object_end:
        keys.resize(starts.back());
        starts.pop_back();
        break;
      default: break;
    }
    return true;
  };
  try {
    *out = json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::parse_error& e) {
    // e.what(): "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..."
    std::string what = e.what();
    size_t col = what.find("column ");
    size_t colon = col == std::string::npos ? std::string::npos : what.find(": ", col);
    std::string detail = colon == std::string::npos ? what : what.substr(colon + 2);
    *error = "invalid JSON at byte " + std::to_string(e.byte) + ": " + detail;
    return false;
  } catch (const json::exception& e) {
    *error = std::string("invalid JSON: ") + e.what();
    return false;
  }
  if (!duplicate.empty()) {
    *error = "invalid JSON: key \"" + TruncateUtf8(duplicate, 48) + "\" appears twice in one object";
    return false;
  }
  return true;
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
