// The command-line tools end to end: dtrn-run (scores file, threads, --top, AUC, bad
// lines, atomic output), dtrn-bench (runs, JSON), and the C example program.
#include <dirent.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "dtrn/io/requests.h"
#include "dtrn/io/scores.h"
#include "dtrn/metrics.h"
#include "dtrn/runtime.h"
#include "model_builder.h"
#include "test_util.h"

namespace dtrn {
namespace {

using testing::FileExists;
using testing::ReadFile;
using testing::RunCommand;
using testing::ToolPath;
using testing::WriteFile;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> out;
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* e = readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
    closedir(d);
  }
  return out;
}

class ToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string bytes = testing::BuildTestModel(testing::TestModelConfig());
    model_path_ = dir_.file("m.dtrn");
    WriteFile(model_path_, bytes);
    auto m = Model::FromBuffer(bytes.data(), bytes.size());
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = m.value();
    schema_ = io::RequestSchema::FromModel(*model_);
    std::mt19937_64 rng(21);
    std::string text;
    for (int i = 0; i < 12; ++i) {
      Request r =
          testing::RandomRequest(*model_, rng, 1 + (i * 5) % 23, 2 * model_->seq_len(), "r" + std::to_string(i));
      for (size_t c = 0; c < r.candidates.size(); ++c)
        r.labels.push_back({static_cast<float>(rng() % 2), static_cast<float>(rng() % 3 == 0)});
      if (i % 4 == 1) r.weights = {2.0f, 0.5f};
      lines_.push_back(io::RequestToJsonLine(schema_, r));
      requests_.push_back(std::move(r));
      text += lines_.back() + (i == 5 ? "\n\n" : "\n");  // a blank line is skipped
    }
    requests_path_ = dir_.file("req.jsonl");
    WriteFile(requests_path_, text);
  }

  // Runs a tool; stdout into *out, stderr into *err; returns the exit code.
  int Run(const std::string& tool, const std::string& args, std::string* out, std::string* err = nullptr) {
    const std::string err_path = dir_.file("stderr.txt");
    int rc = RunCommand("(" + ToolPath(tool) + " " + args + " 2>'" + err_path + "')", out);
    if (err) *err = FileExists(err_path) ? ReadFile(err_path) : "";
    std::remove(err_path.c_str());
    return rc;
  }

  std::string Base() const { return "--model '" + model_path_ + "' --requests '" + requests_path_ + "'"; }

  // A copy of the requests with line `index` (0-based request) replaced.
  std::string WriteWithLine(size_t index, const std::string& replacement) {
    std::string text;
    for (size_t i = 0; i < lines_.size(); ++i) text += (i == index ? replacement : lines_[i]) + "\n";
    std::string path = dir_.file("bad.jsonl");
    WriteFile(path, text);
    return path;
  }

  testing::TempDir dir_;
  std::string model_path_, requests_path_;
  std::shared_ptr<const Model> model_;
  io::RequestSchema schema_;
  std::vector<Request> requests_;
  std::vector<std::string> lines_;
};

TEST_F(ToolsTest, RunWritesOneScoresLinePerRequestEqualToTheApi) {
  std::string out, err;
  const std::string output = dir_.file("scores.jsonl");
  ASSERT_EQ(Run("dtrn-run", Base() + " --output '" + output + "'", &out, &err), 0) << err;
  EXPECT_NE(err.find("scored 12 requests"), std::string::npos) << err;
  std::vector<std::string> got = Lines(ReadFile(output));
  ASSERT_EQ(got.size(), requests_.size());
  auto session = Session::Create(model_);
  ASSERT_TRUE(session.ok());
  for (size_t i = 0; i < requests_.size(); ++i) {
    Scores s;
    ASSERT_TRUE((*session)->Score(requests_[i], &s).ok());
    auto order = Rank(s, requests_[i].weights);
    ASSERT_TRUE(order.ok());
    // 9 significant digits round-trip float32: the line is exactly what the API gives.
    EXPECT_EQ(got[i], io::ScoresToJsonLine(requests_[i].id, s, order.value())) << i;
  }
  // Only the output is left in the directory: no temporary file.
  for (const std::string& name : ListDir(dir_.path())) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
}

TEST_F(ToolsTest, ThreadsGiveTheSameBytes) {
  std::string out, err;
  const std::string one = dir_.file("one.jsonl"), four = dir_.file("four.jsonl");
  ASSERT_EQ(Run("dtrn-run", Base() + " --output '" + one + "' --quiet", &out, &err), 0) << err;
  EXPECT_EQ(err, "");  // --quiet
  ASSERT_EQ(Run("dtrn-run", Base() + " --output=" + four + " --threads 4 --intra-threads 2 --quiet", &out, &err), 0)
      << err;
  EXPECT_EQ(ReadFile(one), ReadFile(four));
  // Without --output the scores go to stdout.
  ASSERT_EQ(Run("dtrn-run", Base() + " --quiet", &out, &err), 0) << err;
  EXPECT_EQ(out.substr(0, out.find("AUC")), ReadFile(one));  // the AUC table goes to stderr then
}

TEST_F(ToolsTest, TopPrintsTheBestCandidates) {
  std::string out, err;
  ASSERT_EQ(Run("dtrn-run", Base() + " --top 3 --quiet", &out, &err), 0) << err;
  std::vector<std::string> got = Lines(out);
  ASSERT_GE(got.size(), requests_.size());
  auto session = Session::Create(model_);
  for (size_t i = 0; i < requests_.size(); ++i) {
    Scores s;
    ASSERT_TRUE((*session)->Score(requests_[i], &s).ok());
    auto top = TopK(s, requests_[i].weights, 3);
    std::string expect = requests_[i].id + ":";
    for (int c : top.value()) {
      // The fused score the ranking used (one definition: dtrn::FusedScore).
      const float fused = FusedScore(s, requests_[i].weights, c);
      char buf[64];
      std::snprintf(buf, sizeof buf, " %d (%.6f)", c, fused);
      expect += buf;
    }
    EXPECT_EQ(got[i], expect);
  }
}

TEST_F(ToolsTest, PrintsPerTaskAucWithLabels) {
  std::string out, err;
  ASSERT_EQ(Run("dtrn-run", Base() + " --output '" + dir_.file("o.jsonl") + "'", &out, &err), 0) << err;
  auto session = Session::Create(model_);
  const size_t K = model_->tasks().size();
  std::vector<std::vector<float>> p(K), y(K);
  size_t total = 0;
  for (const Request& r : requests_) {
    Scores s;
    ASSERT_TRUE((*session)->Score(r, &s).ok());
    total += s.num_candidates;
    for (size_t c = 0; c < s.num_candidates; ++c)
      for (size_t k = 0; k < K; ++k) {
        p[k].push_back(s.prob(c, k));
        y[k].push_back(r.labels[c][k]);
      }
  }
  EXPECT_NE(out.find("AUC over " + std::to_string(total) + " candidates of 12 requests with labels:"),
            std::string::npos)
      << out;
  for (size_t k = 0; k < K; ++k) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "  %-12s %.6f", model_->tasks()[k].c_str(), metrics::Auc(p[k], y[k]));
    EXPECT_NE(out.find(buf), std::string::npos) << buf << "\n" << out;
  }
}

TEST_F(ToolsTest, BadLineStopsWithExit2AndNoOutput) {
  // Request 3 (file line 3): a float where candidate 1's category id belongs.
  std::string bad = lines_[2];
  size_t at = bad.find("\"category\":", bad.find("},{")) + 11;
  bad.replace(at, bad.find_first_of(",}", at) - at, "2.5");
  const std::string path = WriteWithLine(2, bad);
  const std::string output = dir_.file("out.jsonl");
  WriteFile(output, "previous contents\n");
  std::string out, err;
  EXPECT_EQ(
      Run("dtrn-run", "--model '" + model_path_ + "' --requests '" + path + "' --output '" + output + "'", &out, &err),
      2);
  EXPECT_NE(
      err.find(path + ": line 3 (id r2): candidates[1].category: expected an integer id in [-2^63, 2^63), got 2.5"),
      std::string::npos)
      << err;
  EXPECT_EQ(ReadFile(output), "previous contents\n");  // untouched: the output is only ever renamed into place
  for (const std::string& name : ListDir(dir_.path())) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;

  std::remove(output.c_str());
  EXPECT_EQ(
      Run("dtrn-run", "--model '" + model_path_ + "' --requests '" + path + "' --output '" + output + "'", &out, &err),
      2);
  EXPECT_FALSE(FileExists(output));
}

TEST_F(ToolsTest, RuntimeRejectionNamesLineAndField) {
  // item_id's table is un-hashed with vocab 40: id 40 is out of range, caught by the runtime.
  std::string bad = lines_[1];
  size_t at = bad.find("\"item_id\":", bad.find("\"candidates\"")) + 10;
  bad.replace(at, bad.find_first_of(",}", at) - at, "40");
  std::string out, err;
  const std::string path = WriteWithLine(1, bad);
  EXPECT_EQ(
      Run("dtrn-run", "--model '" + model_path_ + "' --requests '" + path + "' --output '" + dir_.file("x.jsonl") + "'",
          &out, &err),
      2);
  EXPECT_NE(err.find(path + ": line 2: "), std::string::npos) << err;
  EXPECT_NE(err.find("item_id"), std::string::npos) << err;
  EXPECT_FALSE(FileExists(dir_.file("x.jsonl")));
}

TEST_F(ToolsTest, KeepGoingSkipsWithAnErrorAndExit2) {
  const std::string path = WriteWithLine(4, R"({"id": "r4", "user": {}})");
  const std::string output = dir_.file("kg.jsonl");
  std::string out, err;
  EXPECT_EQ(
      Run("dtrn-run", "--model '" + model_path_ + "' --requests '" + path + "' --output '" + output + "' --keep-going",
          &out, &err),
      2);
  EXPECT_NE(err.find(path + ": line 5 (id r4): context: missing (skipped)"), std::string::npos) << err;
  EXPECT_NE(err.find("1 request failed and was skipped"), std::string::npos) << err;
  std::vector<std::string> got = Lines(ReadFile(output));
  ASSERT_EQ(got.size(), requests_.size() - 1);
  EXPECT_EQ(nlohmann::json::parse(got[4])["id"], "r5");
}

TEST_F(ToolsTest, ArgumentsAndMissingFiles) {
  std::string out, err;
  EXPECT_EQ(Run("dtrn-run", "--help", &out, &err), 0);
  EXPECT_NE(out.find("usage: dtrn-run --model MODEL.dtrn --requests REQUESTS.jsonl"), std::string::npos);
  EXPECT_EQ(Run("dtrn-run", "", &out, &err), 2);
  EXPECT_NE(err.find("--model and --requests are required"), std::string::npos) << err;
  EXPECT_EQ(Run("dtrn-run", Base() + " --threads 0", &out, &err), 2);
  EXPECT_NE(err.find("--threads: expected a positive integer, got '0'"), std::string::npos) << err;
  EXPECT_EQ(Run("dtrn-run", Base() + " --frobnicate", &out, &err), 2);
  EXPECT_NE(err.find("unknown option --frobnicate"), std::string::npos) << err;
  EXPECT_EQ(Run("dtrn-run", "--model '" + dir_.file("none.dtrn") + "' --requests '" + requests_path_ + "'", &out, &err),
            2);
  EXPECT_NE(err.find("cannot load model " + dir_.file("none.dtrn")), std::string::npos) << err;
  EXPECT_EQ(Run("dtrn-run", "--model '" + model_path_ + "' --requests '" + dir_.file("none.jsonl") + "'", &out, &err),
            2);
  EXPECT_NE(err.find("none.jsonl"), std::string::npos) << err;
}

TEST_F(ToolsTest, BenchRunsAndWritesJson) {
  if (!FileExists(ToolPath("dtrn-bench"))) GTEST_SKIP() << "dtrn-bench not built (DTRN_BUILD_BENCH=OFF)";
  std::string out, err;
  const std::string json_path = dir_.file("bench.json");
  ASSERT_EQ(Run("dtrn-bench", Base() + " --warmup 2 --runs 7 --candidates 17 --json '" + json_path + "'", &out, &err),
            0)
      << err;
  for (const char* what : {"init", "first request", "warm-up", "prepare", "score_candidates", "total", "VmHWM"})
    EXPECT_NE(out.find(what), std::string::npos) << what << "\n" << out;
  nlohmann::json j = nlohmann::json::parse(ReadFile(json_path));
  EXPECT_EQ(j["runs"], 7);
  EXPECT_EQ(j["total"]["count"], 7);
  EXPECT_DOUBLE_EQ(j["mean_candidates"].get<double>(), 17.0);
  for (const char* stage : {"prepare", "score_candidates", "total", "total_cpu"}) {
    const auto& s = j[stage];
    EXPECT_GT(s["avg_ms"].get<double>(), 0.0) << stage;
    EXPECT_LE(s["min_ms"].get<double>(), s["p50_ms"].get<double>());
    EXPECT_LE(s["p50_ms"].get<double>(), s["p90_ms"].get<double>());
    EXPECT_LE(s["p90_ms"].get<double>(), s["p99_ms"].get<double>());
    EXPECT_LE(s["p99_ms"].get<double>(), s["max_ms"].get<double>());
  }
  EXPECT_NEAR(j["total"]["avg_ms"].get<double>(),
              j["prepare"]["avg_ms"].get<double>() + j["score_candidates"]["avg_ms"].get<double>(), 1e-3);
  EXPECT_GT(j["peak_rss_kb"].get<long>(), 0);
  EXPECT_GE(j["peak_rss_kb"].get<long>(), j["rss_loaded_kb"].get<long>());
  EXPECT_EQ(Run("dtrn-bench", "--model '" + model_path_ + "'", &out, &err), 2);
}

TEST_F(ToolsTest, CExampleScoresAndRanks) {
  std::string out, err;
  ASSERT_EQ(Run("dtrn-c-example", "'" + model_path_ + "' '" + requests_path_ + "' 2", &out, &err), 0) << err;
  EXPECT_NE(out.find("scored 12 requests"), std::string::npos) << out;
  auto session = Session::Create(model_);
  Scores s;
  ASSERT_TRUE((*session)->Score(requests_[0], &s).ok());
  auto top = TopK(s, requests_[0].weights, 2);
  char expect[160];
  std::snprintf(expect, sizeof expect, "line 1: %zu candidates, top %zu:\n  #1 candidate %d: click=%.4f buy=%.4f\n",
                s.num_candidates, top->size(), top.value()[0], s.prob(top.value()[0], 0), s.prob(top.value()[0], 1));
  EXPECT_NE(out.find(expect), std::string::npos) << expect << "\n" << out;
  const std::string path = WriteWithLine(3, "{\"id\": 7}");
  EXPECT_EQ(Run("dtrn-c-example", "'" + model_path_ + "' '" + path + "'", &out, &err), 2);
  EXPECT_NE(err.find("line 4: request (id 7): user: missing"), std::string::npos) << err;
}

}  // namespace
}  // namespace dtrn
