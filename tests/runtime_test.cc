// Runtime core: loader verification, request validation, hashing, ranking, and the
// execution properties (two stages = one candidate at a time, threads, varying N).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <new>
#include <random>
#include <set>
#include <thread>

#include "model_builder.h"
#include "model_impl.h"
#include "test_util.h"

// Counts C++ heap allocations while g_count_allocs is set (the steady-state test). Not under
// ThreadSanitizer: its runtime owns operator new, and replacing it crashes the program at
// start-up; the counting test is skipped there (the other builds run it).
#if defined(__SANITIZE_THREAD__)
#define DTRN_COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DTRN_COUNT_ALLOCS 0
#endif
#endif
#ifndef DTRN_COUNT_ALLOCS
#define DTRN_COUNT_ALLOCS 1
#endif
static std::atomic<bool> g_count_allocs{false};
static std::atomic<long> g_allocs{0};
#if DTRN_COUNT_ALLOCS
void* operator new(size_t n) {
  if (g_count_allocs.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#endif

namespace dtrn {
namespace {

using testing::BuildTestModel;
using testing::RandomRequest;
using testing::TestModelConfig;

std::shared_ptr<const Model> MustLoad(const std::string& bytes, LoadOptions opts = {}) {
  auto m = Model::FromBuffer(bytes.data(), bytes.size(), opts);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? m.value() : nullptr;
}

std::unique_ptr<Session> MustSession(std::shared_ptr<const Model> model, SessionOptions opts = {}) {
  auto s = Session::Create(std::move(model), opts);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

Scores MustScore(Session& s, const Request& r) {
  Scores out;
  Status st = s.Score(r, &out);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Max |a - b| over probabilities and logits (inf if the shapes differ).
double MaxDiff(const Scores& a, const Scores& b) {
  if (a.num_candidates != b.num_candidates || a.num_tasks != b.num_tasks) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.probabilities.size(); ++i) {
    m = std::max(m, std::fabs(double(a.probabilities[i]) - b.probabilities[i]));
    m = std::max(m, std::fabs(double(a.logits[i]) - b.logits[i]));
  }
  return m;
}

bool SameBits(const Scores& a, const Scores& b) {
  return a.num_candidates == b.num_candidates && a.num_tasks == b.num_tasks && a.probabilities == b.probabilities &&
         a.logits == b.logits;
}

// ------------------------------------------------------------------ hashing and ranking

TEST(SplitMix64, SpecVectors) {
  EXPECT_EQ(SplitMix64(0), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(SplitMix64(0) % 1000, 535u);
  EXPECT_EQ(SplitMix64(1), 0x910A2DEC89025CC1ull);
  EXPECT_EQ(SplitMix64(1) % 1000, 465u);
  EXPECT_EQ(SplitMix64(static_cast<uint64_t>(int64_t{-1})), 0xE4D971771B652C20ull);
  EXPECT_EQ(SplitMix64(static_cast<uint64_t>(int64_t{-1})) % 1000, 936u);
}

Scores MakeScores(size_t n, size_t k, std::vector<float> p) {
  Scores s;
  s.num_candidates = n;
  s.num_tasks = k;
  s.probabilities = std::move(p);
  s.logits.assign(n * k, 0.f);
  return s;
}

TEST(Rank, FusedScoreTiesToLowerIndex) {
  // Fused (w = 1, 2), exact in binary: c0 = 0.5, c1 = 1, c2 = 0.5, c3 = 1, c4 = 0.125.
  Scores s = MakeScores(5, 2, {0.5f, 0.f, 0.5f, 0.25f, 0.25f, 0.125f, 0.75f, 0.125f, 0.125f, 0.f});
  auto order = Rank(s, {1.f, 2.f});
  ASSERT_TRUE(order.ok()) << order.status().ToString();
  EXPECT_EQ(order.value(), (std::vector<int>{1, 3, 0, 2, 4}));
  auto top = TopK(s, {1.f, 2.f}, 3);
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top.value(), (std::vector<int>{1, 3, 0}));
  auto all = TopK(s, {1.f, 2.f}, 99);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all.value().size(), 5u);
  // Empty weights = all ones: c0 = .5, c1 = .75, c2 = .375, c3 = .875, c4 = .125
  auto def = Rank(s, {});
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(def.value(), (std::vector<int>{3, 1, 0, 2, 4}));
  // All equal: index order.
  Scores eq = MakeScores(4, 1, {0.5f, 0.5f, 0.5f, 0.5f});
  EXPECT_EQ(Rank(eq, {}).value(), (std::vector<int>{0, 1, 2, 3}));
}

TEST(Rank, RejectsBadWeights) {
  Scores s = MakeScores(2, 2, {0.1f, 0.2f, 0.3f, 0.4f});
  auto r1 = Rank(s, {1.f});
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(r1.status().message(), "weights")) << r1.status().message();
  auto r2 = Rank(s, {1.f, std::numeric_limits<float>::quiet_NaN()});
  ASSERT_FALSE(r2.ok());
  EXPECT_TRUE(Contains(r2.status().message(), "weights[1]")) << r2.status().message();
  EXPECT_FALSE(Rank(s, {1.f, INFINITY}).ok());
  Scores bad = MakeScores(3, 2, {0.1f});
  EXPECT_FALSE(Rank(bad, {}).ok());
}

// ------------------------------------------------------------------ loading

TEST(Loader, LoadsAndDescribesAModel) {
  TestModelConfig c;
  std::string bytes = BuildTestModel(c);
  auto m = MustLoad(bytes);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->name(), "test");
  EXPECT_EQ(m->d(), 8);
  EXPECT_EQ(m->seq_len(), 6);
  EXPECT_EQ(m->tasks(), c.tasks);
  EXPECT_EQ(m->behaviors(), c.behaviors);
  ASSERT_EQ(m->fields().size(), c.fields.size());
  EXPECT_EQ(m->fields()[0].name, "user_id");
  EXPECT_TRUE(m->fields()[0].hashed);
  EXPECT_EQ(m->fields()[0].vocab, 50);
  EXPECT_EQ(m->fields()[2].kind, FieldKind::kDense);
  EXPECT_EQ(m->fields()[2].width, 3);
  EXPECT_EQ(m->group_fields(FieldGroup::kUser), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(m->group_fields(FieldGroup::kContext), (std::vector<int>{3}));
  EXPECT_EQ(m->group_fields(FieldGroup::kItem), (std::vector<int>{4, 5, 6}));
  EXPECT_FALSE(m->has_int8_layers());
  EXPECT_EQ(m->file_size(), bytes.size());
  ASSERT_NE(ViewOf(*m).fbm, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ViewOf(*m).segment) % 64, 0u);
}

TEST(Loader, MmapEqualsBuffer) {
  testing::TempDir dir;
  std::string bytes = BuildTestModel({});
  testing::WriteFile(dir.file("m.dtrn"), bytes);
  auto mapped = Model::Load(dir.file("m.dtrn"));
  ASSERT_TRUE(mapped.ok()) << mapped.status().ToString();
  auto copied = MustLoad(bytes);
  auto s1 = MustSession(mapped.value());
  auto s2 = MustSession(copied);
  std::mt19937_64 rng(5);
  Request r = RandomRequest(*copied, rng, 7, 8);
  EXPECT_TRUE(SameBits(MustScore(*s1, r), MustScore(*s2, r)));
}

TEST(Loader, MissingFileIsNotFound) {
  auto m = Model::Load("/nonexistent/dir/model.dtrn");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(m.status().message(), "/nonexistent/dir/model.dtrn"));
}

TEST(Loader, RejectsEveryTruncation) {
  std::string bytes = BuildTestModel({});
  for (size_t len = 0; len < bytes.size(); ++len) {
    auto m = Model::FromBuffer(bytes.data(), len);
    ASSERT_FALSE(m.ok()) << "prefix of " << len << " bytes loaded";
    ASSERT_EQ(m.status().code(), StatusCode::kDataLoss) << len << ": " << m.status().ToString();
  }
  // With the checksum off, truncation is still caught by the bounds checks.
  for (size_t len = 0; len < bytes.size(); len += 7)
    ASSERT_FALSE(Model::FromBuffer(bytes.data(), len, LoadOptions{false}).ok()) << len;
}

TEST(Loader, RejectsTrailingBytes) {
  std::string bytes = BuildTestModel({}) + std::string(64, '\0');
  auto m = Model::FromBuffer(bytes.data(), bytes.size());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(m.status().message(), "after the constant segment")) << m.status().message();
}

size_t SegmentStart(const std::string& bytes) {
  return format::Header::Parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()).value().segment_offset;
}

TEST(Loader, SegmentBitFlipFailsChecksum) {
  std::string bytes = BuildTestModel({});
  const size_t c = SegmentStart(bytes);
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 200; ++trial) {
    std::string bad = bytes;
    size_t pos = c + rng() % (bytes.size() - c);
    bad[pos] ^= static_cast<char>(1 << (rng() % 8));
    auto m = Model::FromBuffer(bad.data(), bad.size());
    ASSERT_FALSE(m.ok()) << "flip at " << pos;
    EXPECT_EQ(m.status().code(), StatusCode::kDataLoss);
    EXPECT_TRUE(Contains(m.status().message(), "checksum")) << m.status().message();
    // Without the checksum the flipped value is simply used.
    EXPECT_TRUE(Model::FromBuffer(bad.data(), bad.size(), LoadOptions{false}).ok());
  }
}

// Every bit of the FlatBuffer part flipped in turn: the load either fails cleanly or
// gives a model that scores without crashing (ASan builds check the reads).
TEST(Loader, HeaderBitFlipsNeverCrash) {
  std::string bytes = BuildTestModel({});
  const size_t c = SegmentStart(bytes);
  auto good = MustLoad(bytes);
  std::mt19937_64 rng(2);
  Request r = RandomRequest(*good, rng, 3, 8);
  int loaded = 0, rejected = 0;
  for (size_t pos = 0; pos < c; ++pos) {
    for (int bit = 0; bit < 8; bit += 3) {
      std::string bad = bytes;
      bad[pos] ^= static_cast<char>(1 << bit);
      auto m = Model::FromBuffer(bad.data(), bad.size());
      if (!m.ok()) {
        ++rejected;
        EXPECT_FALSE(m.status().message().empty());
        continue;
      }
      ++loaded;
      auto s = Session::Create(m.value());
      if (!s.ok()) continue;
      Scores out;
      (void)s.value()->Score(r, &out);  // may reject the request (e.g. a changed vocab), must not crash
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(loaded + rejected, 0);
}

TEST(Loader, RejectsWrongIdentifier) {
  std::string bytes = BuildTestModel({});
  bytes[1] = 'X';  // the magic "DTRN" at offset 0
  auto m = Model::FromBuffer(bytes.data(), bytes.size());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(m.status().message(), "identifier")) << m.status().message();
  std::string junk(4096, 'j');
  EXPECT_FALSE(Model::FromBuffer(junk.data(), junk.size()).ok());
}

TEST(Loader, RejectsOtherFormatVersion) {
  TestModelConfig c;
  c.format_version = format::kFormatVersion + 1;
  std::string bytes = BuildTestModel(c);
  auto m = Model::FromBuffer(bytes.data(), bytes.size());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(m.status().message(), "format_version " + std::to_string(format::kFormatVersion + 1)))
      << m.status().message();
}

TEST(Loader, RejectsInconsistentConfig) {
  TestModelConfig c;
  c.heads = 3;  // d = 8
  std::string b1 = BuildTestModel(c);
  auto m = Model::FromBuffer(b1.data(), b1.size());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(m.status().message(), "heads")) << m.status().message();

  TestModelConfig first_item_dense;
  std::swap(first_item_dense.fields[4], first_item_dense.fields[6]);  // item_stats before item_id
  std::string b2 = BuildTestModel(first_item_dense);
  auto m2 = Model::FromBuffer(b2.data(), b2.size());
  ASSERT_FALSE(m2.ok());
  EXPECT_TRUE(Contains(m2.status().message(), "item_id")) << m2.status().message();
}

// ------------------------------------------------------------------ request validation

class Validation : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = MustLoad(BuildTestModel({}));
    session_ = MustSession(model_);
    std::mt19937_64 rng(3);
    good_ = RandomRequest(*model_, rng, 4, 5, "req-7");
  }
  // The error of scoring r; fails the test if it scores.
  Status Err(const Request& r) {
    Scores out;
    Status st = session_->Score(r, &out);
    EXPECT_FALSE(st.ok());
    if (!st.ok()) {
      EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
      EXPECT_TRUE(Contains(st.message(), "req-7")) << st.message();
    }
    return st;
  }
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Session> session_;
  Request good_;
};

TEST_F(Validation, GoodRequestScores) {
  Scores out = MustScore(*session_, good_);
  EXPECT_EQ(out.num_candidates, 4u);
  EXPECT_EQ(out.num_tasks, 2u);
  for (size_t i = 0; i < out.probabilities.size(); ++i) {
    EXPECT_TRUE(std::isfinite(out.logits[i]));
    EXPECT_GT(out.probabilities[i], 0.f);
    EXPECT_LT(out.probabilities[i], 1.f);
    EXPECT_NEAR(out.probabilities[i], 1.0 / (1.0 + std::exp(-double(out.logits[i]))), 1e-6);
  }
}

TEST_F(Validation, FieldCounts) {
  Request r = good_;
  r.user.pop_back();
  EXPECT_TRUE(Contains(Err(r).message(), "user"));
  r = good_;
  r.context.push_back(r.context[0]);
  EXPECT_TRUE(Contains(Err(r).message(), "context"));
  r = good_;
  r.candidates[2].pop_back();
  Status st = Err(r);
  EXPECT_TRUE(Contains(st.message(), "candidate 2")) << st.message();
  r = good_;
  r.behaviors.pop_back();
  EXPECT_TRUE(Contains(Err(r).message(), "behaviour"));
}

TEST_F(Validation, IdsOutOfRange) {
  Request r = good_;
  r.user[1].id = 7;  // user_segment: vocab 7, un-hashed
  Status st = Err(r);
  EXPECT_TRUE(Contains(st.message(), "user_segment")) << st.message();
  EXPECT_TRUE(Contains(st.message(), "[0, 7)")) << st.message();
  r = good_;
  r.user[1].id = -1;
  EXPECT_TRUE(Contains(Err(r).message(), "user_segment"));
  r = good_;
  r.candidates[3][0].id = 40;  // item_id: vocab 40, un-hashed
  st = Err(r);
  EXPECT_TRUE(Contains(st.message(), "candidate 3")) << st.message();
  EXPECT_TRUE(Contains(st.message(), "item_id")) << st.message();
  r = good_;
  r.behaviors[1] = {1, 2, 1000};
  st = Err(r);
  EXPECT_TRUE(Contains(st.message(), "cart")) << st.message();
  EXPECT_TRUE(Contains(st.message(), "position 2")) << st.message();
}

TEST_F(Validation, HashedIdsTakeAnyInt64) {
  Request r = good_;
  r.user[0].id = std::numeric_limits<int64_t>::min();
  r.candidates[0][1].id = -5;
  r.candidates[1][1].id = std::numeric_limits<int64_t>::max();
  MustScore(*session_, r);
}

TEST_F(Validation, DenseValues) {
  Request r = good_;
  r.user[2].dense.pop_back();
  Status st = Err(r);
  EXPECT_TRUE(Contains(st.message(), "user_profile")) << st.message();
  r = good_;
  r.candidates[1][2].dense[1] = std::numeric_limits<float>::quiet_NaN();
  st = Err(r);
  EXPECT_TRUE(Contains(st.message(), "candidate 1")) << st.message();
  EXPECT_TRUE(Contains(st.message(), "item_stats")) << st.message();
  EXPECT_TRUE(Contains(st.message(), "not finite")) << st.message();
  r = good_;
  r.user[2].dense[0] = INFINITY;
  EXPECT_TRUE(Contains(Err(r).message(), "user_profile"));
}

TEST_F(Validation, CandidatesAndWeights) {
  Request r = good_;
  r.candidates.clear();
  EXPECT_TRUE(Contains(Err(r).message(), "candidates"));
  r = good_;
  r.weights = {1.f};
  EXPECT_TRUE(Contains(Err(r).message(), "weights"));
  r = good_;
  r.weights = {1.f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_TRUE(Contains(Err(r).message(), "weights[1]"));
  r = good_;
  r.weights = {0.5f, 2.f};
  MustScore(*session_, r);
}

TEST_F(Validation, LongSequencesKeepTheMostRecentL) {
  // L = 6: ids before the last 6 are dropped before the range check and change nothing.
  Request r = good_;
  r.behaviors[0] = {3, 4, 5, 6, 7, 8};
  Scores kept = MustScore(*session_, r);
  r.behaviors[0] = {999, -4, 1, 2, 3, 4, 5, 6, 7, 8};
  Scores longer = MustScore(*session_, r);
  EXPECT_TRUE(SameBits(kept, longer));
  r.behaviors[0] = {3, 4, 5, 6, 7, 9};
  EXPECT_GT(MaxDiff(kept, MustScore(*session_, r)), 0.0);
}

TEST_F(Validation, StagesMisuse) {
  auto s = MustSession(model_);
  Scores out;
  Status st = s->ScoreCandidates(good_, &out);
  EXPECT_FALSE(st.ok());
  ASSERT_TRUE(s->Prepare(good_).ok());
  Request other = good_;
  other.id = "other";
  EXPECT_FALSE(s->ScoreCandidates(other, &out).ok());
  EXPECT_TRUE(s->ScoreCandidates(good_, &out).ok());
  // A failed Prepare invalidates the prepared state.
  Request bad = good_;
  bad.user[1].id = 99;
  EXPECT_FALSE(s->Prepare(bad).ok());
  EXPECT_FALSE(s->ScoreCandidates(good_, &out).ok());
}

// ------------------------------------------------------------------ execution properties

// Model variants every execution test runs on.
std::vector<std::pair<std::string, TestModelConfig>> Variants() {
  std::vector<std::pair<std::string, TestModelConfig>> v;
  TestModelConfig base;
  v.push_back({"mmoe_target_2blocks", base});
  TestModelConfig towers = base;
  towers.mtl = fb::Mtl::Towers;
  towers.pooling = fb::Pooling::Mean;
  towers.blocks = 1;
  v.push_back({"towers_mean", towers});
  TestModelConfig ple = base;
  ple.mtl = fb::Mtl::Ple;
  ple.experts_shared = 1;
  ple.experts_per_task = 2;
  ple.table_type = fb::DType::F16;
  v.push_back({"ple_f16", ple});
  TestModelConfig i8 = base;
  i8.int8_head = true;
  i8.table_type = fb::DType::INT8;
  v.push_back({"mmoe_int8", i8});
  TestModelConfig ple8 = ple;
  ple8.int8_head = true;
  ple8.pooling = fb::Pooling::Mean;
  v.push_back({"ple_int8_mean", ple8});
  return v;
}

TEST(Execution, TwoStagesEqualOneCandidateAtATime) {
  for (const auto& [name, cfg] : Variants()) {
    SCOPED_TRACE(name);
    auto model = MustLoad(BuildTestModel(cfg));
    ASSERT_TRUE(model);
    auto batch = MustSession(model);
    auto single = MustSession(model);
    std::mt19937_64 rng(11);
    for (int req = 0; req < 5; ++req) {
      Request r = RandomRequest(*model, rng, 1 + rng() % 40, 9);
      Scores all = MustScore(*batch, r);
      ASSERT_EQ(all.num_candidates, r.candidates.size());
      double worst = 0;
      for (size_t c = 0; c < r.candidates.size(); ++c) {
        Request one = r;
        one.candidates = {r.candidates[c]};
        Scores s = MustScore(*single, one);
        for (size_t t = 0; t < all.num_tasks; ++t) {
          worst = std::max(worst, std::fabs(double(s.prob(0, t)) - all.prob(c, t)));
          worst = std::max(worst, std::fabs(double(s.logit(0, t)) - all.logit(c, t)));
        }
      }
      EXPECT_LE(worst, 1e-6) << "request " << req;
    }
  }
}

TEST(Execution, NVariesOnOneSession) {
  for (const auto& [name, cfg] : Variants()) {
    SCOPED_TRACE(name);
    auto model = MustLoad(BuildTestModel(cfg));
    auto reused = MustSession(model);
    std::mt19937_64 rng(12);
    for (size_t N : {5, 60, 1, 17, 5, 3000, 2}) {
      Request r = RandomRequest(*model, rng, N, 12);
      Scores a = MustScore(*reused, r);
      auto fresh = MustSession(model);
      Scores b = MustScore(*fresh, r);
      EXPECT_TRUE(SameBits(a, b)) << "N = " << N;
      // Prepare once, score twice: the prepared state is not consumed.
      ASSERT_TRUE(reused->Prepare(r).ok());
      Scores c1, c2;
      ASSERT_TRUE(reused->ScoreCandidates(r, &c1).ok());
      ASSERT_TRUE(reused->ScoreCandidates(r, &c2).ok());
      EXPECT_TRUE(SameBits(a, c1));
      EXPECT_TRUE(SameBits(a, c2));
    }
  }
}

TEST(Execution, ConcurrentSessionsMatchSerial) {
  for (const auto& [name, cfg] : Variants()) {
    SCOPED_TRACE(name);
    auto model = MustLoad(BuildTestModel(cfg));
    std::mt19937_64 rng(13);
    std::vector<Request> reqs;
    for (int i = 0; i < 24; ++i)
      reqs.push_back(RandomRequest(*model, rng, 1 + rng() % 30, 10, "r" + std::to_string(i)));
    std::vector<Scores> serial;
    auto s = MustSession(model);
    for (const Request& r : reqs) serial.push_back(MustScore(*s, r));
    const int kThreads = 8;
    std::vector<std::vector<Scores>> got(kThreads);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        auto ses = Session::Create(model);
        if (!ses.ok()) return (void)++failures;
        for (int rep = 0; rep < 3; ++rep)
          for (size_t i = 0; i < reqs.size(); ++i) {
            const Request& r = reqs[(i + t * 5) % reqs.size()];
            Scores out;
            if (!ses.value()->Score(r, &out).ok()) ++failures;
            if (rep == 2) got[t].push_back(std::move(out));
          }
      });
    for (auto& th : threads) th.join();
    ASSERT_EQ(failures.load(), 0);
    for (int t = 0; t < kThreads; ++t)
      for (size_t i = 0; i < reqs.size(); ++i)
        EXPECT_TRUE(SameBits(got[t][i], serial[(i + t * 5) % reqs.size()])) << "thread " << t << " request " << i;
  }
}

TEST(Execution, IntraRequestThreadsMatchOneThread) {
  for (const auto& [name, cfg] : Variants()) {
    SCOPED_TRACE(name);
    auto model = MustLoad(BuildTestModel(cfg));
    auto one = MustSession(model);
    SessionOptions o;
    o.threads = 2;
    auto two = MustSession(model, o);
    std::mt19937_64 rng(14);
    for (int i = 0; i < 2; ++i) {
      Request r = RandomRequest(*model, rng, 50, 10);
      EXPECT_LE(MaxDiff(MustScore(*one, r), MustScore(*two, r)), 1e-6);
    }
  }
  SessionOptions bad;
  bad.threads = 0;
  EXPECT_FALSE(Session::Create(MustLoad(BuildTestModel({})), bad).ok());
}

// Once a session has seen the largest sizes, scoring allocates nothing on the heap.
TEST(Execution, SteadyStateScoringDoesNotAllocate) {
  for (const auto& [name, cfg] : Variants()) {
    SCOPED_TRACE(name);
    auto model = MustLoad(BuildTestModel(cfg));
    auto s = MustSession(model);
    std::mt19937_64 rng(18);
    Request big = RandomRequest(*model, rng, 64, 0, "warm");
    for (auto& seq : big.behaviors) seq.assign(cfg.L + 3, 1);
    std::vector<Request> reqs;
    for (int i = 0; i < 10; ++i) reqs.push_back(RandomRequest(*model, rng, 1 + rng() % 64, cfg.L + 3, "r"));
    Scores out;  // the caller's output vectors keep their capacity too
    ASSERT_TRUE(s->Score(big, &out).ok());
    if (!DTRN_COUNT_ALLOCS) GTEST_SKIP() << "operator new is ThreadSanitizer's in this build";
    g_allocs = 0;
    g_count_allocs = true;
    for (const Request& r : reqs) {
      Status st = s->Score(r, &out);
      if (!st.ok()) ADD_FAILURE() << st.ToString();
    }
    g_count_allocs = false;
    EXPECT_EQ(g_allocs.load(), 0);
  }
}

// Records every Linear the f32 path runs.
class Recorder : public ActivationObserver {
 public:
  void Observe(const std::string& layer, const float* input, size_t rows, size_t in_features, const float* output,
               size_t out_features) override {
    auto& e = calls[layer];
    e.count++;
    e.rows += rows;
    e.in = in_features;
    e.out = out_features;
    for (size_t i = 0; i < rows * out_features; ++i) {
      e.min_out = std::min(e.min_out, output[i]);
      if (!std::isfinite(output[i])) e.nonfinite = true;
    }
    if (layer == "trm.0.fc1") last_trm_input.assign(input, input + rows * in_features);
  }
  struct Entry {
    int count = 0;
    size_t rows = 0, in = 0, out = 0;
    float min_out = INFINITY;
    bool nonfinite = false;
  };
  std::map<std::string, Entry> calls;
  std::vector<float> last_trm_input;
};

TEST(Execution, ObserverSeesEveryF32Linear) {
  TestModelConfig cfg;
  auto model = MustLoad(BuildTestModel(cfg));
  Recorder rec;
  SessionOptions o;
  o.observer = &rec;
  auto s = MustSession(model, o);
  std::mt19937_64 rng(15);
  Request r = RandomRequest(*model, rng, 6, 8);
  r.behaviors = {{1, 2, 3}, {}, {}};
  Scores with = MustScore(*s, r);
  // Without an observer the head's first layers run split (the exact rewrite): same
  // values up to float rounding.
  auto plain = MustSession(model);
  EXPECT_LE(MaxDiff(with, MustScore(*plain, r)), 1e-5);
  std::set<std::string> want = {"dense.user_profile", "dense.item_stats", "tim.query"};
  for (int i = 0; i < cfg.blocks; ++i)
    for (const char* l : {".attn.in_proj", ".attn.out_proj", ".ffn1", ".ffn2"})
      want.insert("tim.blocks." + std::to_string(i) + l);
  for (int k = 0; k < 2; ++k) {
    want.insert("trm." + std::to_string(k) + ".fc1");
    want.insert("trm." + std::to_string(k) + ".fc2");
    want.insert("gates." + std::to_string(k));
    want.insert("towers." + std::to_string(k) + ".0");
    want.insert("towers." + std::to_string(k) + ".1");
  }
  for (int e = 0; e < 2; ++e)
    for (int j = 0; j < 2; ++j) want.insert("experts." + std::to_string(e) + "." + std::to_string(j));
  std::set<std::string> got;
  for (const auto& [name, e] : rec.calls) got.insert(name);
  EXPECT_EQ(got, want);
  for (const auto& [name, e] : rec.calls) {
    EXPECT_FALSE(e.nonfinite) << name;
    bool relu = Contains(name, "ffn1") || Contains(name, "fc1") || Contains(name, "experts.") || name == "towers.0.0" ||
                name == "towers.1.0";
    if (relu) {
      EXPECT_GE(e.min_out, 0.f) << name;
    }
  }
  EXPECT_EQ(rec.calls["tim.query"].rows, 6u);
  EXPECT_EQ(rec.calls["experts.0.0"].rows, 12u);               // shared experts run on every task's rows
  EXPECT_EQ(rec.calls["experts.0.0"].in, 80u);                 // n * d = (7 + 3) * 8
  EXPECT_EQ(rec.calls["tim.blocks.0.attn.in_proj"].rows, 3u);  // block 0: shared by the tasks
  EXPECT_EQ(rec.calls["tim.blocks.1.attn.in_proj"].rows, 6u);  // later blocks: per task
}

// Every int8 kernel choice this CPU can run scores every variant to the same bits: the
// AVX2 and portable paths of an x86 machine without AVX-512 VNNI never rot.
TEST(Execution, EveryInt8KernelChoiceGivesTheSameBits) {
  std::vector<DenseKernels> choices;
  for (DenseKernels k :
       {DenseKernels::kPortable, DenseKernels::kAvx2, DenseKernels::kAvx512Vnni, DenseKernels::kNeonDot}) {
    SessionOptions o;
    o.kernels = k;
    auto model = MustLoad(BuildTestModel({}));
    if (Session::Create(model, o).ok()) choices.push_back(k);
  }
  ASSERT_FALSE(choices.empty());
  TestModelConfig towers8;
  towers8.mtl = fb::Mtl::Towers;
  towers8.int8_head = true;
  auto variants = Variants();
  variants.push_back({"towers_int8", towers8});
  for (const auto& [name, cfg] : variants) {
    if (!cfg.int8_head) continue;
    SCOPED_TRACE(name);
    auto model = MustLoad(BuildTestModel(cfg));
    std::vector<std::unique_ptr<Session>> sessions;
    for (DenseKernels k : choices) {
      SessionOptions o;
      o.kernels = k;
      sessions.push_back(MustSession(model, o));
    }
    std::mt19937_64 rng(23);
    for (int i = 0; i < 10; ++i) {
      Request r = RandomRequest(*model, rng, 1 + rng() % 60, 8);
      Scores ref = MustScore(*sessions[0], r);
      for (size_t j = 1; j < sessions.size(); ++j)
        EXPECT_TRUE(SameBits(ref, MustScore(*sessions[j], r)))
            << DenseKernelsName(choices[j]) << " vs " << DenseKernelsName(choices[0]);
    }
  }
  // A kernel this machine lacks is refused by name, not silently replaced.
  for (DenseKernels k : {DenseKernels::kAvx2, DenseKernels::kAvx512Vnni, DenseKernels::kNeonDot}) {
    if (std::find(choices.begin(), choices.end(), k) != choices.end()) continue;
    SessionOptions o;
    o.kernels = k;
    auto s = Session::Create(MustLoad(BuildTestModel({})), o);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(Contains(s.status().message(), DenseKernelsName(k))) << s.status().message();
  }
}

// Sees every layer; with it the session runs every head layer whole (no split).
struct NullObserver : ActivationObserver {
  void Observe(const std::string&, const float*, size_t, size_t, const float*, size_t) override {}
};

// int8 heads: the first expert/gate (towers: tower) layer runs split per request (int8
// rest columns, f32 user/context products); with an observer it runs whole. Same model,
// same requests: they differ only by the rounding of that layer, and the split is as
// close to the f32 model (same float weights) as the whole layer is.
TEST(Execution, Int8SplitFirstLayerMatchesWholeLayer) {
  NullObserver watcher;
  auto variants = Variants();
  TestModelConfig towers8;
  towers8.mtl = fb::Mtl::Towers;
  towers8.int8_head = true;
  variants.push_back({"towers_int8", towers8});
  for (const auto& [name, cfg] : variants) {
    if (!cfg.int8_head) continue;
    SCOPED_TRACE(name);
    auto model = MustLoad(BuildTestModel(cfg));
    SessionOptions whole_opts;
    whole_opts.observer = &watcher;
    TestModelConfig f32_cfg = cfg;
    f32_cfg.int8_head = false;
    auto f32_model = MustLoad(BuildTestModel(f32_cfg));
    auto split = MustSession(model), whole = MustSession(model, whole_opts), f32 = MustSession(f32_model);
    std::mt19937_64 rng(19);
    double worst = 0, sum = 0, split_err = 0, whole_err = 0;
    size_t count = 0;
    bool differs = false;
    for (int i = 0; i < 20; ++i) {
      Request r = RandomRequest(*model, rng, 1 + rng() % 40, 8);
      Scores a = MustScore(*split, r), b = MustScore(*whole, r), f = MustScore(*f32, r);
      ASSERT_EQ(a.probabilities.size(), b.probabilities.size());
      differs |= !SameBits(a, b);
      for (size_t j = 0; j < a.probabilities.size(); ++j) {
        double dp = std::fabs(double(a.probabilities[j]) - b.probabilities[j]);
        worst = std::max(worst, dp);
        sum += dp;
        split_err += std::fabs(double(a.probabilities[j]) - f.probabilities[j]);
        whole_err += std::fabs(double(b.probabilities[j]) - f.probabilities[j]);
        ++count;
      }
    }
    EXPECT_TRUE(differs);  // the split path really ran
    EXPECT_LE(worst, 0.06);
    EXPECT_LE(sum / count, 0.01);
    EXPECT_LE(split_err, 1.25 * whole_err);
    std::printf(
        "[ %s ] split vs whole int8: max |dp| = %.3g, mean |dp| = %.3g; mean |dp| to f32: split %.3g, whole %.3g\n",
        name.c_str(), worst, sum / count, split_err / count, whole_err / count);
  }
}

TEST(Execution, EmptySequencesGiveZeroInterest) {
  for (auto pooling : {fb::Pooling::Target, fb::Pooling::Mean}) {
    TestModelConfig cfg;
    cfg.pooling = pooling;
    auto model = MustLoad(BuildTestModel(cfg));
    Recorder rec;
    SessionOptions o;
    o.observer = &rec;
    auto s = MustSession(model, o);
    std::mt19937_64 rng(16);
    Request r = RandomRequest(*model, rng, 5, 8);
    r.behaviors = {{}, {4, 5}, {}};
    Scores out = MustScore(*s, r);
    for (float p : out.probabilities) EXPECT_TRUE(std::isfinite(p));
    // TRM input z = squeezes of the 7 fields then the 3 interests: empty ones are exactly 0.
    ASSERT_EQ(rec.last_trm_input.size(), 5u * 10u);
    for (size_t c = 0; c < 5; ++c) {
      EXPECT_EQ(rec.last_trm_input[c * 10 + 7], 0.f);
      EXPECT_NE(rec.last_trm_input[c * 10 + 8], 0.f);
      EXPECT_EQ(rec.last_trm_input[c * 10 + 9], 0.f);
    }
    r.behaviors = {{}, {}, {}};
    out = MustScore(*s, r);
    for (float p : out.probabilities) EXPECT_TRUE(std::isfinite(p));
  }
}

TEST(Execution, QuantizedTablesAndLayersStayClose) {
  TestModelConfig f32;
  auto ref_model = MustLoad(BuildTestModel(f32));
  auto ref = MustSession(ref_model);
  struct Case {
    const char* name;
    fb::DType tables;
    bool int8_head;
    double max_tol;
  };
  for (const Case& cs :
       {Case{"f16 tables", fb::DType::F16, false, 2e-3}, Case{"int8 tables", fb::DType::INT8, false, 0.05},
        Case{"int8 head", fb::DType::F32, true, 0.15}}) {
    SCOPED_TRACE(cs.name);
    TestModelConfig c = f32;
    c.table_type = cs.tables;
    c.int8_head = cs.int8_head;
    auto model = MustLoad(BuildTestModel(c));  // same seed: same float weights before quantization
    EXPECT_EQ(model->has_int8_layers(), cs.int8_head);
    auto s = MustSession(model);
    std::mt19937_64 rng(17);
    double worst = 0, sum = 0;
    size_t count = 0;
    for (int i = 0; i < 10; ++i) {
      Request r = RandomRequest(*ref_model, rng, 20, 8);
      Scores a = MustScore(*ref, r), b = MustScore(*s, r);
      for (size_t j = 0; j < a.probabilities.size(); ++j) {
        double dp = std::fabs(double(a.probabilities[j]) - b.probabilities[j]);
        worst = std::max(worst, dp);
        sum += dp;
        ++count;
      }
    }
    EXPECT_LE(worst, cs.max_tol);
    EXPECT_GT(worst, 0.0);  // the quantized path really ran
    std::printf("[ %s ] max |dp| = %.3g, mean |dp| = %.3g\n", cs.name, worst, sum / count);
  }
}

}  // namespace
}  // namespace dtrn
