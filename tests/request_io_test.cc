// Request/scores JSON Lines (runtime/io): strict parsing with named errors, the scores
// writer's exact format and round trip, the streaming reader, and the metrics.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "dtrn/io/requests.h"
#include "dtrn/io/scores.h"
#include "dtrn/metrics.h"
#include "request_parse.h"
#include "test_util.h"

namespace dtrn::io {
namespace {

using metrics::Auc;
using metrics::KendallTau;

FieldInfo Sparse(const std::string& name, FieldGroup g, int64_t vocab, bool hashed) {
  FieldInfo f;
  f.name = name;
  f.group = g;
  f.kind = FieldKind::kSparse;
  f.vocab = vocab;
  f.hashed = hashed;
  return f;
}

FieldInfo Dense(const std::string& name, FieldGroup g, int width) {
  FieldInfo f;
  f.name = name;
  f.group = g;
  f.kind = FieldKind::kDense;
  f.width = width;
  return f;
}

// The `small` workload's fields (reference/configs/small.json).
RequestSchema SmallSchema() {
  RequestSchema s;
  s.tasks = {"click", "purchase"};
  s.behaviors = {"click", "cart", "purchase"};
  s.user = {Sparse("user_id", FieldGroup::kUser, 1000, true), Sparse("user_segment", FieldGroup::kUser, 1000, false),
            Dense("user_profile", FieldGroup::kUser, 4)};
  s.context = {Sparse("hour", FieldGroup::kContext, 1000, false)};
  s.item = {Sparse("item_id", FieldGroup::kItem, 10000, true), Sparse("category", FieldGroup::kItem, 1000, false),
            Dense("item_stats", FieldGroup::kItem, 3)};
  return s;
}

// A valid request; keys deliberately not in config order.
const char* kGood = R"({"candidates": [{"item_stats": [0.3, 0.1, 0.9], "category": 2, "item_id": 5},)"
                    R"( {"item_id": 8, "category": 1, "item_stats": [0, 0.2, -4]}],)"
                    R"( "id": "r1", "context": {"hour": 13},)"
                    R"( "user": {"user_profile": [0.1, 0.5, -1.0, 2.0], "user_segment": 7, "user_id": 1234},)"
                    R"( "behaviors": {"purchase": [], "click": [11, 52, 7], "cart": [52]},)"
                    R"( "labels": [[1, 0], [0.0, 1.0]], "weights": [1.0, 3]})";

// kGood with one substring replaced (must occur exactly once).
std::string Mutate(const std::string& from, const std::string& to) {
  std::string s = kGood;
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  EXPECT_EQ(s.find(from, at + 1), std::string::npos) << "ambiguous: " << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

std::string ErrorOf(const std::string& line, size_t line_no = 3) {
  Result<Request> r = ParseRequestJson(SmallSchema(), line, line_no);
  EXPECT_FALSE(r.ok()) << line;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

TEST(RequestJson, MapsEveryFieldInModelOrder) {
  Result<Request> r = ParseRequestJson(SmallSchema(), kGood, 1);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Request& q = r.value();
  EXPECT_EQ(q.id, "r1");
  ASSERT_EQ(q.user.size(), 3u);
  EXPECT_EQ(q.user[0].id, 1234);
  EXPECT_EQ(q.user[1].id, 7);
  EXPECT_EQ(q.user[2].dense, (std::vector<float>{0.1f, 0.5f, -1.0f, 2.0f}));
  ASSERT_EQ(q.context.size(), 1u);
  EXPECT_EQ(q.context[0].id, 13);
  ASSERT_EQ(q.behaviors.size(), 3u);  // model order click, cart, purchase
  EXPECT_EQ(q.behaviors[0], (std::vector<int64_t>{11, 52, 7}));
  EXPECT_EQ(q.behaviors[1], (std::vector<int64_t>{52}));
  EXPECT_TRUE(q.behaviors[2].empty());
  ASSERT_EQ(q.candidates.size(), 2u);
  EXPECT_EQ(q.candidates[0][0].id, 5);
  EXPECT_EQ(q.candidates[0][1].id, 2);
  EXPECT_EQ(q.candidates[0][2].dense, (std::vector<float>{0.3f, 0.1f, 0.9f}));
  EXPECT_EQ(q.candidates[1][0].id, 8);
  EXPECT_EQ(q.candidates[1][2].dense, (std::vector<float>{0.0f, 0.2f, -4.0f}));
  EXPECT_EQ(q.labels, (std::vector<std::vector<float>>{{1, 0}, {0, 1}}));
  EXPECT_EQ(q.weights, (std::vector<float>{1.0f, 3.0f}));
}

// Optional, but null is not absent: it is refused (as the reference does; the shared corpus,
// tests/data/request_corpus.jsonl, has both).
TEST(RequestJson, LabelsAndWeightsOptionalNullIsRefused) {
  std::string s = Mutate(R"(, "labels": [[1, 0], [0.0, 1.0]], "weights": [1.0, 3])", "");
  Result<Request> r = ParseRequestJson(SmallSchema(), s, 1);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->labels.empty());
  EXPECT_TRUE(r->weights.empty());
  s = Mutate(R"("labels": [[1, 0], [0.0, 1.0]], "weights": [1.0, 3])", R"("labels": null, "weights": [1.0, 3])");
  r = ParseRequestJson(SmallSchema(), s, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("labels: expected an array of labels, got null (omit"), std::string::npos)
      << r.status().message();
  s = Mutate(R"("labels": [[1, 0], [0.0, 1.0]], "weights": [1.0, 3])", R"("weights": null)");
  r = ParseRequestJson(SmallSchema(), s, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("weights: expected an array of weights, got null (omit"), std::string::npos)
      << r.status().message();
}

TEST(RequestJson, IntegerIdIsReadAsDecimalText) {
  Result<Request> r = ParseRequestJson(SmallSchema(), Mutate(R"("id": "r1")", R"("id": 18446744073709551615)"), 1);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->id, "18446744073709551615");
  r = ParseRequestJson(SmallSchema(), Mutate(R"("id": "r1")", R"("id": -42)"), 1);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->id, "-42");
}

TEST(RequestJson, Int64ExtremesExactNeverThroughDouble) {
  std::string s = Mutate(R"("user_id": 1234)", R"("user_id": -9223372036854775808)");
  s = s.replace(s.find("\"category\": 2"), 13, "\"category\": 9223372036854775807");
  s = s.replace(s.find("[11, 52, 7]"), 11, "[9007199254740993, -1, 0]");  // 2^53 + 1: not a double
  Result<Request> r = ParseRequestJson(SmallSchema(), s, 1);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->user[0].id, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(r->candidates[0][1].id, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(r->behaviors[0], (std::vector<int64_t>{9007199254740993LL, -1, 0}));
}

TEST(RequestJson, HashingAndRangeChecksAreLeftToTheRuntime) {
  // user_id's table is hashed, category's is not (vocab 1000): the parser keeps both raw.
  std::string s = Mutate(R"("user_id": 1234)", R"("user_id": 123456789012)");
  s = s.replace(s.find("\"category\": 2"), 13, "\"category\": 5000");
  Result<Request> r = ParseRequestJson(SmallSchema(), s, 1);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->user[0].id, 123456789012LL);
  EXPECT_EQ(r->candidates[0][1].id, 5000);
}

TEST(RequestJson, LongSequencesAreKeptWhole) {
  // Truncation to the most recent L is the runtime's (it knows L); the parser keeps the request as written.
  std::string ids;
  for (int i = 0; i < 500; ++i) ids += (i ? "," : "") + std::to_string(i);
  Result<Request> r = ParseRequestJson(SmallSchema(), Mutate("[11, 52, 7]", "[" + ids + "]"), 1);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->behaviors[0].size(), 500u);
  EXPECT_EQ(r->behaviors[0][499], 499);
}

TEST(RequestJson, ErrorNamesLineIdAndField) {
  EXPECT_EQ(ErrorOf(Mutate(R"("category": 1)", R"("category": 2.5)"), 3),
            "line 3 (id r1): candidates[1].category: expected an integer id in [-2^63, 2^63), got 2.5");
}

struct BadCase {
  const char* from;
  const char* to;
  const char* expect;  // substring of the message (after "line 3 (id r1): ")
};

TEST(RequestJson, EveryErrorNamesTheField) {
  const BadCase cases[] = {
      // ids
      {R"("user_id": 1234)", R"("user_id": 9223372036854775808)",
       "user.user_id: id 9223372036854775808 does not fit in int64"},
      {R"("user_id": 1234)", R"("user_id": -9223372036854775809)",
       "user.user_id: id -9223372036854775809 does not fit in int64"},
      {R"("user_id": 1234)", R"("user_id": 18446744073709551616)",
       "user.user_id: id 18446744073709551616 does not fit in int64"},
      {R"("user_id": 1234)", R"("user_id": 5.0)", "user.user_id: expected an integer id in [-2^63, 2^63), got 5.0"},
      {R"("user_id": 1234)", R"("user_id": 1e3)", "user.user_id: expected an integer id"},
      {R"("user_id": 1234)", R"("user_id": "1234")", "user.user_id: expected an integer id, got \"1234\""},
      {R"("user_id": 1234)", R"("user_id": true)", "user.user_id: expected an integer id, got true"},
      {R"("user_id": 1234)", R"("user_id": null)", "user.user_id: expected an integer id, got null"},
      {R"("user_id": 1234)", R"("user_id": [1234])", "user.user_id: expected an integer id, got [1234]"},
      {R"("hour": 13)", R"("hour": -0.5)", "context.hour: expected an integer id"},
      {R"("item_id": 8)", R"("item_id": 8.25)", "candidates[1].item_id: expected an integer id"},
      {"[11, 52, 7]", "[11, 52.5, 7]", "behaviors.click[1]: expected an integer id"},
      {"[11, 52, 7]", R"([11, 52, "7"])", "behaviors.click[2]: expected an integer id"},
      // missing / unknown fields
      {R"("user_segment": 7, )", "", "user.user_segment: missing"},
      {R"("hour": 13)", "", "context.hour: missing"},
      {R"("category": 1, )", "", "candidates[1].category: missing"},
      {R"("hour": 13)", R"("hour": 13, "weekday": 2)",
       "context.weekday: unknown field (the model's context fields: hour)"},
      {R"("user_segment": 7)", R"("user_segment": 7, "age": 3)", "user.age: unknown field"},
      {R"("category": 1)", R"("category": 1, "colour": 3)",
       "candidates[1].colour: unknown field (the model's item fields: item_id, category, item_stats)"},
      {R"("cart": [52])", R"("cart": [52], "wishlist": [])",
       "behaviors.wishlist: unknown behaviour type (the model's: click, cart, purchase)"},
      {R"("id": "r1")", R"("id": "r1", "extra": 1)", "extra: unknown key"},
      {R"("purchase": [], )", "", "behaviors.purchase: missing (use [] for none)"},
      {R"("cart": [52])", R"("cart": 52)", "behaviors.cart: expected an array of item ids"},
      {R"("context": {"hour": 13},)", "", "context: missing"},
      {R"("context": {"hour": 13})", R"("context": [13])", "context: expected an object"},
      // dense values
      {"[0.1, 0.5, -1.0, 2.0]", "[0.1, 0.5, -1.0]", "user.user_profile: expected exactly 4 numbers, got 3"},
      {"[0.1, 0.5, -1.0, 2.0]", "[0.1, 0.5, -1.0, 2.0, 3]", "user.user_profile: expected exactly 4 numbers, got 5"},
      {"[0.1, 0.5, -1.0, 2.0]", "0.1", "user.user_profile: expected an array of 4 numbers"},
      {"[0.1, 0.5, -1.0, 2.0]", R"([0.1, "0.5", -1.0, 2.0])", "user.user_profile[1]: expected a finite number"},
      {"[0.1, 0.5, -1.0, 2.0]", "[0.1, 0.5, null, 2.0]", "user.user_profile[2]: expected a finite number, got null"},
      {"[0.1, 0.5, -1.0, 2.0]", "[0.1, 0.5, 1e39, 2.0]", "user.user_profile[2]: expected a finite float32 number"},
      {"[0, 0.2, -4]", "[0, 0.2, true]", "candidates[1].item_stats[2]: expected a finite number, got true"},
      // candidates
      {R"("candidates": [{"item_stats": [0.3, 0.1, 0.9], "category": 2, "item_id": 5},)"
       R"( {"item_id": 8, "category": 1, "item_stats": [0, 0.2, -4]}],)",
       R"("candidates": [],)", "candidates: expected a non-empty array"},
      {R"({"item_id": 8, "category": 1, "item_stats": [0, 0.2, -4]})", "8", "candidates[1]: expected an object, got 8"},
      // labels and weights
      {"[[1, 0], [0.0, 1.0]]", "[[1, 0]]", "labels: expected 2 arrays (one per candidate) of 2 values, got 1 arrays"},
      {"[[1, 0], [0.0, 1.0]]", "[[1, 0], [0, 1, 0]]", "labels[1]: expected an array of 2 values"},
      {"[[1, 0], [0.0, 1.0]]", "[[1, 0], [0, 2]]", "labels[1][1]: expected 0 or 1, got 2"},
      {"[[1, 0], [0.0, 1.0]]", "[[1, 0], [0.5, 1]]", "labels[1][0]: expected 0 or 1, got 0.5"},
      {"[[1, 0], [0.0, 1.0]]", "[[true, 0], [0, 1]]", "labels[0][0]: expected 0 or 1, got true"},
      {"[1.0, 3]", "[1.0]", "weights: expected an array of 2 numbers (task order), got [1.0]"},
      {"[1.0, 3]", R"([1.0, "3"])", "weights[1]: expected a finite number"},
      {"[1.0, 3]", "[1.0, 1e300]", "weights[1]: expected a finite float32 number"},
      // syntax
      {R"("cart": [52])", R"("cart": [52], "cart": [])", "invalid JSON: key \"cart\" appears twice in one object"},
      {R"("category": 1)", R"("category": 1, "category": 1)", "key \"category\" appears twice"},
  };
  for (const BadCase& c : cases) {
    std::string msg = ErrorOf(Mutate(c.from, c.to));
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "message: " << msg << "\nexpected: " << c.expect;
    EXPECT_EQ(msg.rfind("line 3", 0), 0u) << msg;
  }
}

TEST(RequestJson, ErrorsBeforeTheIdIsKnown) {
  EXPECT_EQ(ErrorOf(R"({"user": {}})", 7), "line 7: id: missing");
  EXPECT_EQ(ErrorOf(R"({"id": 1.5})", 7), "line 7: id: expected a string or a JSON integer, got 1.5");
  EXPECT_EQ(ErrorOf(R"({"id": ["r"]})", 7), "line 7: id: expected a string or a JSON integer, got [\"r\"]");
  EXPECT_EQ(ErrorOf("[1, 2]", 7), "line 7: a request must be a JSON object, got [1,2]");
  EXPECT_NE(ErrorOf(R"({"id": "r1", "user": {)", 7).find("line 7: invalid JSON at byte"), std::string::npos);
  EXPECT_NE(ErrorOf(std::string(kGood) + " {}", 7).find("line 7: invalid JSON at byte"), std::string::npos);
  EXPECT_NE(ErrorOf(Mutate("[11, 52, 7]", "[11, NaN, 7]"), 7).find("line 7: invalid JSON"), std::string::npos);
  EXPECT_NE(ErrorOf("", 7).find("line 7: invalid JSON"), std::string::npos);
  // Top-level keys, missing ones after the id is known.
  EXPECT_EQ(ErrorOf(R"({"id": "q", "user": {}, "context": {}, "behaviors": {}})", 7),
            "line 7 (id q): candidates: missing");
}

TEST(RequestJson, LongOrOddIdsAreShortenedInMessages) {
  std::string s = Mutate(R"("id": "r1")", "\"id\": \"" + std::string(300, 'x') + "\"");
  s = s.replace(s.find("\"hour\": 13"), 10, "\"hour\": 1.5");
  std::string msg = ErrorOf(s, 1);
  // The message shows at most 64 bytes of the id.
  EXPECT_NE(msg.find("(id " + std::string(64, 'x') + "...)"), std::string::npos) << msg;
  // Never splits a UTF-8 character: 40 x "é" (2 bytes each) cut at 64 bytes.
  std::string e;
  for (int i = 0; i < 40; ++i) e += "\xc3\xa9";
  s = Mutate(R"("id": "r1")", "\"id\": \"" + e + "\"");
  s = s.replace(s.find("\"hour\": 13"), 10, "\"hour\": 1.5");
  msg = ErrorOf(s, 1);
  std::string expect;
  for (int i = 0; i < 32; ++i) expect += "\xc3\xa9";
  EXPECT_NE(msg.find("(id " + expect + "...)"), std::string::npos) << msg;
}

TEST(RequestJson, SchemaWithoutUserOrContextFields) {
  RequestSchema s = SmallSchema();
  s.user.clear();
  s.context.clear();
  const char* line = R"({"id": "x", "user": {}, "context": {}, "behaviors": {"click": [], "cart": [], "purchase": []},)"
                     R"( "candidates": [{"item_id": 1, "category": 0, "item_stats": [1, 2, 3]}]})";
  Result<Request> r = ParseRequestJson(s, line, 1);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->user.empty());
  EXPECT_TRUE(r->context.empty());
  // "user" is still required (docs/request-format.md), and an empty model group rejects any key.
  Result<Request> bad =
      ParseRequestJson(s, R"({"id": "x", "user": {"a": 1}, "context": {}, "behaviors": {}, "candidates": []})", 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "line 1 (id x): user.a: unknown field (the model's user fields: none)");
}

bool SameValues(const std::vector<FieldValue>& a, const std::vector<FieldValue>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].id != b[i].id || a[i].dense != b[i].dense) return false;
  return true;
}

TEST(RequestJson, WriterRoundTripsExactly) {
  const RequestSchema schema = SmallSchema();
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(-1e3f, 1e3f);
  auto value = [&](const FieldInfo& f) {
    FieldValue v;
    if (f.kind == FieldKind::kSparse) v.id = static_cast<int64_t>(rng());
    for (int i = 0; i < f.width; ++i) v.dense.push_back(u(rng) * std::pow(10.0f, static_cast<float>(rng() % 30) - 15));
    return v;
  };
  for (int t = 0; t < 20; ++t) {
    Request r;
    r.id = "q\"" + std::to_string(t) + "\xc3\xa9";
    for (const FieldInfo& f : schema.user) r.user.push_back(value(f));
    for (const FieldInfo& f : schema.context) r.context.push_back(value(f));
    for (size_t b = 0; b < schema.behaviors.size(); ++b) {
      r.behaviors.emplace_back();
      for (size_t j = 0, n = rng() % 30; j < n; ++j) r.behaviors.back().push_back(static_cast<int64_t>(rng()));
    }
    for (size_t c = 0, n = 1 + rng() % 7; c < n; ++c) {
      r.candidates.emplace_back();
      for (const FieldInfo& f : schema.item) r.candidates.back().push_back(value(f));
      if (t % 2) r.labels.push_back({static_cast<float>(rng() % 2), static_cast<float>(rng() % 2)});
    }
    if (t % 3 == 0) r.weights = {u(rng), 0.0f};
    const std::string line = RequestToJsonLine(schema, r);
    Result<Request> back = ParseRequestJson(schema, line, 1);
    ASSERT_TRUE(back.ok()) << back.status().message() << "\n" << line;
    EXPECT_EQ(back->id, r.id);
    EXPECT_TRUE(SameValues(back->user, r.user)) << line;
    EXPECT_TRUE(SameValues(back->context, r.context)) << line;
    EXPECT_EQ(back->behaviors, r.behaviors);
    ASSERT_EQ(back->candidates.size(), r.candidates.size());
    for (size_t c = 0; c < r.candidates.size(); ++c) EXPECT_TRUE(SameValues(back->candidates[c], r.candidates[c]));
    EXPECT_EQ(back->labels, r.labels);
    EXPECT_EQ(back->weights, r.weights);
  }
}

bool SameRequest(const Request& a, const Request& b) {
  if (a.id != b.id || !SameValues(a.user, b.user) || !SameValues(a.context, b.context) || a.behaviors != b.behaviors ||
      a.candidates.size() != b.candidates.size() || a.labels != b.labels || a.weights != b.weights)
    return false;
  for (size_t c = 0; c < a.candidates.size(); ++c)
    if (!SameValues(a.candidates[c], b.candidates[c])) return false;
  return true;
}

// The SAX fast path must accept exactly what the DOM walk accepts, with the same Request.
TEST(RequestJson, FastPathAgreesWithTheDomWalkOnMutatedInput) {
  const RequestSchema schema = SmallSchema();
  const std::vector<std::string> tokens = {"null",
                                           "true",
                                           "1.5",
                                           "0",
                                           "1",
                                           "-1",
                                           "9223372036854775807",
                                           "9223372036854775808",
                                           "-9223372036854775809",
                                           "1e39",
                                           "1e3",
                                           "\"x\"",
                                           "[]",
                                           "{}",
                                           ",",
                                           ":",
                                           "[0.5]",
                                           "[1,0]",
                                           "[[1,0],[0,1]]",
                                           "\"labels\":null,",
                                           "\"weights\":[1,2],",
                                           "\"id\":\"dup\",",
                                           "\"item_id\":3,",
                                           "\"cart\":[],",
                                           "]",
                                           "}",
                                           "\"",
                                           "-0",
                                           "2",
                                           "[0.1,0.2,0.3]",
                                           "[0.1,0.2,0.3,0.4]"};
  std::vector<std::string> seeds = {kGood};
  std::mt19937_64 rng(17);
  for (int i = 0; i < 4; ++i) {
    std::string s = Mutate(R"("id": "r1")", "\"id\": " + std::to_string(i));
    seeds.push_back(s);
  }
  size_t accepted = 0, rejected = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s = seeds[rng() % seeds.size()];
    for (int m = 0, n = 1 + rng() % 3; m < n && !s.empty(); ++m) {
      const size_t at = rng() % s.size();
      switch (rng() % 5) {
        case 0: s[at] = static_cast<char>(rng() % 128); break;       // flip a byte
        case 1: s.erase(at, 1 + rng() % 8); break;                   // delete
        case 2: s.insert(at, tokens[rng() % tokens.size()]); break;  // insert a token
        case 3: {                                                    // replace a number
          const size_t d = s.find_first_of("0123456789", at);
          if (d != std::string::npos) {
            const size_t e = s.find_first_not_of("0123456789.", d);
            s.replace(d, e - d, tokens[rng() % tokens.size()]);
          }
          break;
        }
        default: s = s.substr(0, at); break;  // truncate
      }
    }
    Request fast;
    const bool fast_ok = ParseRequestFast(schema, s, &fast);
    Result<Request> dom = ParseRequestDom(schema, s, 9);
    ASSERT_EQ(fast_ok, dom.ok()) << s << "\n" << (dom.ok() ? "" : dom.status().message());
    if (fast_ok) {
      ASSERT_TRUE(SameRequest(fast, dom.value())) << s;
      ++accepted;
    } else {
      EXPECT_EQ(dom.status().message().rfind("line 9", 0), 0u) << dom.status().message();
      ++rejected;
    }
  }
  // Both kinds of input were exercised.
  EXPECT_GT(accepted, 300u);
  EXPECT_GT(rejected, 5000u);
}

TEST(RequestJson, DeepNestingIsAnErrorNotACrash) {
  const std::string deep = R"({"id":"x","user":)" + std::string(200000, '[') + std::string(200000, ']') + "}";
  Result<Request> r = ParseRequestJson(SmallSchema(), deep, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "line 1: invalid JSON: nested deeper than 64 levels");
}

TEST(RequestReader, StreamsSkipsBlankLinesAndNamesFileAndLine) {
  testing::TempDir dir;
  std::string path = dir.file("r.jsonl");
  std::string second = Mutate(R"("id": "r1")", R"("id": "r2")");
  std::string bad = Mutate(R"("id": "r1")", R"("id": "r3")");
  bad = bad.replace(bad.find("\"hour\": 13"), 10, "\"hour\": \"13\"");
  testing::WriteFile(path, std::string(kGood) + "\n\n  \t\r\n" + second + "\r\n" + bad + "\n");
  Result<std::unique_ptr<RequestReader>> reader = RequestReader::Open(SmallSchema(), path);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  Request req;
  Result<bool> more = (*reader)->Next(&req);
  ASSERT_TRUE(more.ok() && more.value());
  EXPECT_EQ(req.id, "r1");
  EXPECT_EQ((*reader)->line_no(), 1u);
  more = (*reader)->Next(&req);
  ASSERT_TRUE(more.ok() && more.value()) << more.status().message();
  EXPECT_EQ(req.id, "r2");
  EXPECT_EQ((*reader)->line_no(), 4u);
  more = (*reader)->Next(&req);
  ASSERT_FALSE(more.ok());
  EXPECT_EQ(more.status().message(), path + ": line 5 (id r3): context.hour: expected an integer id, got \"13\"");

  // Whole-file reading stops at the same error.
  Result<std::vector<Request>> all = ReadRequestsFile(SmallSchema(), path);
  ASSERT_FALSE(all.ok());
  EXPECT_NE(all.status().message().find("line 5 (id r3)"), std::string::npos);
  testing::WriteFile(path, std::string(kGood) + "\n" + second);  // no final newline
  all = ReadRequestsFile(SmallSchema(), path);
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].id, "r2");
}

TEST(RequestReader, MissingFileAndDirectoryAreErrors) {
  testing::TempDir dir;
  Result<std::unique_ptr<RequestReader>> r = RequestReader::Open(SmallSchema(), dir.file("nope.jsonl"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("nope.jsonl"), std::string::npos);
  r = RequestReader::Open(SmallSchema(), dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("directory"), std::string::npos);
}

Scores MakeScores(size_t n, size_t k, const std::vector<float>& p, const std::vector<float>& l) {
  Scores s;
  s.num_candidates = n;
  s.num_tasks = k;
  s.probabilities = p;
  s.logits = l;
  return s;
}

TEST(ScoresJson, ExactFormatAsTheReferenceWritesIt) {
  // Expected digits are Python's format(float(np.float32(x)), ".9g") (reference/dtrn_ref/requests_io.py).
  Scores s = MakeScores(2, 2, {0.1f, 1e-5f, 0.5f, 1.0f}, {-4.6f, 0.0f, -0.0f, 3.4028234663852886e38f});
  EXPECT_EQ(ScoresToJsonLine("r1", s, {1, 0}), R"({"id":"r1","scores":[[0.100000001,9.99999975e-06],[0.5,1]],)"
                                               R"("logits":[[-4.5999999,0],[-0,3.40282347e+38]],"order":[1,0]})");
  // Ids escaped as json.dumps does (ASCII only, surrogate pairs, \u007f).
  Scores one = MakeScores(1, 1, {2.5e-10f}, {1.401298464324817e-45f});
  EXPECT_EQ(ScoresToJsonLine("r\"1\\\n\t\x01\xc3\xa9\xf0\x9f\x98\x80\x7f", one, {0}),
            R"({"id":"r\"1\\\n\t\u0001\u00e9\ud83d\ude00\u007f","scores":[[2.49999993e-10]],)"
            R"("logits":[[1.40129846e-45]],"order":[0]})");
  // Non-finite values cannot be JSON numbers.
  Scores inf = MakeScores(1, 1, {std::numeric_limits<float>::quiet_NaN()}, {-std::numeric_limits<float>::infinity()});
  EXPECT_EQ(ScoresToJsonLine("x", inf, {0}), R"({"id":"x","scores":[[null]],"logits":[[null]],"order":[0]})");
}

TEST(ScoresJson, RoundTripIsBitExact) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, 30.0f);
  const size_t n = 257, k = 3;
  std::vector<float> p(n * k), l(n * k);
  for (size_t i = 0; i < n * k; ++i) {
    p[i] = unit(rng);
    l[i] = normal(rng) * std::pow(10.0f, static_cast<float>(static_cast<int>(i % 60) - 30));
  }
  p[0] = std::numeric_limits<float>::denorm_min();
  p[1] = std::numeric_limits<float>::min();
  l[2] = std::numeric_limits<float>::max();
  l[3] = -std::numeric_limits<float>::max();
  std::vector<int> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<int>(n - 1 - i);
  Scores s = MakeScores(n, k, p, l);
  std::string line = ScoresToJsonLine("round", s, order);
  Result<ScoresLine> back = ParseScoresJson(line, 1);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->id, "round");
  EXPECT_EQ(back->scores.num_candidates, n);
  EXPECT_EQ(back->scores.num_tasks, k);
  ASSERT_EQ(back->scores.probabilities.size(), n * k);
  ASSERT_EQ(back->scores.logits.size(), n * k);
  for (size_t i = 0; i < n * k; ++i) {
    EXPECT_EQ(std::memcmp(&back->scores.probabilities[i], &p[i], 4), 0) << i << " " << p[i];
    EXPECT_EQ(std::memcmp(&back->scores.logits[i], &l[i], 4), 0) << i << " " << l[i];
  }
  EXPECT_EQ(back->order, order);
  // And writing what was read gives the same bytes.
  EXPECT_EQ(ScoresToJsonLine(back->id, back->scores, back->order), line);
}

TEST(ScoresJson, ReaderRejectsMalformedLines) {
  EXPECT_FALSE(ParseScoresJson(R"({"id":"a","scores":[[0.1],[0.2,0.3]]})", 2).ok());
  EXPECT_FALSE(ParseScoresJson(R"({"id":"a","scores":[[0.1]],"order":[1]})", 2).ok());
  EXPECT_FALSE(ParseScoresJson(R"({"id":"a","scores":[[0.1]],"logits":[[0.1,0.2]]})", 2).ok());
  EXPECT_FALSE(ParseScoresJson(R"({"scores":[[0.1]]})", 2).ok());
  Result<ScoresLine> r = ParseScoresJson(R"({"id":"a","scores":[["x"]]})", 2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "line 2: scores[0][0]: expected a number, got \"x\"");
}

TEST(Metrics, AucCountsTiesHalf) {
  EXPECT_DOUBLE_EQ(Auc({0.1f, 0.4f, 0.35f, 0.8f}, {0, 0, 1, 1}), 0.75);
  EXPECT_DOUBLE_EQ(Auc({0.1f, 0.2f, 0.3f}, {0, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(Auc({0.3f, 0.2f, 0.1f}, {0, 1, 1}), 0.0);
  EXPECT_DOUBLE_EQ(Auc({0.5f, 0.5f, 0.5f, 0.5f}, {0, 1, 0, 1}), 0.5);
  // One positive tied with one of two negatives, above the other: (1 + 0.5) / 2.
  EXPECT_DOUBLE_EQ(Auc({0.5f, 0.5f, 0.1f}, {1, 0, 0}), 0.75);
  EXPECT_TRUE(std::isnan(Auc({0.1f, 0.2f}, {1, 1})));
  EXPECT_TRUE(std::isnan(Auc({0.1f, 0.2f}, {0, 0})));
  EXPECT_TRUE(std::isnan(Auc({0.1f}, {0, 1})));
  EXPECT_TRUE(std::isnan(Auc({0.1f, std::nanf("")}, {0, 1})));
  EXPECT_TRUE(std::isnan(Auc({}, {})));
}

TEST(Metrics, AucMatchesPairCounting) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> bucket(0, 20);  // many ties
  std::bernoulli_distribution coin(0.3);
  std::vector<float> s(500), y(500);
  for (size_t i = 0; i < s.size(); ++i) {
    s[i] = bucket(rng) / 20.0f;
    y[i] = coin(rng) ? 1.0f : 0.0f;
  }
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (size_t j = 0; j < s.size(); ++j)
      if (y[i] == 1 && y[j] == 0) {
        pairs += 1;
        wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
      }
  EXPECT_NEAR(Auc(s, y), wins / pairs, 1e-12);
}

TEST(Metrics, KendallTau) {
  EXPECT_DOUBLE_EQ(KendallTau({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
  EXPECT_DOUBLE_EQ(KendallTau({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
  EXPECT_NEAR(KendallTau({1, 2, 3, 4}, {1, 2, 4, 3}), 4.0 / 6.0, 1e-12);
  // tau-b with a tie in one ranking: (4 - 1) / sqrt(6 * 5).
  EXPECT_NEAR(KendallTau({1, 2, 3, 4}, {1, 1, 3, 2}), 3.0 / std::sqrt(30.0), 1e-12);
  EXPECT_TRUE(std::isnan(KendallTau({1, 1, 1}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(KendallTau({1}, {1})));
  EXPECT_TRUE(std::isnan(KendallTau({1, 2}, {1, 2, 3})));
}

}  // namespace
}  // namespace dtrn::io
