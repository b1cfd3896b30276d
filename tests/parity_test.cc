// Parity with the Python reference (reference/dtrn_ref, float64 goldens):
//   f32 .dtrn: every probability within 1e-5 and every logit within 1e-4;
//   int8 .dtrn (int8 layers and int8 embeddings) vs the f32 runtime: mean |dp| <= 0.01,
//   mean Kendall tau of the fused order >= 0.95 (and per-task AUC within 0.002 where
//   the requests carry labels from a trained model: the committed example).
// Covers small, standard, large, every mtl head, both poolings and seq_fields. Skips when the
// reference (torch) or dtrn-convert is unavailable.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "dtrn/io/requests.h"
#include "dtrn/io/scores.h"
#include "dtrn/metrics.h"
#include "dtrn/runtime.h"
#include "test_util.h"

namespace dtrn {
namespace {

namespace t = dtrn::testing;

struct Scored {
  std::vector<Request> requests;
  std::vector<Scores> scores;
};

bool ConverterBuilt() { return t::FileExists(t::ToolPath("dtrn-convert")); }

std::string Q(const std::string& s) { return "'" + s + "'"; }

// Converts a checkpoint; extra = e.g. "--precision int8 --calibration R --embeddings int8".
void Convert(const std::string& ckpt, const std::string& out, const std::string& extra) {
  std::string log;
  int rc = t::RunCommand(
      Q(t::ToolPath("dtrn-convert")) + " --checkpoint " + Q(ckpt) + " --output " + Q(out) + " " + extra, &log);
  ASSERT_EQ(rc, 0) << log;
}

// Loads `model_path` and scores every request of `requests_path`.
void ScoreFile(const std::string& model_path, const std::string& requests_path, Scored* out) {
  auto model = Model::Load(model_path);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto reqs = io::ReadRequestsFile(*model.value(), requests_path);
  ASSERT_TRUE(reqs.ok()) << reqs.status().ToString();
  auto session = Session::Create(model.value());
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  out->requests = std::move(reqs).value();
  for (const Request& r : out->requests) {
    Scores s;
    Status st = session.value()->Score(r, &s);
    ASSERT_TRUE(st.ok()) << st.ToString();
    out->scores.push_back(std::move(s));
  }
}

// f32 runtime vs the reference's goldens: the spec's 1e-5 / 1e-4.
void ExpectMatchesGolden(const std::string& name, const Scored& got, const std::string& golden_path) {
  auto gold = io::ReadScoresFile(golden_path);
  ASSERT_TRUE(gold.ok()) << gold.status().ToString();
  std::map<std::string, const Scores*> by_id;
  for (const auto& g : gold.value()) by_id[g.id] = &g.scores;
  ASSERT_EQ(by_id.size(), got.requests.size());
  double max_dp = 0, max_dl = 0;
  size_t values = 0;
  for (size_t i = 0; i < got.requests.size(); ++i) {
    const std::string& id = got.requests[i].id;
    ASSERT_TRUE(by_id.count(id)) << "no golden for request " << id;
    const Scores& g = *by_id[id];
    const Scores& s = got.scores[i];
    ASSERT_EQ(g.num_candidates, s.num_candidates) << id;
    ASSERT_EQ(g.num_tasks, s.num_tasks) << id;
    ASSERT_EQ(g.logits.size(), s.logits.size()) << id << ": golden without logits";
    for (size_t j = 0; j < s.probabilities.size(); ++j) {
      double dp = std::fabs(double(s.probabilities[j]) - g.probabilities[j]);
      double dl = std::fabs(double(s.logits[j]) - g.logits[j]);
      max_dp = std::max(max_dp, dp);
      max_dl = std::max(max_dl, dl);
      EXPECT_LE(dp, 1e-5) << name << " request " << id << " value " << j;
      EXPECT_LE(dl, 1e-4) << name << " request " << id << " value " << j;
      ++values;
    }
  }
  std::printf("[ %s ] f32 vs reference: %zu values, max|dp| %.3g, max|dlogit| %.3g\n", name.c_str(), values, max_dp,
              max_dl);
}

std::vector<float> Fused(const Scores& s, const std::vector<float>& w) {
  std::vector<float> f(s.num_candidates, 0.f);
  for (size_t c = 0; c < s.num_candidates; ++c)
    for (size_t k = 0; k < s.num_tasks; ++k) f[c] += (w.empty() ? 1.f : w[k]) * s.prob(c, k);
  return f;
}

// int8 runtime vs f32 runtime on the same requests: the spec's int8 tolerances.
void ExpectInt8Close(const std::string& name, const Scored& f32, const Scored& i8) {
  ASSERT_EQ(f32.scores.size(), i8.scores.size());
  double sum = 0, max_dp = 0, tau_sum = 0;
  size_t values = 0, taus = 0;
  const size_t K = f32.scores.empty() ? 0 : f32.scores[0].num_tasks;
  std::vector<std::vector<float>> pf(K), pi(K), labels(K);
  bool have_labels = true;
  for (size_t i = 0; i < f32.scores.size(); ++i) {
    const Scores& a = f32.scores[i];
    const Scores& b = i8.scores[i];
    ASSERT_EQ(a.probabilities.size(), b.probabilities.size());
    for (size_t j = 0; j < a.probabilities.size(); ++j) {
      double dp = std::fabs(double(a.probabilities[j]) - b.probabilities[j]);
      sum += dp;
      max_dp = std::max(max_dp, dp);
      ++values;
    }
    const Request& r = f32.requests[i];
    double tau = metrics::KendallTau(Fused(a, r.weights), Fused(b, r.weights));
    if (!std::isnan(tau)) tau_sum += tau, ++taus;
    have_labels = have_labels && r.labels.size() == a.num_candidates;
    for (size_t c = 0; c < a.num_candidates; ++c)
      for (size_t k = 0; k < K; ++k) {
        pf[k].push_back(a.prob(c, k));
        pi[k].push_back(b.prob(c, k));
        if (have_labels) labels[k].push_back(r.labels[c][k]);
      }
  }
  const double mean_dp = sum / values, mean_tau = taus ? tau_sum / taus : 1.0;
  EXPECT_LE(mean_dp, 0.01) << name;
  EXPECT_GE(mean_tau, 0.95) << name;
  std::printf("[ %s ] int8 vs f32: mean|dp| %.4f, max|dp| %.4f, mean Kendall tau %.4f", name.c_str(), mean_dp, max_dp,
              mean_tau);
  if (have_labels)
    for (size_t k = 0; k < K; ++k) {
      double a = metrics::Auc(pf[k], labels[k]), b = metrics::Auc(pi[k], labels[k]);
      if (std::isnan(a)) continue;
      std::printf(", AUC[%zu] %.4f vs %.4f", k, a, b);
      EXPECT_LE(std::fabs(a - b), 0.002) << name << " task " << k;
    }
  std::printf("\n");
}

// Reference checkpoint + requests + goldens for a config, converted and compared.
void RunCase(const std::string& name, const std::string& config_path, int count, int seed, bool int8) {
  if (!t::ReferenceAvailable()) GTEST_SKIP() << "python reference (torch, safetensors) not importable";
  if (!ConverterBuilt()) GTEST_SKIP() << "dtrn-convert not built";
  t::TempDir dir;
  const std::string ckpt = dir.file("m.safetensors"), req = dir.file("req.jsonl"), gold = dir.file("gold.jsonl");
  std::string log;
  ASSERT_EQ(t::RunReference("init --config " + Q(config_path) + " --out " + Q(ckpt) + " --seed " + std::to_string(seed),
                            &log),
            0)
      << log;
  ASSERT_EQ(t::RunReference("requests --config " + Q(config_path) + " --count " + std::to_string(count) + " --out " +
                                Q(req) + " --seed " + std::to_string(seed),
                            &log),
            0)
      << log;
  ASSERT_EQ(t::RunReference("golden --checkpoint " + Q(ckpt) + " --requests " + Q(req) + " --out " + Q(gold), &log), 0)
      << log;
  Convert(ckpt, dir.file("f32.dtrn"), "--precision f32");
  Scored f32;
  ScoreFile(dir.file("f32.dtrn"), req, &f32);
  ExpectMatchesGolden(name, f32, gold);
  if (!int8) return;
  Convert(ckpt, dir.file("i8.dtrn"), "--precision int8 --embeddings int8 --calibration " + Q(req));
  Scored i8;
  ScoreFile(dir.file("i8.dtrn"), req, &i8);
  ExpectInt8Close(name, f32, i8);
}

std::string Config(const std::string& name) { return t::SourceDir() + "/reference/configs/" + name + ".json"; }

// A variant of a shipped config, written into `dir`.
std::string Variant(const t::TempDir& dir, const std::string& base, const std::string& name,
                    const nlohmann::json& changes) {
  nlohmann::json c = nlohmann::json::parse(t::ReadFile(Config(base)));
  c["name"] = name;
  for (auto it = changes.begin(); it != changes.end(); ++it) {
    if (it.value().is_null())
      c.erase(it.key());
    else
      c[it.key()] = it.value();
  }
  std::string path = dir.file(name + ".json");
  t::WriteFile(path, c.dump(2));
  return path;
}

TEST(Parity, SmallMmoeTarget) { RunCase("small", Config("small"), 12, 1, true); }

// seq_fields: every behaviour event carries its item's category, summed into the sequence
// input and the target query (spec TIM step 2, pooling).
TEST(Parity, SmallSeqFieldsCategory) { RunCase("small_seq", Config("small-seq"), 12, 8, true); }

TEST(Parity, StandardMmoeTarget) { RunCase("standard", Config("standard"), 6, 2, true); }

// ple head, 2 blocks, 1M x 64 item table: few requests keep it fast. int8 is checked on
// the same architecture with a 20k item table below: the converter's per-layer int8
// measurements re-serialise the whole model, which for a 256 MiB table takes minutes.
TEST(Parity, LargePleTarget) { RunCase("large", Config("large"), 2, 3, false); }

TEST(Parity, LargeArchitectureInt8) {
  t::TempDir dir;
  nlohmann::json fields = nlohmann::json::parse(t::ReadFile(Config("large")))["fields"];
  for (auto& f : fields)
    if (f["name"] == "item_id") f["vocab"] = 20000;
  RunCase("large_20k_items", Variant(dir, "large", "large_20k_items", {{"fields", fields}}), 2, 7, true);
}

TEST(Parity, SmallTowersMean) {
  t::TempDir dir;
  RunCase("small_towers_mean",
          Variant(dir, "small", "small_towers_mean", {{"mtl", "towers"}, {"pooling", "mean"}, {"experts", nullptr}}),
          10, 4, true);
}

TEST(Parity, SmallPleMeanTwoBlocks) {
  t::TempDir dir;
  RunCase("small_ple_mean",
          Variant(dir, "small", "small_ple_mean",
                  {{"mtl", "ple"},
                   {"pooling", "mean"},
                   {"blocks", 2},
                   {"experts", {{"shared", 1}, {"per_task", 2}, {"hidden", {32, 16}}}}}),
          10, 5, true);
}

TEST(Parity, SmallTowersTargetF16Tables) {
  if (!t::ReferenceAvailable()) GTEST_SKIP() << "python reference not importable";
  if (!ConverterBuilt()) GTEST_SKIP() << "dtrn-convert not built";
  t::TempDir dir;
  std::string cfg = Variant(dir, "small", "small_towers", {{"mtl", "towers"}, {"experts", nullptr}});
  std::string log;
  const std::string ckpt = dir.file("m.safetensors"), req = dir.file("req.jsonl");
  ASSERT_EQ(t::RunReference("init --config " + Q(cfg) + " --out " + Q(ckpt) + " --seed 6", &log), 0) << log;
  ASSERT_EQ(t::RunReference("requests --config " + Q(cfg) + " --count 6 --out " + Q(req), &log), 0) << log;
  // f16 embeddings change the inputs by a relative 2^-11 at most: close to f32, not equal.
  Convert(ckpt, dir.file("f32.dtrn"), "--precision f32");
  Convert(ckpt, dir.file("f16.dtrn"), "--precision f32 --embeddings f16");
  Scored a, b;
  ScoreFile(dir.file("f32.dtrn"), req, &a);
  ScoreFile(dir.file("f16.dtrn"), req, &b);
  double max_dp = 0;
  for (size_t i = 0; i < a.scores.size(); ++i)
    for (size_t j = 0; j < a.scores[i].probabilities.size(); ++j)
      max_dp = std::max(max_dp, std::fabs(double(a.scores[i].probabilities[j]) - b.scores[i].probabilities[j]));
  EXPECT_LE(max_dp, 5e-3);
  EXPECT_GT(max_dp, 0.0);
  std::printf("[ small_towers ] f16 tables vs f32: max|dp| %.3g\n", max_dp);
}

// The committed example (a trained `small`): no Python needed.
TEST(Parity, CommittedExample) {
  const std::string dir = t::SourceDir() + "/examples/small";
  const std::string ckpt = dir + "/model.safetensors", req = dir + "/requests.jsonl", gold = dir + "/golden.jsonl";
  if (!t::FileExists(ckpt) || !t::FileExists(req) || !t::FileExists(gold))
    GTEST_SKIP() << "examples/small/{model.safetensors,requests.jsonl,golden.jsonl} not present";
  if (!ConverterBuilt()) GTEST_SKIP() << "dtrn-convert not built";
  t::TempDir tmp;
  Convert(ckpt, tmp.file("f32.dtrn"), "--precision f32");
  Scored f32;
  ScoreFile(tmp.file("f32.dtrn"), req, &f32);
  ExpectMatchesGolden("example", f32, gold);
  Convert(ckpt, tmp.file("i8.dtrn"), "--precision int8 --embeddings int8 --calibration " + Q(req));
  Scored i8;
  ScoreFile(tmp.file("i8.dtrn"), req, &i8);
  ExpectInt8Close("example", f32, i8);
}

}  // namespace
}  // namespace dtrn
