// Soak: many threads, each with its own Session over one shared Model, score a mix of valid
// and invalid requests for a while. Every valid request scores without error and bit for bit
// as serial scoring did; every invalid one is refused with a message; the process's resident
// memory stays flat after warm-up. A few seconds by default (CI); DTRN_SOAK_SECONDS=N for
// longer runs, DTRN_SOAK_THREADS=T for another thread count.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dtrn/runtime.h"
#include "model_builder.h"

namespace dtrn {
namespace {

using testing::BuildTestModel;
using testing::RandomRequest;
using testing::TestModelConfig;

double EnvNumber(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const double d = std::strtod(v, &end);
  return end != v && d > 0 ? d : fallback;
}

// Resident set size of this process (VmRSS), in KiB; 0 if unknown.
long RssKib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return 0;
}

struct Case {
  Request request;
  bool valid = true;
  std::vector<float> probabilities, logits;  // serial scores of a valid request
};

// Invalid variants of a valid request, one rule broken each (request_check.cc's rules).
std::vector<Request> Break(const Model& m, const Request& good) {
  std::vector<Request> bad;
  auto with = [&](auto edit) {
    Request r = good;
    r.id = good.id + "-bad" + std::to_string(bad.size());
    edit(r);
    bad.push_back(std::move(r));
  };
  const auto& user = m.group_fields(FieldGroup::kUser);
  for (size_t s = 0; s < user.size(); ++s) {
    const FieldInfo& f = m.fields()[user[s]];
    if (f.kind == FieldKind::kSparse && !f.hashed) with([&](Request& r) { r.user[s].id = f.vocab; });
    if (f.kind == FieldKind::kSparse && !f.hashed) with([&](Request& r) { r.user[s].id = -1; });
    if (f.kind == FieldKind::kDense) with([&](Request& r) { r.user[s].dense[0] = NAN; });
    if (f.kind == FieldKind::kDense) with([&](Request& r) { r.user[s].dense.push_back(1.f); });
  }
  with([&](Request& r) { r.context.clear(); });
  with([&](Request& r) { r.behaviors.pop_back(); });
  with([&](Request& r) { r.behaviors[0].push_back(m.fields()[m.group_fields(FieldGroup::kItem)[0]].vocab); });
  with([&](Request& r) { r.candidates.clear(); });
  with([&](Request& r) { r.candidates.back()[0].id = std::numeric_limits<int64_t>::min(); });
  with([&](Request& r) { r.candidates[0].pop_back(); });
  with([&](Request& r) { r.weights = {1.f, INFINITY}; });
  with([&](Request& r) { r.weights = {1.f}; });
  return bad;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerAllocator = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitizerAllocator = true;
#else
constexpr bool kSanitizerAllocator = false;
#endif
#else
constexpr bool kSanitizerAllocator = false;
#endif

void Soak(const TestModelConfig& cfg, const char* name) {
  const std::string bytes = BuildTestModel(cfg);
  auto loaded = Model::FromBuffer(bytes.data(), bytes.size());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  std::shared_ptr<const Model> model = loaded.value();

  // The pool: valid requests of every size (N 1..100, sequences 0..2L), and broken ones.
  std::mt19937_64 rng(2026);
  std::vector<Case> pool;
  for (int i = 0; i < 48; ++i) {
    Case c;
    const size_t n = i == 0 ? 100 : 1 + rng() % 100;
    c.request = RandomRequest(*model, rng, n, 2 * model->seq_len(), "r" + std::to_string(i));
    if (i % 3 == 1) c.request.weights = {0.5f, 2.f};
    pool.push_back(std::move(c));
  }
  for (int i = 0; i < 48; i += 8)
    for (Request& r : Break(*model, pool[i].request)) {
      Case c;
      c.request = std::move(r);
      c.valid = false;
      pool.push_back(std::move(c));
    }
  const size_t n_valid = 48;  // pool[0, n_valid) valid, the rest broken; three picks in four are valid
  {
    auto serial = Session::Create(model);
    ASSERT_TRUE(serial.ok());
    Scores s;
    for (Case& c : pool) {
      Status st = (*serial)->Score(c.request, &s);
      ASSERT_EQ(st.ok(), c.valid) << c.request.id << ": " << st.ToString();
      if (!st.ok()) ASSERT_FALSE(st.message().empty());
      c.probabilities = s.probabilities;
      c.logits = s.logits;
    }
  }

  const int threads = static_cast<int>(EnvNumber("DTRN_SOAK_THREADS", 8));
  const double seconds = EnvNumber("DTRN_SOAK_SECONDS", 3);
  std::atomic<int> warmed{0};
  std::atomic<bool> go{false}, stop{false};
  std::atomic<long> scored{0}, refused{0}, valid_errors{0}, invalid_accepted{0}, mismatches{0};
  std::vector<std::thread> pool_threads;
  for (int t = 0; t < threads; ++t)
    pool_threads.emplace_back([&, t] {
      auto session = Session::Create(model);
      if (!session.ok()) {
        ++valid_errors;
        ++warmed;
        return;
      }
      Scores s;
      auto one = [&](const Case& c) {
        Status st = (*session)->Score(c.request, &s);
        if (c.valid && !st.ok()) ++valid_errors;
        if (!c.valid && (st.ok() || st.message().empty())) ++invalid_accepted;
        if (c.valid && st.ok() && (s.probabilities != c.probabilities || s.logits != c.logits)) ++mismatches;
        (st.ok() ? scored : refused)++;
      };
      for (const Case& c : pool) one(c);  // warm-up: every size once
      ++warmed;
      while (!go) std::this_thread::yield();
      std::mt19937_64 mine(t + 1);
      while (!stop) one(pool[mine() % 4 ? mine() % n_valid : n_valid + mine() % (pool.size() - n_valid)]);
    });
  while (warmed < threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const long rss_before = RssKib();
  const long warm_scored = scored, warm_refused = refused;
  const auto start = std::chrono::steady_clock::now();
  go = true;
  long rss_mid = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (rss_mid == 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > seconds / 2)
      rss_mid = RssKib();
  }
  const long rss_after = RssKib();
  stop = true;
  for (auto& th : pool_threads) th.join();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long n_scored = scored - warm_scored, n_refused = refused - warm_refused;
  std::printf(
      "soak %s: %d threads, %.1f s: %ld requests (%ld scored, %ld refused), %.0f requests/s; "
      "RSS %ld KiB after warm-up, %ld KiB halfway, %ld KiB at the end (%+ld KiB)\n",
      name, threads, elapsed, n_scored + n_refused, n_scored, n_refused, (n_scored + n_refused) / elapsed, rss_before,
      rss_mid, rss_after, rss_after - rss_before);
  EXPECT_EQ(valid_errors.load(), 0);
  EXPECT_EQ(invalid_accepted.load(), 0);
  EXPECT_EQ(mismatches.load(), 0) << "a thread's scores differ from serial scoring";
  EXPECT_GT(n_scored, 0);
  EXPECT_GT(n_refused, 0);
  // Flat: every buffer reached its size in the warm-up. Allow the allocator some slack. Not
  // under ASan or TSan: their allocators hold freed memory in a quarantine that grows.
  if (rss_before > 0 && !kSanitizerAllocator)
    EXPECT_LE(rss_after - rss_before, 4096 + rss_before / 50) << "RSS grew after warm-up";
}

TEST(Soak, F32ModelManyThreads) { Soak(TestModelConfig(), "f32"); }

TEST(Soak, Int8ModelManyThreads) {
  TestModelConfig cfg;
  cfg.table_type = fb::DType::INT8;
  cfg.int8_head = true;
  cfg.seed = 7;
  Soak(cfg, "int8");
}

}  // namespace
}  // namespace dtrn
