// dtrn-run: score a JSON Lines file of requests with a .dtrn model, write the scores file.
// Requests run in parallel across oneTBB workers (one Session each); output keeps input order.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "dtrn/runtime.h"
#include "metrics.h"
#include "request_json.h"

namespace {

constexpr int kExitOk = 0, kExitFailure = 1, kExitBadInput = 2;

const char* kUsage =
    "usage: dtrn-run --model MODEL.dtrn --requests REQUESTS.jsonl [options]\n"
    "\n"
    "Scores every request (one JSON object per line, docs/request-format.md) and writes one\n"
    "scores line per request, in input order.\n"
    "\n"
    "  --model PATH         the .dtrn model\n"
    "  --requests PATH      JSON Lines requests; blank lines are ignored\n"
    "  --output PATH        scores file, written atomically (temporary file, then rename);\n"
    "                       without it the scores go to stdout (unless --top is given)\n"
    "  --threads T          requests scored in parallel, one session per thread (default 1)\n"
    "  --intra-threads N    threads inside one request (default 1)\n"
    "  --top K              print each request's K best candidates (fused score) to stdout\n"
    "  --keep-going         report a bad request on stderr and go on (exit status 2 at the end);\n"
    "                       by default the first bad request stops the run, with no output file\n"
    "  --quiet              no progress or summary on stderr\n"
    "  -h, --help           this text\n"
    "\n"
    "With labels in the requests, prints per-task AUC over all candidates at the end.\n"
    "Exit status: 0 ok, 2 bad input (arguments, model, request), 1 other failures.\n";

struct Options {
  std::string model, requests, output;
  int threads = 1, intra_threads = 1, top = 0;
  bool keep_going = false, quiet = false;
};

// Temporary output file removed on SIGINT/SIGTERM (a signal handler may only touch plain data).
char g_tmp_path[4096];

void OnSignal(int sig) {
  if (g_tmp_path[0]) ::unlink(g_tmp_path);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

bool ParseInt(const std::string& s, int lo, int* out) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end || errno || v < lo || v > 1 << 20) return false;
  *out = static_cast<int>(v);
  return true;
}

// Returns -1 to go on, else the exit status.
int ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    }
    if (arg == "--keep-going") { o->keep_going = true; continue; }
    if (arg == "--quiet") { o->quiet = true; continue; }
    size_t eq = arg.find('=');
    const bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    static const char* kValued[] = {"--model", "--requests", "--output", "--threads", "--intra-threads", "--top"};
    bool known = false;
    for (const char* k : kValued) known = known || arg == k;
    if (!known) {
      std::fprintf(stderr, "dtrn-run: unknown option %s\n%s", arg.c_str(), kUsage);
      return kExitBadInput;
    }
    if (!inline_value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "dtrn-run: %s needs a value\n%s", arg.c_str(), kUsage);
        return kExitBadInput;
      }
      value = argv[++i];
    }
    bool ok = true;
    if (arg == "--model") o->model = value;
    else if (arg == "--requests") o->requests = value;
    else if (arg == "--output") o->output = value;
    else if (arg == "--threads") ok = ParseInt(value, 1, &o->threads);
    else if (arg == "--intra-threads") ok = ParseInt(value, 1, &o->intra_threads);
    else if (arg == "--top") ok = ParseInt(value, 1, &o->top);
    if (!ok) {
      std::fprintf(stderr, "dtrn-run: %s: expected a positive integer, got '%s'\n", arg.c_str(), value.c_str());
      return kExitBadInput;
    }
  }
  if (o->model.empty() || o->requests.empty()) {
    std::fprintf(stderr, "dtrn-run: --model and --requests are required\n%s", kUsage);
    return kExitBadInput;
  }
  return -1;
}

// One request's way through a chunk.
struct Slot {
  std::string text;  // the request line
  size_t line_no = 0;
  dtrn::Status error;
  std::string id, scores_line, top_line;
  std::vector<std::vector<float>> labels;
  dtrn::Scores scores;
};

struct Worker {
  std::unique_ptr<dtrn::Session> session;
  dtrn::Status error;
  dtrn::Request request;  // reused
  std::vector<float> fused;
};

// The output: a temporary file renamed into place on success, or stdout.
class Output {
 public:
  dtrn::Status Open(const std::string& path) {
    path_ = path;
    if (path.empty()) {
      file_ = stdout;
      return dtrn::Status::Ok();
    }
    size_t slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
    std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    std::string tmpl = dir + "." + base + ".XXXXXX.tmp";
    if (tmpl.size() >= sizeof(g_tmp_path)) return dtrn::InvalidArgument("output path too long: " + path);
    std::memcpy(g_tmp_path, tmpl.c_str(), tmpl.size() + 1);
    int fd = ::mkstemps(g_tmp_path, 4);
    if (fd < 0) {
      g_tmp_path[0] = '\0';
      return dtrn::IoError("cannot create a file next to " + path + ": " + std::strerror(errno));
    }
    ::fchmod(fd, 0644 & ~CurrentUmask());
    file_ = ::fdopen(fd, "w");
    if (!file_) return dtrn::IoError(std::string("fdopen: ") + std::strerror(errno));
    std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
    return dtrn::Status::Ok();
  }
  bool Write(const std::string& s) { return std::fwrite(s.data(), 1, s.size(), file_) == s.size(); }
  dtrn::Status Commit() {
    if (file_ == stdout) return std::fflush(stdout) == 0 ? dtrn::Status::Ok() : dtrn::IoError("writing stdout failed");
    bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
    ok = (std::fclose(file_) == 0) && ok;
    file_ = nullptr;
    if (!ok) return dtrn::IoError("writing " + path_ + " failed: " + std::strerror(errno));
    if (std::rename(g_tmp_path, path_.c_str()) != 0)
      return dtrn::IoError("cannot rename the output into " + path_ + ": " + std::strerror(errno));
    g_tmp_path[0] = '\0';
    return dtrn::Status::Ok();
  }
  void Abandon() {
    if (file_ && file_ != stdout) std::fclose(file_);
    file_ = nullptr;
    if (g_tmp_path[0]) ::unlink(g_tmp_path);
    g_tmp_path[0] = '\0';
  }

 private:
  static mode_t CurrentUmask() {
    mode_t m = ::umask(0);
    ::umask(m);
    return m;
  }
  std::string path_;
  FILE* file_ = nullptr;
};

std::string FormatTop(const std::string& id, const dtrn::Scores& s, const std::vector<int>& order,
                      const std::vector<float>& weights, int top) {
  std::string out = id + ":";
  char buf[64];
  for (size_t r = 0; r < order.size() && r < static_cast<size_t>(top); ++r) {
    const int i = order[r];
    double fused = 0;
    for (size_t k = 0; k < s.num_tasks; ++k) fused += (weights.empty() ? 1.0f : weights[k]) * s.prob(i, k);
    std::snprintf(buf, sizeof buf, " %d (%.6f)", i, fused);
    out += buf;
  }
  return out + "\n";
}

// Parses, scores and formats one request; errors stay in the slot.
void Process(const dtrn::io::RequestSchema& schema, const Options& o, const std::shared_ptr<const dtrn::Model>& model,
             Worker& w, Slot& slot) {
  if (!w.session && w.error.ok()) {
    dtrn::SessionOptions so;
    so.threads = o.intra_threads;
    auto created = dtrn::Session::Create(model, so);
    if (created.ok()) w.session = std::move(created).value();
    else w.error = created.status();
  }
  if (!w.error.ok()) {
    slot.error = w.error;
    return;
  }
  auto parsed = dtrn::io::ParseRequestJson(schema, slot.text, slot.line_no);
  if (!parsed.ok()) {
    slot.error = parsed.status();
    return;
  }
  w.request = std::move(parsed).value();
  slot.id = w.request.id;
  dtrn::Status st = w.session->Score(w.request, &slot.scores);
  if (!st.ok()) {
    // The runtime's messages name the request id and the field.
    slot.error = dtrn::Status(st.code(), "line " + std::to_string(slot.line_no) + ": " + st.message());
    return;
  }
  auto order = dtrn::Rank(slot.scores, w.request.weights);
  if (!order.ok()) {
    slot.error = dtrn::Status(order.status().code(), "line " + std::to_string(slot.line_no) + " (id " + slot.id +
                                                         "): " + order.status().message());
    return;
  }
  dtrn::io::AppendScoresJson(slot.id, slot.scores, order.value(), &slot.scores_line);
  slot.scores_line.push_back('\n');
  if (o.top > 0) slot.top_line = FormatTop(slot.id, slot.scores, order.value(), w.request.weights, o.top);
  slot.labels = std::move(w.request.labels);
}

int Run(const Options& o) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto loaded = dtrn::Model::Load(o.model);
  if (!loaded.ok()) {
    std::fprintf(stderr, "dtrn-run: cannot load model %s: %s\n", o.model.c_str(), loaded.status().message().c_str());
    return kExitBadInput;
  }
  std::shared_ptr<const dtrn::Model> model = std::move(loaded).value();
  const dtrn::io::RequestSchema schema = dtrn::io::RequestSchema::FromModel(*model);
  const size_t num_tasks = schema.tasks.size();

  auto lines = dtrn::io::LineReader::Open(o.requests);
  if (!lines.ok()) {
    std::fprintf(stderr, "dtrn-run: %s\n", lines.status().message().c_str());
    return kExitBadInput;
  }
  const bool scores_to_stdout = o.output.empty() && o.top == 0;
  Output out;
  if (!o.output.empty() || scores_to_stdout) {
    dtrn::Status st = out.Open(o.output);
    if (!st.ok()) {
      std::fprintf(stderr, "dtrn-run: %s\n", st.message().c_str());
      return kExitFailure;
    }
  }
  const bool write_scores = !o.output.empty() || scores_to_stdout;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  tbb::task_arena arena(o.threads);
  tbb::enumerable_thread_specific<Worker> workers;
  const size_t chunk = std::max<size_t>(64, 32 * static_cast<size_t>(o.threads));
  std::vector<Slot> slots(chunk);
  std::vector<std::vector<float>> auc_scores(num_tasks), auc_labels(num_tasks);
  size_t done = 0, failed = 0, candidates = 0, labelled = 0;
  auto last_report = start;
  bool eof = false;

  auto fail = [&](const std::string& msg, int code) {
    out.Abandon();
    std::fprintf(stderr, "dtrn-run: %s\n", msg.c_str());
    return code;
  };

  while (!eof) {
    size_t n = 0;
    while (n < chunk) {
      Slot& s = slots[n];
      auto more = (*lines)->Next(&s.text, &s.line_no);
      if (!more.ok()) return fail(more.status().message(), kExitFailure);
      if (!more.value()) {
        eof = true;
        break;
      }
      s.error = dtrn::Status::Ok();
      s.scores_line.clear();
      s.top_line.clear();
      s.labels.clear();
      ++n;
    }
    arena.execute([&] {
      tbb::parallel_for(tbb::blocked_range<size_t>(0, n, 1), [&](const tbb::blocked_range<size_t>& r) {
        Worker& w = workers.local();
        for (size_t i = r.begin(); i != r.end(); ++i) Process(schema, o, model, w, slots[i]);
      });
    });
    for (size_t i = 0; i < n; ++i) {
      Slot& s = slots[i];
      if (!s.error.ok()) {
        std::string msg = o.requests + ": " + s.error.message();
        if (msg.find("line " + std::to_string(s.line_no)) == std::string::npos)
          msg = o.requests + ": line " + std::to_string(s.line_no) + ": " + s.error.message();
        if (!o.keep_going) return fail(msg, s.error.code() == dtrn::StatusCode::kInvalidArgument ||
                                                     s.error.code() == dtrn::StatusCode::kNotFound
                                                 ? kExitBadInput
                                                 : kExitFailure);
        std::fprintf(stderr, "dtrn-run: %s (skipped)\n", msg.c_str());
        ++failed;
        continue;
      }
      if (write_scores && !out.Write(s.scores_line)) return fail("writing the scores failed", kExitFailure);
      if (!s.top_line.empty()) std::fputs(s.top_line.c_str(), stdout);
      candidates += s.scores.num_candidates;
      if (!s.labels.empty()) {
        ++labelled;
        for (size_t c = 0; c < s.scores.num_candidates; ++c)
          for (size_t k = 0; k < num_tasks; ++k) {
            auc_scores[k].push_back(s.scores.prob(c, k));
            auc_labels[k].push_back(s.labels[c][k]);
          }
      }
      ++done;
    }
    const auto now = Clock::now();
    if (!o.quiet && now - last_report > std::chrono::seconds(5)) {
      const double secs = std::chrono::duration<double>(now - start).count();
      std::fprintf(stderr, "dtrn-run: %zu requests, %.0f requests/s\n", done, done / secs);
      last_report = now;
    }
  }
  if (write_scores) {
    dtrn::Status st = out.Commit();
    if (!st.ok()) return fail(st.message(), kExitFailure);
  }
  // AUC on stdout, unless stdout carries the scores.
  FILE* report = scores_to_stdout ? stderr : stdout;
  if (labelled > 0) {
    std::fprintf(report, "AUC over %zu candidates of %zu requests with labels:\n", auc_scores[0].size(), labelled);
    for (size_t k = 0; k < num_tasks; ++k) {
      const double auc = dtrn::io::Auc(auc_scores[k], auc_labels[k]);
      if (std::isnan(auc)) std::fprintf(report, "  %-12s undefined (one class only)\n", schema.tasks[k].c_str());
      else std::fprintf(report, "  %-12s %.6f\n", schema.tasks[k].c_str(), auc);
    }
  }
  if (!o.quiet) {
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    std::fprintf(stderr, "dtrn-run: scored %zu request%s (%zu candidates) in %.3f s, %d thread%s%s\n", done,
                 done == 1 ? "" : "s", candidates, secs, o.threads, o.threads == 1 ? "" : "s",
                 write_scores && !o.output.empty() ? (", wrote " + o.output).c_str() : "");
  }
  if (failed) {
    std::fprintf(stderr, "dtrn-run: %zu request%s failed and %s skipped\n", failed, failed == 1 ? "" : "s",
                 failed == 1 ? "was" : "were");
    return kExitBadInput;
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  int rc = ParseArgs(argc, argv, &o);
  if (rc >= 0) return rc;
  try {
    return Run(o);
  } catch (const std::exception& e) {  // bad_alloc and the like: still no half-written output
    if (g_tmp_path[0]) ::unlink(g_tmp_path);
    std::fprintf(stderr, "dtrn-run: %s\n", e.what());
    return kExitFailure;
  }
}
