// dtrn-bench: per-request latency of a .dtrn model, in the spirit of TFLite's benchmark_model.
// Times model init, the first request, warm-up, then each stage (Prepare = per-user part,
// ScoreCandidates = batched candidates) over many runs cycling through the requests, and
// reports peak memory. Single intra-request thread by default (the on-device norm).
// Wall-clock stages, plus the thread's CPU time per request (robust on a shared machine).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "dtrn/io/requests.h"
#include "dtrn/runtime.h"

namespace {

const char* kUsage =
    "usage: dtrn-bench --model MODEL.dtrn --requests REQUESTS.jsonl [options]\n"
    "\n"
    "  --warmup N        warm-up requests before timing (default 20)\n"
    "  --runs N          timed requests, cycling through the file (default 200)\n"
    "  --threads T       intra-request threads of the session (default 1)\n"
    "  --candidates N    give every request exactly N candidates (repeating its own)\n"
    "  --kernels K       auto (VNNI int8 kernels where the CPU has them) or xnnpack (default auto)\n"
    "  --json PATH       also write the results as JSON\n"
    "  -h, --help        this text\n";

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// CPU time of the calling thread in ms: unlike wall time, not inflated when other processes
// share the core (exact for --threads 1; with more, the pool's threads are not counted).
double ThreadCpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

// A field of /proc/self/status in kB (VmRSS, VmHWM); -1 where unavailable.
long ProcStatusKb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') return std::atol(line.c_str() + n + 1);
  return -1;
}

struct Stats {
  double avg = 0, std = 0, min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
  size_t count = 0;
};

Stats Summarize(std::vector<double> v) {
  Stats s;
  s.count = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {  // nearest rank
    size_t i = static_cast<size_t>(std::ceil(p / 100.0 * v.size()));
    return v[std::min(v.size() - 1, i ? i - 1 : 0)];
  };
  s.avg = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  double var = 0;
  for (double x : v) var += (x - s.avg) * (x - s.avg);
  s.std = std::sqrt(var / v.size());
  s.min = v.front();
  s.max = v.back();
  s.p50 = pct(50);
  s.p90 = pct(90);
  s.p99 = pct(99);
  return s;
}

void PrintStats(const char* name, const Stats& s) {
  std::printf("  %-16s avg %9.4f  p50 %9.4f  p90 %9.4f  p99 %9.4f  min %9.4f  max %9.4f  std %8.4f ms\n", name, s.avg,
              s.p50, s.p90, s.p99, s.min, s.max, s.std);
}

std::string StatsJson(const Stats& s) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "{\"count\": %zu, \"avg_ms\": %.6f, \"std_ms\": %.6f, \"min_ms\": %.6f, \"p50_ms\": %.6f, "
                "\"p90_ms\": %.6f, \"p99_ms\": %.6f, \"max_ms\": %.6f}",
                s.count, s.avg, s.std, s.min, s.p50, s.p90, s.p99, s.max);
  return buf;
}

bool ParseCount(const char* s, long lo, long* out) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (!*s || *end || v < lo) return false;
  *out = v;
  return true;
}

// Repeats (or cuts) a request's candidates to exactly n; labels no longer apply.
void SetCandidates(dtrn::Request* r, size_t n) {
  const size_t have = r->candidates.size();
  r->candidates.resize(n);
  for (size_t i = have; i < n; ++i) r->candidates[i] = r->candidates[i % have];
  r->labels.clear();
}

// s as the inside of a JSON string literal (model names come from the file).
std::string JsonEscape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "dtrn-bench: %s\n", msg.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, requests_path, json_path, kernels = "auto";
  long warmup = 20, runs = 200, threads = 1, candidates = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (i + 1 >= argc) return Fail(a + " needs a value\n" + kUsage);
    const char* v = argv[++i];
    bool ok = true;
    if (a == "--model")
      model_path = v;
    else if (a == "--requests")
      requests_path = v;
    else if (a == "--json")
      json_path = v;
    else if (a == "--warmup")
      ok = ParseCount(v, 0, &warmup);
    else if (a == "--runs")
      ok = ParseCount(v, 1, &runs);
    else if (a == "--threads")
      ok = ParseCount(v, 1, &threads);
    else if (a == "--candidates")
      ok = ParseCount(v, 1, &candidates);
    else if (a == "--kernels") {
      kernels = v;
      dtrn::DenseKernels k;
      ok = dtrn::ParseDenseKernels(kernels, &k);
    } else
      return Fail("unknown option " + a + "\n" + kUsage);
    if (!ok) return Fail(a + ": bad value '" + v + "'");
  }
  if (model_path.empty() || requests_path.empty())
    return Fail(std::string("--model and --requests are required\n") + kUsage);

  const long rss_start = ProcStatusKb("VmRSS");
  const auto t0 = Clock::now();
  auto model = dtrn::Model::Load(model_path);
  if (!model.ok()) return Fail("cannot load " + model_path + ": " + model.status().message());
  const auto t1 = Clock::now();
  dtrn::SessionOptions so;
  so.threads = static_cast<int>(threads);
  dtrn::ParseDenseKernels(kernels, &so.kernels);
  auto session = dtrn::Session::Create(*model, so);
  if (!session.ok()) return Fail("cannot create a session: " + session.status().message());
  const auto t2 = Clock::now();
  const long rss_loaded = ProcStatusKb("VmRSS");
  dtrn::Session& s = **session;

  auto requests = dtrn::io::ReadRequestsFile(**model, requests_path);
  if (!requests.ok()) return Fail(requests.status().message());
  if (requests->empty()) return Fail(requests_path + " holds no request");
  if (candidates > 0)
    for (dtrn::Request& r : *requests) SetCandidates(&r, static_cast<size_t>(candidates));
  double mean_n = 0;
  for (const dtrn::Request& r : *requests) mean_n += r.candidates.size();
  mean_n /= requests->size();

  const dtrn::Model& m = **model;
  std::printf("dtrn-bench\n");
  std::printf("  model            %s (%s, %.2f MB, %s)\n", model_path.c_str(), m.name().c_str(), m.file_size() / 1e6,
              m.has_int8_layers() ? "int8 layers" : "f32");
  std::printf("  requests         %zu from %s, %.1f candidates each on average\n", requests->size(),
              requests_path.c_str(), mean_n);
  std::printf("  threads          %ld (intra-request)\n", threads);
  std::printf("  kernels          %s\n", kernels.c_str());
  std::printf("  init             %.3f ms (load + verify %.3f ms, session create %.3f ms)\n", Ms(t2 - t0), Ms(t1 - t0),
              Ms(t2 - t1));

  dtrn::Scores scores;
  size_t next = 0;
  // One timed request: returns false (after printing) on a scoring error.
  double cpu_ms = 0;  // of the last run_one
  auto run_one = [&](double* prepare_ms, double* score_ms) {
    const dtrn::Request& r = (*requests)[next++ % requests->size()];
    const double cpu0 = ThreadCpuMs();
    const auto a = Clock::now();
    dtrn::Status st = s.Prepare(r);
    const auto b = Clock::now();
    if (st.ok()) st = s.ScoreCandidates(r, &scores);
    const auto c = Clock::now();
    cpu_ms = ThreadCpuMs() - cpu0;
    if (!st.ok()) {
      std::fprintf(stderr, "dtrn-bench: request %s: %s\n", r.id.c_str(), st.message().c_str());
      return false;
    }
    *prepare_ms = Ms(b - a);
    *score_ms = Ms(c - b);
    return true;
  };

  double p, q;
  if (!run_one(&p, &q)) return 2;
  const double first_ms = p + q;
  std::printf("  first request    %.4f ms (prepare %.4f, candidates %.4f)\n", first_ms, p, q);
  double warm_total = 0;
  for (long i = 0; i < warmup; ++i) {
    if (!run_one(&p, &q)) return 2;
    warm_total += p + q;
  }
  if (warmup > 0) std::printf("  warm-up          %ld requests, avg %.4f ms\n", warmup, warm_total / warmup);

  std::vector<double> prep(runs), cand(runs), total(runs), cpu(runs);
  next = 0;
  const auto r0 = Clock::now();
  for (long i = 0; i < runs; ++i) {
    if (!run_one(&prep[i], &cand[i])) return 2;
    total[i] = prep[i] + cand[i];
    cpu[i] = cpu_ms;
  }
  const double wall_s = std::chrono::duration<double>(Clock::now() - r0).count();
  const Stats sp = Summarize(prep), sc = Summarize(cand), st = Summarize(total), su = Summarize(cpu);
  std::printf("per request over %ld runs:\n", runs);
  PrintStats("prepare", sp);
  PrintStats("score_candidates", sc);
  PrintStats("total", st);
  PrintStats("total_cpu", su);
  std::printf("  throughput       %.1f requests/s, %.0f candidates/s\n", runs / wall_s, runs * mean_n / wall_s);
  const long hwm = ProcStatusKb("VmHWM"), rss_end = ProcStatusKb("VmRSS");
  std::printf("memory:\n  rss at start %.2f MB, after load %.2f MB, at end %.2f MB, peak (VmHWM) %.2f MB\n",
              rss_start / 1024.0, rss_loaded / 1024.0, rss_end / 1024.0, hwm / 1024.0);

  if (!json_path.empty()) {
    std::string j = "{\n  \"model\": \"" + JsonEscape(m.name()) + "\",\n";
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "  \"model_bytes\": %zu, \"int8\": %s, \"threads\": %ld, \"requests\": %zu,\n"
                  "  \"mean_candidates\": %.3f, \"runs\": %ld, \"warmup\": %ld,\n"
                  "  \"init_ms\": %.6f, \"load_ms\": %.6f, \"session_create_ms\": %.6f, \"first_ms\": %.6f,\n",
                  m.file_size(), m.has_int8_layers() ? "true" : "false", threads, requests->size(), mean_n, runs,
                  warmup, Ms(t2 - t0), Ms(t1 - t0), Ms(t2 - t1), first_ms);
    j += buf;
    j += "  \"prepare\": " + StatsJson(sp) + ",\n";
    j += "  \"score_candidates\": " + StatsJson(sc) + ",\n";
    j += "  \"total\": " + StatsJson(st) + ",\n";
    j += "  \"total_cpu\": " + StatsJson(su) + ",\n";
    std::snprintf(buf, sizeof buf,
                  "  \"requests_per_s\": %.3f, \"rss_start_kb\": %ld, \"rss_loaded_kb\": %ld, \"rss_end_kb\": %ld, "
                  "\"peak_rss_kb\": %ld\n}\n",
                  runs / wall_s, rss_start, rss_loaded, rss_end, hwm);
    j += buf;
    std::ofstream f(json_path);
    f << j;
    if (!f) return Fail("cannot write " + json_path);
  }
  return 0;
}
