// dtrn-bench: per-request latency of a DTRN model, in the spirit of TFLite's benchmark_model.
// The model is a .dtrn file with its requests, or a spec workload (small, standard, large)
// built in memory with random weights and synthetic requests, so one command benchmarks
// any target without Python or files. For each candidate count it times model init, the
// first request, warm-up, then each stage (Prepare = the per-user part, ScoreCandidates =
// the candidates) over many runs, with the thread's CPU time per request (robust on a
// shared machine); counts the multiply-accumulates a request needs and divides them by
// this core's peak measured in the same process (bench/peak.h).
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
#include <sstream>
#include <string>
#include <vector>

#include "convert.h"
#include "cost.h"
#include "dense.h"
#include "dtrn/io/requests.h"
#include "dtrn/runtime.h"
#include "dtrn/tools/atomic_file.h"
#include "dtrn/tools/cli.h"
#include "dtrn_format.h"
#include "int8_kernels.h"
#include "model_impl.h"
#include "peak.h"
#include "synthetic.h"

namespace {

const char* kUsage =
    "usage: dtrn-bench --model MODEL.dtrn --requests REQUESTS.jsonl [options]\n"
    "       dtrn-bench --workload small|standard|large [options]\n"
    "\n"
    "Times whole requests (one user, N candidates), one at a time, after warm-up.\n"
    "\n"
    "  --model PATH         a .dtrn model (with --requests)\n"
    "  --requests PATH      its requests (JSON Lines); with --workload, optional\n"
    "  --workload NAME      build the spec workload NAME in memory: random weights scaled like\n"
    "                       trained ones, synthetic requests, converted like dtrn-convert does\n"
    "  --precision P        with --workload: int8 (default; every layer int8, embeddings int8,\n"
    "                       calibrated on 32 synthetic requests) or f32\n"
    "  --seed S             with --workload: weights and requests (default 1)\n"
    "  --candidates LIST    candidates per request, one or a comma-separated sweep\n"
    "                       (e.g. 10,50,100,300,1000); a file's requests are repeated or cut to N;\n"
    "                       default: the file's own, or the workload's N (small 50, standard 100,\n"
    "                       large 500)\n"
    "  --warmup N           warm-up requests before timing (default 20)\n"
    "  --runs N             timed requests per candidate count, cycling through the requests\n"
    "                       (default 200)\n"
    "  --threads T          intra-request threads of the session (default 1)\n"
    "  --kernels K          int8 kernel: auto, portable, avx2, avx512-vnni, neon-dotprod (default auto)\n"
    "  --no-peak            skip measuring this core's peak (no floor, no fraction of peak)\n"
    "  --json PATH          also write everything as JSON\n"
    "  -h, --help           this text\n"
    "\n"
    "Columns: wall-clock ms per stage (avg, p50, p90, p99, min, max), total_cpu = the thread's CPU\n"
    "time per request; MACs per request (user stage, candidate stage) as the runtime computes them,\n"
    "GMAC/s achieved at the CPU-time p50, the floor = int8 MACs / int8 peak + f32 MACs / f32 peak,\n"
    "and the floor as a fraction of the p50.\n";

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

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
    const size_t i = static_cast<size_t>(std::ceil(p / 100.0 * v.size()));
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

std::string Quoted(const std::string& s) {
  std::string out = "\"";
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
  return out + "\"";
}

// Repeats (or cuts) a request's candidates to exactly n; labels no longer apply.
void SetCandidates(dtrn::Request* r, size_t n) {
  const size_t have = r->candidates.size();
  r->candidates.resize(n);
  for (size_t i = have; i < n; ++i) r->candidates[i] = r->candidates[i % have];
  r->labels.clear();
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "dtrn-bench: %s\n", msg.c_str());
  return dtrn::tools::kExitBadInput;
}

// The results for one candidate count.
struct Point {
  size_t n = 0;
  double mean_candidates = 0, first_ms = 0, requests_per_s = 0;
  Stats prepare, score, total, cpu;
  dtrn::RequestCost macs;  // mean per request
  double floor_ms = 0;     // at the measured peaks
};

}  // namespace

int main(int argc, char** argv) {
  dtrn::tools::Flags flags("dtrn-bench", kUsage);
  for (const char* v : {"--model", "--requests", "--workload", "--precision", "--seed", "--candidates", "--warmup",
                        "--runs", "--threads", "--kernels", "--json"})
    flags.Value(v);
  flags.Switch("--no-peak");
  if (int rc = flags.Parse(argc, argv); rc >= 0) return rc;
  long warmup = 20, runs = 200, threads = 1, seed = 1;
  std::vector<long> sweep;
  std::string precision, kernels_name;
  if (!flags.Int("--warmup", 0, 1L << 30, 20, &warmup) || !flags.Int("--runs", 1, 1L << 30, 200, &runs) ||
      !flags.Int("--threads", 1, 1024, 1, &threads) || !flags.Int("--seed", 0, 1L << 62, 1, &seed) ||
      !flags.IntList("--candidates", 1, 1 << 20, {}, &sweep) ||
      !flags.Choice("--precision", {"int8", "f32"}, "int8", &precision) ||
      !flags.Choice("--kernels", {"auto", "portable", "avx2", "avx512-vnni", "neon-dotprod"}, "auto", &kernels_name))
    return dtrn::tools::kExitBadInput;
  const std::string model_path = flags.Get("--model"), requests_path = flags.Get("--requests"),
                    workload = flags.Get("--workload"), json_path = flags.Get("--json");
  if (workload.empty() == model_path.empty())
    return flags.UsageError("give either --model (with --requests) or --workload");
  if (!model_path.empty() && requests_path.empty()) return flags.UsageError("--model needs --requests");
  if (workload.empty() && (flags.Has("--precision") || flags.Has("--seed")))
    return flags.UsageError("--precision and --seed apply to --workload only");
  dtrn::DenseKernels kernels = dtrn::DenseKernels::kAuto;
  dtrn::ParseDenseKernels(kernels_name, &kernels);

  const long rss_start = ProcStatusKb("VmRSS");
  std::string source;
  double build_s = 0;
  std::shared_ptr<const dtrn::Model> model;
  std::vector<uint8_t> built;  // a workload's .dtrn bytes
  const auto t0 = Clock::now();
  if (!workload.empty()) {
    auto config = dtrn::convert::WorkloadConfig(workload);
    if (!config.ok()) return Fail(config.status().message());
    auto ck = dtrn::convert::SyntheticCheckpoint(config.value(), static_cast<uint64_t>(seed));
    if (!ck.ok()) return Fail(ck.status().message());
    dtrn::convert::ConvertOptions o;
    o.verbose = false;
    o.int8 = precision == "int8";
    o.policy = dtrn::convert::Int8Policy::kAll;
    o.checkpoint = "workload " + workload;
    dtrn::convert::RequestSource calibration;
    if (o.int8)
      calibration = [&](const dtrn::Model& f32) {
        return dtrn::Result<std::vector<dtrn::Request>>(
            dtrn::convert::SyntheticRequests(f32, 32, 20, static_cast<uint64_t>(seed) + 1000));
      };
    std::ostringstream log;
    auto converted = dtrn::convert::ConvertBytes(std::move(ck).value(), o, calibration, nullptr, log);
    if (!converted.ok()) return Fail("building workload " + workload + ": " + converted.status().message());
    built = std::move(converted.value().model);
    build_s = std::chrono::duration<double>(Clock::now() - t0).count();
    source = "workload " + workload + " (" + precision + ", seed " + std::to_string(seed) + ", built in memory)";
  }
  const auto t1 = Clock::now();
  auto loaded = built.empty() ? dtrn::Model::Load(model_path) : dtrn::Model::FromBuffer(built.data(), built.size());
  if (!loaded.ok())
    return Fail("cannot load " + (built.empty() ? model_path : source) + ": " + loaded.status().message());
  model = loaded.value();
  const auto t2 = Clock::now();
  dtrn::SessionOptions so;
  so.threads = static_cast<int>(threads);
  so.kernels = kernels;
  auto session = dtrn::Session::Create(model, so);
  if (!session.ok()) return Fail("cannot create a session: " + session.status().message());
  const auto t3 = Clock::now();
  const long rss_loaded = ProcStatusKb("VmRSS");
  dtrn::Session& s = **session;
  if (source.empty()) source = model_path;

  std::vector<dtrn::Request> base;
  if (!requests_path.empty()) {
    auto requests = dtrn::io::ReadRequestsFile(*model, requests_path);
    if (!requests.ok()) return Fail(requests.status().message());
    base = std::move(requests).value();
    if (base.empty()) return Fail(requests_path + " holds no request");
  }
  if (sweep.empty()) {
    if (!workload.empty() && base.empty())
      sweep = {workload == "small" ? 50 : workload == "standard" ? 100 : 500};
    else
      sweep = {0};  // the file's own counts
  }
  const dtrn::ModelView& view = dtrn::ViewOf(*model);
  const dtrn::int8::Isa isa = dtrn::ChooseIsa(kernels).value();

  const dtrn::Model& m = *model;
  std::printf("dtrn-bench (dtrn-edge %s)\n", dtrn::Version());
  std::printf("  model            %s (%s, %.2f MB, %s)\n", source.c_str(), m.name().c_str(), m.file_size() / 1e6,
              m.has_int8_layers() ? "int8 layers" : "f32");
  std::printf("  threads          %ld (intra-request)\n", threads);
  std::printf("  int8 kernel      %s\n", dtrn::int8::IsaName(isa));
  if (!workload.empty()) std::printf("  built            %.2f s (checkpoint, conversion)\n", build_s);
  std::printf("  init             %.3f ms (load + verify %.3f ms, session create %.3f ms)\n", Ms(t3 - t1), Ms(t2 - t1),
              Ms(t3 - t2));

  dtrn::bench::Peak peak;
  if (!flags.Has("--no-peak")) {
    peak = dtrn::bench::MeasurePeak(dtrn::int8::IsaName(isa));
    std::printf("  peak (one core)  int8 %.1f GMAC/s [%s], f32 %.1f GMAC/s [%s]\n", peak.int8_gmacs,
                peak.int8_name.c_str(), peak.f32_gmacs, peak.f32_name.c_str());
  }

  std::vector<Point> points;
  dtrn::Scores scores;
  for (long want : sweep) {
    Point pt;
    std::vector<dtrn::Request> requests = base;
    if (requests.empty()) requests = dtrn::convert::SyntheticRequests(m, 64, static_cast<size_t>(want), seed + 7);
    if (want > 0)
      for (dtrn::Request& r : requests) SetCandidates(&r, static_cast<size_t>(want));
    pt.n = static_cast<size_t>(want);
    for (const dtrn::Request& r : requests) {
      pt.mean_candidates += r.candidates.size();
      std::vector<size_t> lens;
      for (const auto& seq : r.behaviors) lens.push_back(std::min<size_t>(seq.size(), m.seq_len()));
      const dtrn::RequestCost c = dtrn::CountMacs(view, lens, r.candidates.size());
      pt.macs.user.int8 += c.user.int8, pt.macs.user.f32 += c.user.f32;
      pt.macs.candidates.int8 += c.candidates.int8, pt.macs.candidates.f32 += c.candidates.f32;
    }
    const double nr = static_cast<double>(requests.size());
    pt.mean_candidates /= nr;
    pt.macs.user.int8 /= nr, pt.macs.user.f32 /= nr, pt.macs.candidates.int8 /= nr, pt.macs.candidates.f32 /= nr;

    size_t next = 0;
    double cpu_ms = 0;
    auto run_one = [&](double* prepare_ms, double* score_ms) {
      const dtrn::Request& r = requests[next++ % requests.size()];
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
    if (!run_one(&p, &q)) return dtrn::tools::kExitBadInput;
    pt.first_ms = p + q;
    for (long i = 0; i < warmup; ++i)
      if (!run_one(&p, &q)) return dtrn::tools::kExitBadInput;
    std::vector<double> prep(runs), cand(runs), total(runs), cpu(runs);
    next = 0;
    const auto r0 = Clock::now();
    for (long i = 0; i < runs; ++i) {
      if (!run_one(&prep[i], &cand[i])) return dtrn::tools::kExitBadInput;
      total[i] = prep[i] + cand[i];
      cpu[i] = cpu_ms;
    }
    pt.requests_per_s = runs / std::chrono::duration<double>(Clock::now() - r0).count();
    pt.prepare = Summarize(prep), pt.score = Summarize(cand), pt.total = Summarize(total), pt.cpu = Summarize(cpu);
    const double i8 = pt.macs.user.int8 + pt.macs.candidates.int8, f32 = pt.macs.user.f32 + pt.macs.candidates.f32;
    if (peak.int8_gmacs > 0 && peak.f32_gmacs > 0) pt.floor_ms = (i8 / peak.int8_gmacs + f32 / peak.f32_gmacs) * 1e-6;

    std::printf("N = %.0f candidates (%zu requests), %ld runs:\n", pt.mean_candidates, requests.size(), runs);
    std::printf("  first request    %.4f ms\n", pt.first_ms);
    std::printf("  warm-up          %ld requests\n", warmup);
    PrintStats("prepare", pt.prepare);
    PrintStats("score_candidates", pt.score);
    PrintStats("total", pt.total);
    PrintStats("total_cpu", pt.cpu);
    std::printf("  per candidate    %.3f us (score_candidates p50 / N)\n", pt.score.p50 * 1e3 / pt.mean_candidates);
    std::printf("  MACs / request   %.2f M (user stage %.2f M, candidate stage %.2f M; int8 %.2f M, f32 %.2f M)\n",
                (i8 + f32) * 1e-6, pt.macs.user.total() * 1e-6, pt.macs.candidates.total() * 1e-6, i8 * 1e-6,
                f32 * 1e-6);
    std::printf("  achieved         %.1f GMAC/s at the CPU-time p50\n", (i8 + f32) / pt.cpu.p50 * 1e-6);
    if (pt.floor_ms > 0)
      std::printf("  floor            %.4f ms at the peaks above: p50 is %.2fx the floor (%.0f%% of peak)\n",
                  pt.floor_ms, pt.cpu.p50 / pt.floor_ms, 100.0 * pt.floor_ms / pt.cpu.p50);
    std::printf("  throughput       %.1f requests/s, %.0f candidates/s\n", pt.requests_per_s,
                pt.requests_per_s * pt.mean_candidates);
    points.push_back(pt);
  }
  const long hwm = ProcStatusKb("VmHWM"), rss_end = ProcStatusKb("VmRSS");
  std::printf("memory:\n  rss at start %.2f MB, after load %.2f MB, at end %.2f MB, peak (VmHWM) %.2f MB\n",
              rss_start / 1024.0, rss_loaded / 1024.0, rss_end / 1024.0, hwm / 1024.0);
  if (!flags.Has("--no-peak")) {
    peak.read_gbs = dtrn::bench::MeasureReadBandwidth();
    std::printf("  read bandwidth   %.1f GB/s (one core, 64 MiB buffer; measured after the memory reading)\n",
                peak.read_gbs);
  }

  if (!json_path.empty()) {
    auto macs_json = [](const dtrn::RequestCost& c) {
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "{\"user_int8\": %.0f, \"user_f32\": %.0f, \"candidates_int8\": %.0f, \"candidates_f32\": %.0f, "
                    "\"total\": %.0f}",
                    c.user.int8, c.user.f32, c.candidates.int8, c.candidates.f32,
                    c.user.total() + c.candidates.total());
      return std::string(buf);
    };
    auto point_json = [&](const Point& pt, const std::string& indent) {
      char buf[512];
      const double macs = pt.macs.user.total() + pt.macs.candidates.total();
      std::snprintf(buf, sizeof buf,
                    "%s\"candidates\": %zu, \"mean_candidates\": %.3f, \"first_ms\": %.6f, \"requests_per_s\": %.3f,\n"
                    "%s\"per_candidate_us\": %.6f, \"gmacs\": %.6f, \"floor_ms\": %.6f, \"fraction_of_peak\": %.6f,\n",
                    indent.c_str(), pt.n ? pt.n : static_cast<size_t>(pt.mean_candidates), pt.mean_candidates,
                    pt.first_ms, pt.requests_per_s, indent.c_str(), pt.score.p50 * 1e3 / pt.mean_candidates,
                    macs / pt.cpu.p50 * 1e-6, pt.floor_ms, pt.floor_ms > 0 ? pt.floor_ms / pt.cpu.p50 : 0.0);
      std::string j = buf;
      j += indent + "\"macs\": " + macs_json(pt.macs) + ",\n";
      j += indent + "\"prepare\": " + StatsJson(pt.prepare) + ",\n";
      j += indent + "\"score_candidates\": " + StatsJson(pt.score) + ",\n";
      j += indent + "\"total\": " + StatsJson(pt.total) + ",\n";
      j += indent + "\"total_cpu\": " + StatsJson(pt.cpu);
      return j;
    };
    std::string j = "{\n  \"model\": " + Quoted(m.name()) + ", \"source\": " + Quoted(source) + ",\n";
    char buf[640];
    std::snprintf(buf, sizeof buf,
                  "  \"version\": \"%s\", \"model_bytes\": %zu, \"int8\": %s, \"threads\": %ld, \"kernel\": \"%s\",\n"
                  "  \"runs\": %ld, \"warmup\": %ld, \"build_s\": %.6f,\n"
                  "  \"init_ms\": %.6f, \"load_ms\": %.6f, \"session_create_ms\": %.6f,\n",
                  dtrn::Version(), m.file_size(), m.has_int8_layers() ? "true" : "false", threads,
                  dtrn::int8::IsaName(isa), runs, warmup, build_s, Ms(t3 - t1), Ms(t2 - t1), Ms(t3 - t2));
    j += buf;
    j += "  \"peak\": {\"int8_gmacs\": " + std::to_string(peak.int8_gmacs) + ", \"int8\": " + Quoted(peak.int8_name) +
         ", \"f32_gmacs\": " + std::to_string(peak.f32_gmacs) + ", \"f32\": " + Quoted(peak.f32_name) +
         ", \"read_gbs\": " + std::to_string(peak.read_gbs) + ", \"variants\": [";
    for (size_t i = 0; i < peak.int8.size() + peak.f32.size(); ++i) {
      const dtrn::bench::PeakRate& r = i < peak.int8.size() ? peak.int8[i] : peak.f32[i - peak.int8.size()];
      j += (i ? ", " : "") + std::string("{\"name\": ") + Quoted(r.name) + ", \"gmacs\": " + std::to_string(r.gmacs) +
           "}";
    }
    j += "]},\n";
    j += point_json(points.front(), "  ") + ",\n";  // the first (or only) candidate count at the top
    j += "  \"sweep\": [\n";
    for (size_t i = 0; i < points.size(); ++i)
      j += "    {\n" + point_json(points[i], "      ") + "\n    }" + (i + 1 < points.size() ? ",\n" : "\n");
    std::snprintf(
        buf, sizeof buf,
        "  ],\n  \"rss_start_kb\": %ld, \"rss_loaded_kb\": %ld, \"rss_end_kb\": %ld, \"peak_rss_kb\": %ld\n}\n",
        rss_start, rss_loaded, rss_end, hwm);
    j += buf;
    auto file = dtrn::tools::AtomicFile::Create(json_path);
    dtrn::Status st = file.ok() ? file.value()->Write(j) : file.status();
    if (st.ok()) st = file.value()->Commit();
    if (!st.ok()) return Fail("cannot write " + json_path + ": " + st.message());
  }
  return 0;
}
