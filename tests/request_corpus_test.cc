// The shared request corpus (tests/data/request_corpus.jsonl; the reference's pytest runs the
// same file): every line is accepted or refused as its verdict says, by the runtime's parser
// and Session together (ids are range-checked by the runtime), on the committed example
// model (examples/small, converted in process). Every refusal is a named error: it names the
// request id and the field the corpus names. The fast SAX path and the DOM walk agree on
// every line. Also the messages defect 5 asked for, one by one.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "convert.h"
#include "dtrn/io/requests.h"
#include "dtrn/runtime.h"
#include "request_parse.h"
#include "test_util.h"

namespace dtrn {
namespace {

namespace t = dtrn::testing;
using json = nlohmann::json;

std::string Base64Decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) continue;  // '=' padding, whitespace
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
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

// Field for field, floats bit for bit.
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

class Corpus : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new t::TempDir();
    convert::ConvertOptions o;
    o.checkpoint = t::SourceDir() + "/examples/small/model.safetensors";
    o.output = dir_->file("small.dtrn");
    o.verbose = false;
    std::ostringstream log;
    auto converted = convert::Convert(o, log);
    if (!converted.ok()) {
      error_ = converted.status().ToString();
      return;
    }
    auto model = Model::Load(o.output);
    if (!model.ok()) {
      error_ = model.status().ToString();
      return;
    }
    small_ = model.value();
  }
  static void TearDownTestSuite() {
    small_.reset();
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(error_.empty()) << error_;
    schema_ = io::RequestSchema::FromModel(*small_);
  }

  // Parses `line` both ways and scores it when it parses; the verdict and the message.
  struct Outcome {
    bool accepted = false;
    bool runtime_refused = false;  // parsed, then refused by Session::Score
    std::string message;
  };
  // `finite`: the probabilities must be finite. Not for inputs at float32's edge (a dense
  // value of FLT_MAX, accepted by the format): whether f32 arithmetic overflows on them
  // differs by ISA (finite with x86's FMA kernels, NaN on aarch64); the verdict is the point.
  Outcome Judge(const std::string& line, bool finite = true) {
    Outcome o;
    Request fast;
    const bool fast_ok = io::ParseRequestFast(schema_, line, &fast);
    auto dom = io::ParseRequestDom(schema_, line, 7);
    auto parsed = io::ParseRequestJson(schema_, line, 7);
    EXPECT_EQ(parsed.ok(), dom.ok());
    if (fast_ok) {
      EXPECT_TRUE(dom.ok()) << "the fast path accepted what the DOM walk refuses: " << dom.status().message();
      if (dom.ok()) EXPECT_TRUE(SameRequest(fast, dom.value())) << "the fast path parsed another request";
    }
    if (!dom.ok()) {
      o.message = dom.status().message();
      return o;
    }
    auto session = Session::Create(small_);
    EXPECT_TRUE(session.ok());
    Scores s;
    Status st = (*session)->Score(dom.value(), &s);
    if (!st.ok()) {
      o.runtime_refused = true;
      o.message = st.message();
      return o;
    }
    for (float p : s.probabilities)
      if (finite || std::isfinite(p)) EXPECT_TRUE(std::isfinite(p) && p >= 0.f && p <= 1.f);
    o.accepted = true;
    return o;
  }

  static t::TempDir* dir_;
  static std::shared_ptr<const Model> small_;
  static std::string error_;
  io::RequestSchema schema_;
};

t::TempDir* Corpus::dir_ = nullptr;
std::shared_ptr<const Model> Corpus::small_;
std::string Corpus::error_;

TEST_F(Corpus, EveryVerdictHolds) {
  const std::string path = t::SourceDir() + "/tests/data/request_corpus.jsonl";
  if (!t::FileExists(path)) GTEST_SKIP() << "no " << path;
  std::istringstream in(t::ReadFile(path));
  std::string text;
  int entries = 0, accepted = 0, refused = 0, parser = 0, runtime = 0, other_models = 0;
  while (std::getline(in, text)) {
    if (text.empty()) continue;
    json e = json::parse(text);
    const std::string name = e.at("name");
    if (e.value("model", "small") != "small") {
      ++other_models;
      continue;
    }
    ++entries;
    const std::string line = e.contains("line_b64") ? Base64Decode(e["line_b64"]) : e.at("line").get<std::string>();
    const std::string verdict = e.at("verdict");
    ASSERT_TRUE(verdict == "accept" || verdict == "reject") << name;
    Outcome o = Judge(line, /*finite=*/name.rfind("dense_float32_max", 0) != 0);
    if (verdict == "accept") {
      EXPECT_TRUE(o.accepted) << name << " (" << e.value("why", "") << "): refused: " << o.message;
      accepted += o.accepted;
      continue;
    }
    EXPECT_FALSE(o.accepted) << name << " (" << e.value("why", "") << "): accepted";
    if (o.accepted) continue;
    ++refused;
    (o.runtime_refused ? runtime : parser)++;
    EXPECT_FALSE(o.message.empty()) << name;
    // Named: the field the corpus names, in full from the parser ("user.user_profile[2]"),
    // by its name from the runtime ("field 'user_segment'"); and the request id with it.
    if (e.contains("field") && e["field"].is_string()) {
      std::string field = e["field"];
      if (o.runtime_refused) {
        field = field.substr(field.find_last_of('.') == std::string::npos ? 0 : field.find_last_of('.') + 1);
        field = field.substr(0, field.find('['));
      }
      EXPECT_NE(o.message.find(field), std::string::npos)
          << name << ": the message does not name " << field << ": " << o.message;
      if (field != "id")
        EXPECT_TRUE(o.message.find("(id ") != std::string::npos || o.message.find("request '") != std::string::npos)
            << name << ": the message does not name the request: " << o.message;
    }
  }
  std::printf(
      "request corpus: %d entries for small: %d accepted as expected, %d refused as expected (%d by the "
      "parser, %d by the runtime)%s\n",
      entries, accepted, refused, parser, runtime,
      other_models ? (", " + std::to_string(other_models) + " for other models skipped").c_str() : "");
  EXPECT_GT(entries, 0);
}

// ---------------------------------------------------------------- defect 5, one by one

const char kMinimal[] =
    R"({"id":"c","user":{"user_id":5,"user_segment":3,"user_profile":[0.1,0.2,0.3,0.4]},"context":{"hour":13},)"
    R"("behaviors":{"click":[1,2,3],"cart":[],"purchase":[7]},)"
    R"("candidates":[{"item_id":5,"category":2,"item_stats":[0.1,0.2,0.3]},{"item_id":8,"category":1,"item_stats":[0,0,0]}]})";

// kMinimal with `from` replaced by `to` (once).
std::string With(const std::string& from, const std::string& to) {
  std::string s = kMinimal;
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? s : s.replace(at, from.size(), to);
}

TEST_F(Corpus, NullLabelsAndWeightsAreRefused) {
  for (const char* key : {"labels", "weights"}) {
    const std::string line = With("]}]}", std::string("]}],\"") + key + "\":null}");
    Outcome o = Judge(line);
    EXPECT_FALSE(o.accepted) << key;
    EXPECT_NE(o.message.find(std::string("line 7 (id c): ") + key + ": "), std::string::npos) << o.message;
    EXPECT_NE(o.message.find("omit"), std::string::npos) << o.message;
  }
}

TEST_F(Corpus, IntegerRequestIdsBeyond64BitsSayWhy) {
  // Up to 2^64 - 1 (signed or unsigned 64-bit) an integer id reads as its decimal text.
  for (const char* id : {"18446744073709551615", "-9223372036854775808", "0"}) {
    auto r = io::ParseRequestJson(schema_, With("\"c\"", id), 1);
    ASSERT_TRUE(r.ok()) << id << ": " << r.status().message();
    EXPECT_EQ(r->id, id);
  }
  for (const char* id :
       {"18446744073709551616", "-9223372036854775809", "100000000000000000000000000000000000000000"}) {
    Outcome o = Judge(With("\"c\"", id));
    EXPECT_FALSE(o.accepted) << id;
    // Not "expected a string or a JSON integer, got 1.8446744073709552e+19": it is one.
    EXPECT_NE(o.message.find(std::string("line 7: id: the integer ") + id + " is outside [-2^63, 2^64)"),
              std::string::npos)
        << o.message;
    EXPECT_NE(o.message.find("as a string"), std::string::npos) << o.message;
  }
  Outcome o = Judge(With("\"c\"", "1e400"));
  EXPECT_NE(o.message.find("line 7: id: expected a string or a JSON integer, got 1e400"), std::string::npos)
      << o.message;
}

TEST_F(Corpus, AByteOrderMarkIsRefused) {
  Outcome o = Judge(std::string("\xEF\xBB\xBF") + kMinimal);
  EXPECT_FALSE(o.accepted);
  EXPECT_NE(o.message.find("byte order mark"), std::string::npos) << o.message;
  // Inside a string it is an ordinary character.
  EXPECT_TRUE(Judge(With("\"c\"",
                         "\"\xEF\xBB\xBF"
                         "c\""))
                  .accepted);
}

// An overflowing number names the request and the field, wherever the id is in the line.
TEST_F(Corpus, OverflowingNumbersNameTheRequestAndTheField) {
  struct Case {
    std::string line, needle;
  };
  const std::vector<Case> cases = {
      {With("0.3,0.4]", "1e400,0.4]"),
       "line 7 (id c): user.user_profile[2]: expected a finite float32 number, got 1e400"},
      {With("0.3,0.4]", "-1.5E+999,0.4]"), "user.user_profile[2]: expected a finite float32 number, got -1.5E+999"},
      {With("\"hour\":13", "\"hour\":1e400"),
       "(id c): context.hour: expected an integer id in [-2^63, 2^63), got 1e400"},
      {With("\"hour\":13", "\"hour\":" + std::string(400, '9')), "(id c): context.hour: id 999"},
      {With("[0,0,0]", "[0," + std::string(330, '9') + ",0]"),
       "(id c): candidates[1].item_stats[1]: expected a finite float32 number, got 999"},
      {With("]}]}", "]}],\"weights\":[1,1e400]}"), "(id c): weights[1]: expected a finite float32 number, got 1e400"},
      {With("]}]}", "]}],\"labels\":[[1e400,0],[0,0]]}"), "(id c): labels[0][0]: expected 0 or 1, got 1e400"},
      // The id after the bad number, and two overflows: the first in the walk's order is named.
      {std::string(R"({"user":{"user_id":5,"user_segment":3,"user_profile":[1e999,0,0,1e400]},"id":"late")") +
           (kMinimal + std::string(kMinimal).find(",\"context\"")),
       "line 7 (id late): user.user_profile[0]: expected a finite float32 number, got 1e999"},
  };
  for (const Case& c : cases) {
    Outcome o = Judge(c.line);
    EXPECT_FALSE(o.accepted) << c.line;
    EXPECT_NE(o.message.find(c.needle), std::string::npos) << o.message;
  }
  // Beyond 64 bits but within a double, a dense value is the nearest float32 on both paths.
  Outcome big = Judge(With("0.3,0.4]", "18446744073709551616,0.4]"));
  EXPECT_TRUE(big.accepted) << big.message;
  auto r = io::ParseRequestJson(schema_, With("0.3,0.4]", "18446744073709551616,0.4]"), 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->user[2].dense[2], 18446744073709551616.f);
}

TEST_F(Corpus, NestingIsBounded) {
  for (size_t depth : {size_t{63}, size_t{64}, size_t{100000}}) {
    const std::string line = With("[0.1,0.2,0.3,0.4]", std::string(depth, '[') + std::string(depth, ']'));
    Outcome o = Judge(line);
    EXPECT_FALSE(o.accepted);
    EXPECT_FALSE(o.message.empty());
    if (depth > 64) EXPECT_NE(o.message.find("nested deeper than"), std::string::npos) << o.message;
  }
}

}  // namespace
}  // namespace dtrn
