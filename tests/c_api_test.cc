// The C API (dtrn.h): the same scores and rankings as the C++ API, through JSON and
// through field-by-field requests; error codes and messages for bad models and requests.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dtrn.h"
#include "dtrn/io/requests.h"
#include "dtrn/io/scores.h"
#include "dtrn/runtime.h"
#include "model_builder.h"
#include "test_util.h"

namespace dtrn {
namespace {

// Frees C handles at scope exit.
struct Handles {
  dtrn_model_t* model = nullptr;
  dtrn_session_t* session = nullptr;
  dtrn_request_t* request = nullptr;
  dtrn_scores_t* scores = nullptr;
  ~Handles() {
    dtrn_scores_free(scores);
    dtrn_request_free(request);
    dtrn_session_free(session);
    dtrn_model_free(model);
  }
};

bool ValidUtf8(const char* s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s);
  while (*p) {
    int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
    if (!n) return false;
    for (int i = 1; i < n; ++i)
      if ((p[i] & 0xC0) != 0x80) return false;
    p += n;
  }
  return true;
}

class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bytes_ = testing::BuildTestModel(testing::TestModelConfig());
    path_ = dir_.file("m.dtrn");
    testing::WriteFile(path_, bytes_);
    auto m = Model::FromBuffer(bytes_.data(), bytes_.size());
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = m.value();
    schema_ = io::RequestSchema::FromModel(*model_);
  }

  // Scores with the C++ API.
  Scores CppScore(const Request& r) {
    auto s = Session::Create(model_);
    EXPECT_TRUE(s.ok());
    Scores out;
    Status st = (*s)->Score(r, &out);
    EXPECT_TRUE(st.ok()) << st.message();
    return out;
  }

  // Builds r in the C API field by field, by the model's names.
  dtrn_request_t* BuildFieldByField(dtrn_model_t* m, const Request& r) {
    dtrn_error_t err;
    dtrn_request_t* q = nullptr;
    EXPECT_EQ(dtrn_request_create(m, r.candidates.size(), &q, &err), DTRN_OK) << err.message;
    EXPECT_EQ(dtrn_request_set_id(q, r.id.c_str(), &err), DTRN_OK);
    auto set_group = [&](const std::vector<FieldInfo>& fields, const std::vector<FieldValue>& values) {
      for (size_t i = 0; i < fields.size(); ++i) {
        int rc = fields[i].kind == FieldKind::kSparse
                     ? dtrn_request_set_sparse(q, fields[i].name.c_str(), values[i].id, &err)
                     : dtrn_request_set_dense(q, fields[i].name.c_str(), values[i].dense.data(), values[i].dense.size(),
                                              &err);
        EXPECT_EQ(rc, DTRN_OK) << err.message;
      }
    };
    set_group(schema_.user, r.user);
    set_group(schema_.context, r.context);
    for (size_t b = 0; b < schema_.behaviors.size(); ++b)
      EXPECT_EQ(dtrn_request_set_behavior(q, schema_.behaviors[b].c_str(), r.behaviors[b].data(), r.behaviors[b].size(),
                                          &err),
                DTRN_OK)
          << err.message;
    for (size_t c = 0; c < r.candidates.size(); ++c)
      for (size_t i = 0; i < schema_.item.size(); ++i) {
        const FieldInfo& f = schema_.item[i];
        const FieldValue& v = r.candidates[c][i];
        int rc = f.kind == FieldKind::kSparse
                     ? dtrn_request_set_candidate_sparse(q, c, f.name.c_str(), v.id, &err)
                     : dtrn_request_set_candidate_dense(q, c, f.name.c_str(), v.dense.data(), v.dense.size(), &err);
        EXPECT_EQ(rc, DTRN_OK) << err.message;
      }
    if (!r.weights.empty())
      EXPECT_EQ(dtrn_request_set_weights(q, r.weights.data(), r.weights.size(), &err), DTRN_OK) << err.message;
    return q;
  }

  testing::TempDir dir_;
  std::string bytes_, path_;
  std::shared_ptr<const Model> model_;
  io::RequestSchema schema_;
};

void ExpectSameScores(const dtrn_scores_t* c, const Scores& cpp) {
  ASSERT_EQ(dtrn_scores_num_candidates(c), cpp.num_candidates);
  ASSERT_EQ(dtrn_scores_num_tasks(c), cpp.num_tasks);
  const size_t n = cpp.num_candidates * cpp.num_tasks;
  EXPECT_EQ(std::memcmp(dtrn_scores_probabilities(c), cpp.probabilities.data(), n * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(dtrn_scores_logits(c), cpp.logits.data(), n * sizeof(float)), 0);
}

TEST_F(CApiTest, ModelDescription) {
  Handles h;
  dtrn_error_t err;
  ASSERT_EQ(dtrn_model_load(path_.c_str(), &h.model, &err), DTRN_OK) << err.message;
  EXPECT_EQ(err.code, DTRN_OK);
  EXPECT_STREQ(err.message, "");
  EXPECT_STREQ(dtrn_model_name(h.model), model_->name().c_str());
  ASSERT_EQ(dtrn_model_num_tasks(h.model), model_->tasks().size());
  for (size_t k = 0; k < model_->tasks().size(); ++k)
    EXPECT_STREQ(dtrn_model_task_name(h.model, k), model_->tasks()[k].c_str());
  EXPECT_EQ(dtrn_model_task_name(h.model, 99), nullptr);
  ASSERT_EQ(dtrn_model_num_behaviors(h.model), model_->behaviors().size());
  EXPECT_STREQ(dtrn_model_behavior_name(h.model, 1), model_->behaviors()[1].c_str());
  ASSERT_EQ(dtrn_model_num_fields(h.model), model_->fields().size());
  for (size_t f = 0; f < model_->fields().size(); ++f) {
    const FieldInfo& info = model_->fields()[f];
    EXPECT_STREQ(dtrn_model_field_name(h.model, f), info.name.c_str());
    EXPECT_EQ(dtrn_model_field_group(h.model, f), static_cast<int>(info.group));
    EXPECT_EQ(dtrn_model_field_kind(h.model, f), static_cast<int>(info.kind));
    EXPECT_EQ(dtrn_model_field_width(h.model, f), info.width);
  }
  EXPECT_EQ(dtrn_model_field_group(h.model, 1000), -1);
  EXPECT_EQ(dtrn_model_seq_len(h.model), model_->seq_len());
  EXPECT_EQ(std::string(dtrn_version()).rfind("dtrn-edge ", 0), 0u);
  EXPECT_STREQ(dtrn_status_name(DTRN_DATA_LOSS), "DATA_LOSS");
}

TEST_F(CApiTest, ScoresAndRanksEqualTheCppApi) {
  Handles h;
  dtrn_error_t err;
  ASSERT_EQ(dtrn_model_load(path_.c_str(), &h.model, &err), DTRN_OK) << err.message;
  ASSERT_EQ(dtrn_session_create(h.model, 1, &h.session, &err), DTRN_OK) << err.message;
  ASSERT_EQ(dtrn_scores_create(&h.scores, &err), DTRN_OK);
  EXPECT_EQ(dtrn_scores_probabilities(h.scores), nullptr);  // nothing scored yet

  std::mt19937_64 rng(5);
  for (int t = 0; t < 6; ++t) {
    Request r = testing::RandomRequest(*model_, rng, 1 + t * 7, 2 * model_->seq_len(), "r" + std::to_string(t));
    if (t % 2) r.weights = {0.25f, 3.0f};
    const Scores cpp = CppScore(r);
    auto cpp_order = Rank(cpp, r.weights);
    ASSERT_TRUE(cpp_order.ok());

    // Through JSON.
    const std::string line = io::RequestToJsonLine(schema_, r);
    dtrn_request_t* q = nullptr;
    ASSERT_EQ(dtrn_request_from_json(h.model, line.data(), line.size(), &q, &err), DTRN_OK) << err.message;
    ASSERT_EQ(dtrn_session_score(h.session, q, h.scores, &err), DTRN_OK) << err.message;
    dtrn_request_free(q);
    ExpectSameScores(h.scores, cpp);
    std::vector<int32_t> order(r.candidates.size());
    ASSERT_EQ(dtrn_scores_rank(h.scores, nullptr, 0, order.data(), order.size(), &err), DTRN_OK) << err.message;
    EXPECT_EQ(std::vector<int>(order.begin(), order.end()), cpp_order.value());

    // Field by field: the same bits.
    q = BuildFieldByField(h.model, r);
    ASSERT_EQ(dtrn_session_score(h.session, q, h.scores, &err), DTRN_OK) << err.message;
    dtrn_request_free(q);
    ExpectSameScores(h.scores, cpp);

    // Top-k with the request's weights and with explicit ones.
    const size_t k = 3;
    std::vector<int32_t> top(k);
    size_t count = 99;
    ASSERT_EQ(dtrn_scores_top_k(h.scores, nullptr, 0, k, top.data(), top.size(), &count, &err), DTRN_OK);
    auto cpp_top = TopK(cpp, r.weights, k);
    ASSERT_TRUE(cpp_top.ok());
    ASSERT_EQ(count, cpp_top->size());
    for (size_t i = 0; i < count; ++i) EXPECT_EQ(top[i], cpp_top.value()[i]);
    const float w[2] = {5.0f, -1.0f};
    ASSERT_EQ(dtrn_scores_rank(h.scores, w, 2, order.data(), order.size(), &err), DTRN_OK);
    auto cpp_w = Rank(cpp, {5.0f, -1.0f});
    EXPECT_EQ(std::vector<int>(order.begin(), order.end()), cpp_w.value());
  }
}

TEST_F(CApiTest, LoadFromBufferAndFreeModelFirst) {
  dtrn_error_t err;
  dtrn_model_t* model = nullptr;
  ASSERT_EQ(dtrn_model_load_buffer(bytes_.data(), bytes_.size(), &model, &err), DTRN_OK) << err.message;
  dtrn_session_t* session = nullptr;
  ASSERT_EQ(dtrn_session_create(model, 2, &session, &err), DTRN_OK) << err.message;
  std::mt19937_64 rng(9);
  Request r = testing::RandomRequest(*model_, rng, 12, 5, "buf");
  dtrn_request_t* q = BuildFieldByField(model, r);
  dtrn_model_free(model);  // sessions and requests keep what they need
  dtrn_scores_t* scores = nullptr;
  ASSERT_EQ(dtrn_scores_create(&scores, &err), DTRN_OK);
  ASSERT_EQ(dtrn_session_score(session, q, scores, &err), DTRN_OK) << err.message;
  ExpectSameScores(scores, CppScore(r));
  dtrn_scores_free(scores);
  dtrn_request_free(q);
  dtrn_session_free(session);
}

TEST_F(CApiTest, BadModelsGiveCodesAndMessages) {
  dtrn_error_t err;
  dtrn_model_t* model = reinterpret_cast<dtrn_model_t*>(&err);  // must be reset to NULL on failure
  const std::string missing = dir_.file("missing.dtrn");
  EXPECT_EQ(dtrn_model_load(missing.c_str(), &model, &err), DTRN_NOT_FOUND);
  EXPECT_EQ(model, nullptr);
  EXPECT_EQ(err.code, DTRN_NOT_FOUND);
  EXPECT_NE(std::string(err.message).find(missing), std::string::npos) << err.message;

  // Truncated and corrupted files are refused, never read out of bounds.
  for (size_t keep : {size_t(0), size_t(3), size_t(64), bytes_.size() / 2, bytes_.size() - 1}) {
    int rc = dtrn_model_load_buffer(bytes_.data(), keep, &model, &err);
    EXPECT_NE(rc, DTRN_OK) << keep;
    EXPECT_EQ(rc, err.code);
    EXPECT_GT(std::strlen(err.message), 0u);
    EXPECT_EQ(model, nullptr);
  }
  std::string corrupt = bytes_;
  corrupt[corrupt.size() - 10] ^= 0x5A;  // inside the constant segment: checksum
  EXPECT_EQ(dtrn_model_load_buffer(corrupt.data(), corrupt.size(), &model, &err), DTRN_DATA_LOSS) << err.message;

  EXPECT_EQ(dtrn_model_load(nullptr, &model, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "path is NULL");
  EXPECT_EQ(dtrn_model_load(missing.c_str(), nullptr, nullptr), DTRN_INVALID_ARGUMENT);  // err may be NULL
}

TEST_F(CApiTest, BadRequestsNameTheField) {
  Handles h;
  dtrn_error_t err;
  ASSERT_EQ(dtrn_model_load(path_.c_str(), &h.model, &err), DTRN_OK) << err.message;
  ASSERT_EQ(dtrn_session_create(h.model, 1, &h.session, &err), DTRN_OK);
  ASSERT_EQ(dtrn_scores_create(&h.scores, &err), DTRN_OK);
  dtrn_session_t* none = nullptr;
  EXPECT_EQ(dtrn_session_create(h.model, 0, &none, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "threads must be >= 1, got 0");
  EXPECT_EQ(none, nullptr);

  std::mt19937_64 rng(3);
  Request r = testing::RandomRequest(*model_, rng, 4, 3, "bad1");
  std::string line = io::RequestToJsonLine(schema_, r);
  // JSON: a float where an id belongs.
  std::string bad = line;
  const size_t at = bad.find("\"item_id\":") + 10;
  bad.replace(at, bad.find_first_of(",}", at) - at, "0.5");
  dtrn_request_t* q = nullptr;
  EXPECT_EQ(dtrn_request_from_json(h.model, bad.data(), bad.size(), &q, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_EQ(q, nullptr);
  EXPECT_STREQ(err.message,
               "request (id bad1): candidates[0].item_id: expected an integer id in [-2^63, 2^63), got 0.5");
  EXPECT_EQ(dtrn_request_from_json(h.model, "{", 1, &q, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("invalid JSON"), std::string::npos);

  // An un-hashed id out of range: the runtime refuses it at scoring, naming the field.
  ASSERT_EQ(dtrn_request_from_json(h.model, line.data(), line.size(), &h.request, &err), DTRN_OK) << err.message;
  ASSERT_EQ(dtrn_request_set_candidate_sparse(h.request, 2, "item_id", 40, &err), DTRN_OK);  // vocab 40
  EXPECT_EQ(dtrn_session_score(h.session, h.request, h.scores, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("item_id"), std::string::npos) << err.message;
  EXPECT_EQ(dtrn_scores_probabilities(h.scores), nullptr);  // a failed score leaves no stale result
  int32_t order[4];
  EXPECT_EQ(dtrn_scores_rank(h.scores, nullptr, 0, order, 4, &err), DTRN_INVALID_ARGUMENT);

  // Setters: unknown names, wrong group or kind, wrong width, non-finite, out of range.
  dtrn_request_t* req = h.request;
  EXPECT_EQ(dtrn_request_set_sparse(req, "nope", 1, &err), DTRN_NOT_FOUND);
  EXPECT_NE(std::string(err.message).find("unknown field 'nope' (the model's fields: user_id,"), std::string::npos)
      << err.message;
  EXPECT_EQ(dtrn_request_set_sparse(req, "item_id", 1, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "field 'item_id' is an item field: use dtrn_request_set_candidate_sparse");
  EXPECT_EQ(dtrn_request_set_candidate_sparse(req, 0, "hour", 1, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_EQ(dtrn_request_set_sparse(req, "user_profile", 1, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "field 'user_profile' is dense: set a vector");
  const float two[2] = {1, 2}, nan3[3] = {1, NAN, 2};
  EXPECT_EQ(dtrn_request_set_dense(req, "user_profile", two, 2, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "user.user_profile: expected 3 values, got 2");
  EXPECT_EQ(dtrn_request_set_dense(req, "user_profile", nan3, 3, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "user.user_profile[1]: expected a finite number");
  EXPECT_EQ(dtrn_request_set_candidate_dense(req, 9, "item_stats", two, 2, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "candidate 9 out of range (N = 4)");
  EXPECT_EQ(dtrn_request_set_behavior(req, "wishlist", nullptr, 0, &err), DTRN_NOT_FOUND);
  EXPECT_NE(std::string(err.message).find("unknown behaviour type 'wishlist'"), std::string::npos);
  EXPECT_EQ(dtrn_request_set_weights(req, two, 1, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "weights: expected 2 (one per task), got 1");
  const float inf2[2] = {1, INFINITY};
  EXPECT_EQ(dtrn_request_set_weights(req, inf2, 2, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_EQ(dtrn_request_set_num_candidates(req, 0, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_EQ(dtrn_session_score(nullptr, req, h.scores, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "session is NULL");
}

TEST_F(CApiTest, UnsetValuesAreNamedBeforeScoring) {
  Handles h;
  dtrn_error_t err;
  ASSERT_EQ(dtrn_model_load(path_.c_str(), &h.model, &err), DTRN_OK);
  ASSERT_EQ(dtrn_session_create(h.model, 1, &h.session, &err), DTRN_OK);
  ASSERT_EQ(dtrn_scores_create(&h.scores, &err), DTRN_OK);
  std::mt19937_64 rng(4);
  Request r = testing::RandomRequest(*model_, rng, 3, 3, "u1");
  h.request = BuildFieldByField(h.model, r);
  ASSERT_EQ(dtrn_session_score(h.session, h.request, h.scores, &err), DTRN_OK) << err.message;
  // Growing N leaves the new candidates unset.
  ASSERT_EQ(dtrn_request_set_num_candidates(h.request, 5, &err), DTRN_OK);
  EXPECT_EQ(dtrn_request_num_candidates(h.request), 5u);
  EXPECT_EQ(dtrn_session_score(h.session, h.request, h.scores, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "request u1: candidates[3].item_id was never set");
  // A fresh request names its first unset value, behaviours included.
  dtrn_request_t* q = nullptr;
  ASSERT_EQ(dtrn_request_create(h.model, 1, &q, &err), DTRN_OK);
  EXPECT_EQ(dtrn_session_score(h.session, q, h.scores, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "request: user.user_id was never set");
  for (size_t i = 0; i < schema_.user.size(); ++i)
    if (schema_.user[i].kind == FieldKind::kSparse)
      dtrn_request_set_sparse(q, schema_.user[i].name.c_str(), 1, &err);
    else
      dtrn_request_set_dense(q, schema_.user[i].name.c_str(), r.user[i].dense.data(), r.user[i].dense.size(), &err);
  for (size_t i = 0; i < schema_.context.size(); ++i)
    dtrn_request_set_sparse(q, schema_.context[i].name.c_str(), 1, &err);
  EXPECT_EQ(dtrn_session_score(h.session, q, h.scores, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "request: behaviors.click was never set (set an empty sequence for none)");
  dtrn_request_free(q);
}

TEST_F(CApiTest, RequestForAnotherModelIsRefused) {
  testing::TestModelConfig other;
  other.fields[1].name = "segment";  // another field layout
  const std::string obytes = testing::BuildTestModel(other);
  Handles h, o;
  dtrn_error_t err;
  ASSERT_EQ(dtrn_model_load(path_.c_str(), &h.model, &err), DTRN_OK);
  ASSERT_EQ(dtrn_model_load_buffer(obytes.data(), obytes.size(), &o.model, &err), DTRN_OK) << err.message;
  ASSERT_EQ(dtrn_session_create(o.model, 1, &o.session, &err), DTRN_OK);
  ASSERT_EQ(dtrn_scores_create(&o.scores, &err), DTRN_OK);
  std::mt19937_64 rng(4);
  h.request = BuildFieldByField(h.model, testing::RandomRequest(*model_, rng, 2, 2, "x"));
  EXPECT_EQ(dtrn_session_score(o.session, h.request, o.scores, &err), DTRN_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "request x was built for a model with other fields than the session's");
  // A second load of the same file has the same layout: accepted.
  Handles same;
  ASSERT_EQ(dtrn_model_load(path_.c_str(), &same.model, &err), DTRN_OK);
  ASSERT_EQ(dtrn_session_create(same.model, 1, &same.session, &err), DTRN_OK);
  EXPECT_EQ(dtrn_session_score(same.session, h.request, o.scores, &err), DTRN_OK) << err.message;
}

TEST_F(CApiTest, LongMessagesAreCutAtACharacterBoundary) {
  Handles h;
  dtrn_error_t err;
  ASSERT_EQ(dtrn_model_load(path_.c_str(), &h.model, &err), DTRN_OK);
  std::string key;
  for (int i = 0; i < 400; ++i) key += "\xc3\xa9";  // 800 bytes of 'é'
  std::string line = "{\"id\":\"long\",\"" + key + "\":1}";
  dtrn_request_t* q = nullptr;
  EXPECT_EQ(dtrn_request_from_json(h.model, line.data(), line.size(), &q, &err), DTRN_INVALID_ARGUMENT);
  const size_t len = std::strlen(err.message);
  EXPECT_LT(len, sizeof(err.message));
  EXPECT_GT(len, 400u);
  EXPECT_TRUE(ValidUtf8(err.message));
  EXPECT_EQ(std::string(err.message).rfind("request (id long): \xc3\xa9", 0), 0u) << err.message;
}

}  // namespace
}  // namespace dtrn
