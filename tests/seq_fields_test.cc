// seq_fields in requests (model spec, Inputs): with seq_fields a behaviour sequence is an
// object of equal-length arrays {"item_id": [...], "<f>": [...]}, every f in seq_fields; a
// missing or extra key, or unequal lengths, is a named error. Both parsers (the fast SAX
// path and the DOM walk) agree, RequestToJsonLine writes the object form and reads back, the
// C API builds the same request (dtrn_request_set_behavior_fields). Models without
// seq_fields keep the array form exactly.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dtrn.h"
#include "dtrn/io/requests.h"
#include "dtrn/runtime.h"
#include "dtrn_c_internal.h"
#include "model_builder.h"
#include "request_parse.h"

namespace dtrn {
namespace {

using testing::BuildTestModel;
using testing::RandomRequest;
using testing::TestField;
using testing::TestModelConfig;

// The default test model plus an un-hashed item field "brand"; events carry category and brand.
TestModelConfig SeqConfig() {
  TestModelConfig c;
  c.fields.push_back({"brand", FieldGroup::kItem, FieldKind::kSparse, 5, false, 0, ""});
  c.seq_fields = {"category", "brand"};
  return c;
}

struct Loaded {
  std::string bytes;
  std::shared_ptr<const Model> model;
  io::RequestSchema schema;
};

Loaded Load(const TestModelConfig& c) {
  Loaded l;
  l.bytes = BuildTestModel(c);
  auto m = Model::FromBuffer(l.bytes.data(), l.bytes.size());
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  l.model = m.value();
  l.schema = io::RequestSchema::FromModel(*l.model);
  return l;
}

bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool SameRequest(const Request& a, const Request& b) {
  auto same_values = [](const std::vector<FieldValue>& x, const std::vector<FieldValue>& y) {
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i)
      if (x[i].id != y[i].id || !SameFloats(x[i].dense, y[i].dense)) return false;
    return true;
  };
  if (a.id != b.id || !same_values(a.user, b.user) || !same_values(a.context, b.context) ||
      a.behaviors != b.behaviors || a.behavior_side_ids != b.behavior_side_ids ||
      a.candidates.size() != b.candidates.size() || a.labels != b.labels || !SameFloats(a.weights, b.weights))
    return false;
  for (size_t i = 0; i < a.candidates.size(); ++i)
    if (!same_values(a.candidates[i], b.candidates[i])) return false;
  return true;
}

// Parses with both paths: the DOM walk's result; the fast path must accept exactly when it
// does, with the same request.
Result<Request> ParseBoth(const io::RequestSchema& schema, const std::string& line) {
  Request fast;
  const bool fast_ok = io::ParseRequestFast(schema, line, &fast);
  auto dom = io::ParseRequestDom(schema, line, 3);
  EXPECT_EQ(fast_ok, dom.ok()) << line << "\n" << (dom.ok() ? "" : dom.status().message());
  if (fast_ok && dom.ok()) EXPECT_TRUE(SameRequest(fast, dom.value())) << line;
  return dom;
}

Scores MustScore(const std::shared_ptr<const Model>& model, const Request& r) {
  auto s = Session::Create(model);
  EXPECT_TRUE(s.ok());
  Scores out;
  Status st = (*s)->Score(r, &out);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

TEST(SeqFieldsJson, SchemaListsTheSeqFieldsInModelOrder) {
  Loaded l = Load(SeqConfig());
  ASSERT_EQ(l.schema.seq_fields.size(), 2u);
  EXPECT_EQ(l.schema.seq_fields[0].name, "category");
  EXPECT_EQ(l.schema.seq_fields[1].name, "brand");
  EXPECT_TRUE(Load(TestModelConfig()).schema.seq_fields.empty());
}

TEST(SeqFieldsJson, WriterAndBothParsersRoundTrip) {
  Loaded l = Load(SeqConfig());
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20; ++i) {
    Request r =
        RandomRequest(*l.model, rng, 1 + i % 5, i % 3 == 0 ? 0 : 2 * l.model->seq_len(), "r" + std::to_string(i));
    const std::string line = io::RequestToJsonLine(l.schema, r);
    EXPECT_NE(line.find("\"click\":{\"item_id\":["), std::string::npos) << line;
    EXPECT_NE(line.find("],\"category\":["), std::string::npos) << line;
    auto back = ParseBoth(l.schema, line);
    ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << line;
    EXPECT_TRUE(SameRequest(back.value(), r)) << line;
    auto via = io::ParseRequestJson(l.schema, line, 1);
    ASSERT_TRUE(via.ok());
    EXPECT_EQ(MustScore(l.model, via.value()).probabilities, MustScore(l.model, r).probabilities);
  }
}

const char kSeqLine[] =
    R"({"id":"s","user":{"user_id":1,"user_segment":2,"user_profile":[0.5,0.25,1]},"context":{"hour":3},)"
    R"("behaviors":{"click":{"item_id":[1,2,3],"category":[4,5,6],"brand":[0,1,2]},)"
    R"("cart":{"brand":[],"item_id":[],"category":[]},"buy":{"item_id":[7],"category":[-8],"brand":[4]}},)"
    R"("candidates":[{"item_id":5,"category":2,"item_stats":[0.1,0.2],"brand":3}]})";

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? s : s.replace(at, from.size(), to);
}

TEST(SeqFieldsJson, ObjectFormParsesIntoSideIds) {
  Loaded l = Load(SeqConfig());
  auto r = ParseBoth(l.schema, kSeqLine);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->behaviors, (std::vector<std::vector<int64_t>>{{1, 2, 3}, {}, {7}}));
  ASSERT_EQ(r->behavior_side_ids.size(), 3u);
  EXPECT_EQ(r->behavior_side_ids[0], (std::vector<std::vector<int64_t>>{{4, 5, 6}, {0, 1, 2}}));
  EXPECT_EQ(r->behavior_side_ids[1], (std::vector<std::vector<int64_t>>{{}, {}}));
  EXPECT_EQ(r->behavior_side_ids[2], (std::vector<std::vector<int64_t>>{{-8}, {4}}));
  MustScore(l.model, r.value());
}

TEST(SeqFieldsJson, MissingExtraKeysAndUnequalLengthsAreNamedErrors) {
  Loaded l = Load(SeqConfig());
  struct Case {
    std::string line, needle;
  };
  const std::vector<Case> cases = {
      {Replace(kSeqLine, R"(,"brand":[0,1,2])", ""), "line 3 (id s): behaviors.click.brand: missing"},
      {Replace(kSeqLine, R"("item_id":[1,2,3],)", ""), "behaviors.click.item_id: missing"},
      {Replace(kSeqLine, R"("brand":[0,1,2])", R"("brand":[0,1,2],"shop":[1,1,1])"),
       "behaviors.click.shop: unknown key (an event carries item_id, category, brand)"},
      {Replace(kSeqLine, R"("brand":[0,1,2])", R"("brand":[0,1])"),
       "behaviors.click.brand: has 2 ids but behaviors.click.item_id has 3"},
      {Replace(kSeqLine, R"("category":[4,5,6])", R"("category":[4,5,6,7])"),
       "behaviors.click.category: has 4 ids but behaviors.click.item_id has 3"},
      {Replace(kSeqLine, R"({"item_id":[7],"category":[-8],"brand":[4]})", "[7]"),
       "behaviors.buy: expected an object {\"item_id\": [...], \"category\": [...], \"brand\": [...]}"},
      {Replace(kSeqLine, R"("category":[4,5,6])", R"("category":[4,5.5,6])"),
       "behaviors.click.category[1]: expected an integer id"},
      {Replace(kSeqLine, R"("category":[4,5,6])", R"("category":7)"),
       "behaviors.click.category: expected an array of ids"},
      {Replace(kSeqLine, R"("brand":[0,1,2])", R"("brand":[0,1,2],"brand":[0,1,2])"), "appears twice"},
      {Replace(kSeqLine, R"("cart":{"brand":[],"item_id":[],"category":[]},)", ""),
       "behaviors.cart: missing (use {\"item_id\": [], \"category\": [], \"brand\": []} for none)"},
  };
  for (const Case& c : cases) {
    auto r = ParseBoth(l.schema, c.line);
    ASSERT_FALSE(r.ok()) << c.line;
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << r.status().message();
  }
  // Side ids are range-checked by their own field's table (brand: 5 rows, un-hashed) in the
  // runtime, as every id is.
  auto out_of_range = ParseBoth(l.schema, Replace(kSeqLine, R"("brand":[4])", R"("brand":[5])"));
  ASSERT_TRUE(out_of_range.ok());
  auto s = Session::Create(l.model);
  Scores scores;
  Status st = (*s)->Score(out_of_range.value(), &scores);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("brand id 5 out of range [0, 5)"), std::string::npos) << st.message();
}

// Without seq_fields the array form is the only form, and the writer's output is unchanged.
TEST(SeqFieldsJson, ModelsWithoutSeqFieldsKeepTheArrayForm) {
  Loaded l = Load(TestModelConfig());
  Request r;
  r.id = "a";
  r.user = {{5, {}}, {1, {}}, {0, {0.5f, 1.f, -2.f}}};
  r.context = {{3, {}}};
  r.behaviors = {{1, 2}, {}, {3}};
  r.candidates = {{{4, {}}, {7, {}}, {0, {0.25f, 0.f}}}};
  const std::string line = io::RequestToJsonLine(l.schema, r);
  EXPECT_EQ(line, R"({"id":"a","user":{"user_id":5,"user_segment":1,"user_profile":[0.5,1,-2]},"context":{"hour":3},)"
                  R"("behaviors":{"click":[1,2],"cart":[],"buy":[3]},)"
                  R"("candidates":[{"item_id":4,"category":7,"item_stats":[0.25,0]}]})");
  auto back = ParseBoth(l.schema, line);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(SameRequest(back.value(), r));
  EXPECT_TRUE(back->behavior_side_ids.empty());
  auto obj = ParseBoth(l.schema, Replace(line, R"("cart":[])", R"("cart":{"item_id":[]})"));
  ASSERT_FALSE(obj.ok());
  EXPECT_NE(obj.status().message().find("behaviors.cart: expected an array of item ids (the object form needs "
                                        "seq_fields, and this model has none)"),
            std::string::npos)
      << obj.status().message();
}

// ---------------------------------------------------------------- C API

struct CModel {
  explicit CModel(const std::string& bytes) {
    EXPECT_EQ(dtrn_model_load_buffer(bytes.data(), bytes.size(), &model, &err), DTRN_OK) << err.message;
  }
  ~CModel() { dtrn_model_free(model); }
  dtrn_model_t* model = nullptr;
  dtrn_error_t err;
};

TEST(SeqFieldsCApi, SetBehaviorFieldsEqualsTheJsonRequest) {
  Loaded l = Load(SeqConfig());
  CModel m(l.bytes);
  ASSERT_EQ(dtrn_model_num_seq_fields(m.model), 2u);
  EXPECT_STREQ(dtrn_model_seq_field_name(m.model, 0), "category");
  EXPECT_STREQ(dtrn_model_seq_field_name(m.model, 1), "brand");
  EXPECT_EQ(dtrn_model_seq_field_name(m.model, 2), nullptr);
  dtrn_error_t err;

  dtrn_request_t* from_json = nullptr;
  ASSERT_EQ(dtrn_request_from_json(m.model, kSeqLine, std::strlen(kSeqLine), &from_json, &err), DTRN_OK) << err.message;
  dtrn_request_t* built = nullptr;
  ASSERT_EQ(dtrn_request_create(m.model, 1, &built, &err), DTRN_OK);
  ASSERT_EQ(dtrn_request_set_id(built, "s", &err), DTRN_OK);
  ASSERT_EQ(dtrn_request_set_sparse(built, "user_id", 1, &err), DTRN_OK);
  ASSERT_EQ(dtrn_request_set_sparse(built, "user_segment", 2, &err), DTRN_OK);
  const float profile[] = {0.5f, 0.25f, 1.f}, stats[] = {0.1f, 0.2f};
  ASSERT_EQ(dtrn_request_set_dense(built, "user_profile", profile, 3, &err), DTRN_OK);
  ASSERT_EQ(dtrn_request_set_sparse(built, "hour", 3, &err), DTRN_OK);
  ASSERT_EQ(dtrn_request_set_candidate_sparse(built, 0, "item_id", 5, &err), DTRN_OK);
  ASSERT_EQ(dtrn_request_set_candidate_sparse(built, 0, "category", 2, &err), DTRN_OK);
  ASSERT_EQ(dtrn_request_set_candidate_sparse(built, 0, "brand", 3, &err), DTRN_OK);
  ASSERT_EQ(dtrn_request_set_candidate_dense(built, 0, "item_stats", stats, 2, &err), DTRN_OK);
  // The array-only setter says what to use instead.
  const int64_t items[] = {1, 2, 3}, cats[] = {4, 5, 6}, brands[] = {0, 1, 2};
  EXPECT_EQ(dtrn_request_set_behavior(built, "click", items, 3, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("dtrn_request_set_behavior_fields"), std::string::npos) << err.message;
  const int64_t* side[] = {cats, brands};
  ASSERT_EQ(dtrn_request_set_behavior_fields(built, "click", items, side, 3, &err), DTRN_OK) << err.message;
  ASSERT_EQ(dtrn_request_set_behavior_fields(built, "cart", nullptr, nullptr, 0, &err), DTRN_OK) << err.message;
  const int64_t buy_item[] = {7}, buy_cat[] = {-8}, buy_brand[] = {4};
  const int64_t* buy_side[] = {buy_cat, buy_brand};
  ASSERT_EQ(dtrn_request_set_behavior_fields(built, "buy", buy_item, buy_side, 1, &err), DTRN_OK);

  EXPECT_TRUE(SameRequest(built->request, from_json->request));
  dtrn_session_t* session = nullptr;
  ASSERT_EQ(dtrn_session_create(m.model, 1, &session, &err), DTRN_OK);
  dtrn_scores_t *a = nullptr, *b = nullptr;
  ASSERT_EQ(dtrn_scores_create(&a, &err), DTRN_OK);
  ASSERT_EQ(dtrn_scores_create(&b, &err), DTRN_OK);
  ASSERT_EQ(dtrn_session_score(session, built, a, &err), DTRN_OK) << err.message;
  ASSERT_EQ(dtrn_session_score(session, from_json, b, &err), DTRN_OK) << err.message;
  EXPECT_EQ(std::memcmp(dtrn_scores_probabilities(a), dtrn_scores_probabilities(b), 2 * sizeof(float)), 0);

  // Named errors: unknown behaviour, NULL arrays; a side id out of its table at scoring.
  EXPECT_EQ(dtrn_request_set_behavior_fields(built, "view", items, side, 3, &err), DTRN_NOT_FOUND);
  EXPECT_EQ(dtrn_request_set_behavior_fields(built, "click", items, nullptr, 3, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("side_ids is NULL"), std::string::npos) << err.message;
  const int64_t* half[] = {cats, nullptr};
  EXPECT_EQ(dtrn_request_set_behavior_fields(built, "click", items, half, 3, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("behaviors.click.brand: side_ids[1] is NULL"), std::string::npos)
      << err.message;
  EXPECT_EQ(dtrn_request_set_behavior_fields(built, "click", nullptr, side, 3, &err), DTRN_INVALID_ARGUMENT);
  const int64_t bad_brands[] = {0, 1, 9};
  const int64_t* bad_side[] = {cats, bad_brands};
  ASSERT_EQ(dtrn_request_set_behavior_fields(built, "click", items, bad_side, 3, &err), DTRN_OK);
  EXPECT_EQ(dtrn_session_score(session, built, a, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("brand id 9"), std::string::npos) << err.message;

  dtrn_scores_free(a);
  dtrn_scores_free(b);
  dtrn_session_free(session);
  dtrn_request_free(built);
  dtrn_request_free(from_json);
}

TEST(SeqFieldsCApi, WithoutSeqFieldsBothSettersWork) {
  Loaded l = Load(TestModelConfig());
  CModel m(l.bytes);
  EXPECT_EQ(dtrn_model_num_seq_fields(m.model), 0u);
  EXPECT_EQ(dtrn_model_seq_field_name(m.model, 0), nullptr);
  dtrn_error_t err;
  dtrn_request_t *r1 = nullptr, *r2 = nullptr;
  ASSERT_EQ(dtrn_request_create(m.model, 1, &r1, &err), DTRN_OK);
  ASSERT_EQ(dtrn_request_create(m.model, 1, &r2, &err), DTRN_OK);
  const int64_t items[] = {3, 1, 4};
  ASSERT_EQ(dtrn_request_set_behavior(r1, "click", items, 3, &err), DTRN_OK);
  ASSERT_EQ(dtrn_request_set_behavior_fields(r2, "click", items, nullptr, 3, &err), DTRN_OK) << err.message;
  EXPECT_EQ(r1->request.behaviors, r2->request.behaviors);
  EXPECT_TRUE(r2->request.behavior_side_ids.empty());
  dtrn_request_free(r1);
  dtrn_request_free(r2);
}

}  // namespace
}  // namespace dtrn
