// dtrn-run: score a JSON Lines file of requests with a .dtrn model, write the scores file.
// Requests run in parallel across oneTBB workers (one Session each); output keeps input order.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "dtrn/io/requests.h"
#include "dtrn/io/scores.h"
#include "dtrn/metrics.h"
#include "dtrn/runtime.h"
#include "dtrn/tools/atomic_file.h"
#include "dtrn/tools/cli.h"

namespace {

using dtrn::tools::kExitBadInput;
using dtrn::tools::kExitFailure;
using dtrn::tools::kExitOk;

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

// Returns -1 to go on, else the exit status.
int ParseArgs(int argc, char** argv, Options* o) {
  dtrn::tools::Flags flags("dtrn-run", kUsage);
  flags.Value("--model").Value("--requests").Value("--output").Value("--threads").Value("--intra-threads");
  flags.Value("--top").Switch("--keep-going").Switch("--quiet");
  if (int rc = flags.Parse(argc, argv); rc >= 0) return rc;
  o->model = flags.Get("--model");
  o->requests = flags.Get("--requests");
  o->output = flags.Get("--output");
  o->keep_going = flags.Has("--keep-going");
  o->quiet = flags.Has("--quiet");
  long threads = 1, intra = 1, top = 0;
  if (!flags.Int("--threads", 1, 1 << 20, 1, &threads) || !flags.Int("--intra-threads", 1, 1 << 20, 1, &intra) ||
      !flags.Int("--top", 1, 1 << 20, 0, &top))
    return kExitBadInput;
  o->threads = static_cast<int>(threads);
  o->intra_threads = static_cast<int>(intra);
  o->top = static_cast<int>(top);
  if (o->model.empty() || o->requests.empty()) return flags.UsageError("--model and --requests are required");
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

// The output: an AtomicFile renamed into place on success, or stdout.
class Output {
 public:
  dtrn::Status Open(const std::string& path) {
    if (path.empty()) return dtrn::Status::Ok();  // stdout
    auto f = dtrn::tools::AtomicFile::Create(path);
    if (!f.ok()) return f.status();
    file_ = std::move(f).value();
    return dtrn::Status::Ok();
  }
  bool Write(const std::string& s) {
    if (file_) return file_->Write(s).ok();
    return std::fwrite(s.data(), 1, s.size(), stdout) == s.size();
  }
  dtrn::Status Commit() {
    if (!file_) return std::fflush(stdout) == 0 ? dtrn::Status::Ok() : dtrn::IoError("writing stdout failed");
    return file_->Commit();
  }
  void Abandon() {
    if (file_) file_->Abandon();
  }

 private:
  std::unique_ptr<dtrn::tools::AtomicFile> file_;
};

std::string FormatTop(const std::string& id, const dtrn::Scores& s, const std::vector<int>& order,
                      const std::vector<float>& weights, int top) {
  std::string out = id + ":";
  char buf[64];
  for (size_t r = 0; r < order.size() && r < static_cast<size_t>(top); ++r) {
    const int i = order[r];
    std::snprintf(buf, sizeof buf, " %d (%.6f)", i, dtrn::FusedScore(s, weights, i));
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
    if (created.ok())
      w.session = std::move(created).value();
    else
      w.error = created.status();
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
        if (!o.keep_going)
          return fail(
              msg, s.error.code() == dtrn::StatusCode::kInvalidArgument || s.error.code() == dtrn::StatusCode::kNotFound
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
      const double auc = dtrn::metrics::Auc(auc_scores[k], auc_labels[k]);
      if (std::isnan(auc))
        std::fprintf(report, "  %-12s undefined (one class only)\n", schema.tasks[k].c_str());
      else
        std::fprintf(report, "  %-12s %.6f\n", schema.tasks[k].c_str(), auc);
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
  } catch (const std::exception& e) {  // bad_alloc and the like: the AtomicFile is abandoned
    std::fprintf(stderr, "dtrn-run: %s\n", e.what());
    return kExitFailure;
  }
}
