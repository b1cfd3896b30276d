// Integrity of the whole .dtrn file and of what the tools write (issue 8, defects 1-3):
//   - the bit-flip sweep of the small example's int8 model: every byte, masks 0x01 and 0x80.
//     With the checksum (the default) every flip is refused with a named error or scores
//     bit-identically: none scores differently. Without it (LoadOptions::verify_checksum =
//     false, the fast path) the semantic checks alone are measured and printed;
//   - the acceptance check's idea (../shared/checks/hardening): flips through dtrn-run exit 2
//     or print the same scores, never crash;
//   - dtrn-convert --output naming its --checkpoint (same path, a symlink, a hard link) exits
//     2 and leaves the checkpoint untouched;
//   - a SIGKILLed dtrn-convert leaves no temporary once the next run is done, and the old
//     output intact, both with O_TMPFILE and with the named fallback (DTRN_ATOMIC_FILE_NAMED).
// Skips what needs dtrn-convert / dtrn-run when they are not built.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint_check.h"
#include "config.h"
#include "dtrn/dtrn_generated.h"
#include "dtrn/io/requests.h"
#include "dtrn/runtime.h"
#include "dtrn/tools/atomic_file.h"
#include "dtrn_format.h"
#include "safetensors_write.h"
#include "test_util.h"

extern char** environ;

namespace dtrn {
namespace {

namespace t = dtrn::testing;

std::string Q(const std::string& s) { return "'" + s + "'"; }
bool Built(const char* tool) { return t::FileExists(t::ToolPath(tool)); }

std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// ------------------------------------------------------------------ the bit-flip sweep

// The small example converted to int8 (int8 layers and embeddings, calibrated on its
// requests) once for the suite, with its first requests and their scores.
class BitFlip : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!Built("dtrn-convert")) return;
    dir_ = new t::TempDir();
    const std::string ex = t::SourceDir() + "/examples/small";
    path_ = dir_->file("small-int8.dtrn");
    std::string log;
    const int rc = t::RunCommand(Q(t::ToolPath("dtrn-convert")) + " --checkpoint " + Q(ex + "/model.safetensors") +
                                     " --output " + Q(path_) + " --precision int8 --embeddings int8 --calibration " +
                                     Q(ex + "/requests.jsonl") + " --quiet",
                                 &log);
    if (rc != 0) {
      error_ = "dtrn-convert failed (" + std::to_string(rc) + "): " + log;
      return;
    }
    bytes_ = t::ReadFile(path_);
    auto model = Model::FromBuffer(bytes_.data(), bytes_.size());
    if (!model.ok()) {
      error_ = model.status().ToString();
      return;
    }
    auto reqs = io::ReadRequestsFile(*model.value(), ex + "/requests.jsonl");
    if (!reqs.ok()) {
      error_ = reqs.status().ToString();
      return;
    }
    requests_.assign(reqs->begin(), reqs->begin() + 4);
    auto good = ScoreAll(model.value());
    if (!good.ok()) {
      error_ = good.status().ToString();
      return;
    }
    good_ = std::move(good).value();
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!Built("dtrn-convert")) GTEST_SKIP() << "dtrn-convert not built";
    ASSERT_TRUE(error_.empty()) << error_;
  }

  // The scores (probabilities, logits, order) of every request, as bytes to compare exactly.
  static Result<std::vector<std::string>> ScoreAll(std::shared_ptr<const Model> model) {
    DTRN_ASSIGN_OR_RETURN(auto session, Session::Create(model));
    std::vector<std::string> out;
    Scores s;
    for (const Request& r : requests_) {
      DTRN_RETURN_IF_ERROR(session->Score(r, &s));
      DTRN_ASSIGN_OR_RETURN(auto order, Rank(s, r.weights));
      std::string b(reinterpret_cast<const char*>(s.probabilities.data()), s.probabilities.size() * sizeof(float));
      b.append(reinterpret_cast<const char*>(s.logits.data()), s.logits.size() * sizeof(float));
      b.append(reinterpret_cast<const char*>(order.data()), order.size() * sizeof(int));
      out.push_back(std::move(b));
    }
    return out;
  }

  struct Counts {
    size_t refused = 0, identical = 0, different = 0;
    std::map<std::string, size_t> codes;  // refusals by status code
    std::map<std::string, size_t> different_by_region;
    std::vector<std::string> examples;  // a few flips that scored differently
  };

  static std::string Region(const format::Header& h, size_t off) {
    if (off < format::kHeaderSize) return "header";
    if (off < h.flatbuffer_offset + h.flatbuffer_size) return "flatbuffer";
    if (off < h.segment_offset) return "padding";
    return "segment";
  }

  // Flips bit `mask` at every offset (in a copy, restored), loads with `options` and, when the
  // load succeeds, scores the requests. Split over a few threads; DTRN_SWEEP_LOG=FILE appends
  // every flip that loads and scores differently, or fails at scoring, as "offset mask region".
  static Counts Sweep(const std::vector<size_t>& offsets, const std::vector<uint8_t>& masks, LoadOptions options) {
    const format::Header h =
        format::Header::Parse(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size()).value();
    const size_t n_threads = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
    std::vector<Counts> part(n_threads);
    std::vector<std::string> logs(n_threads);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < n_threads; ++t)
      threads.emplace_back([&, t] {
        Counts& c = part[t];
        std::string buf = bytes_;
        for (size_t i = t; i < offsets.size(); i += n_threads)
          for (uint8_t mask : masks) {
            const size_t off = offsets[i];
            buf[off] = static_cast<char>(buf[off] ^ mask);
            auto model = Model::FromBuffer(buf.data(), buf.size(), options);
            buf[off] = bytes_[off];
            char where[96];
            std::snprintf(where, sizeof where, "%zu 0x%02x %s", off, mask, Region(h, off).c_str());
            if (!model.ok()) {
              ++c.refused;
              ++c.codes[StatusCodeName(model.status().code())];
              if (model.status().message().empty()) ADD_FAILURE() << "flip " << where << ": an unnamed error";
              continue;
            }
            auto scores = ScoreAll(model.value());
            // A model that loads may still refuse a request (a flipped vocab, say): a named
            // error too, counted as refused.
            if (!scores.ok()) {
              ++c.refused;
              ++c.codes["(at scoring) " + std::string(StatusCodeName(scores.status().code()))];
              logs[t] += std::string(where) + " scoring: " + scores.status().ToString() + "\n";
            } else if (scores.value() == good_) {
              ++c.identical;
            } else {
              ++c.different;
              ++c.different_by_region[Region(h, off)];
              if (c.examples.size() < 4) c.examples.push_back(where);
              logs[t] += std::string(where) + " different\n";
            }
          }
      });
    for (auto& th : threads) th.join();
    Counts all;
    for (const Counts& c : part) {
      all.refused += c.refused, all.identical += c.identical, all.different += c.different;
      for (const auto& [k, n] : c.codes) all.codes[k] += n;
      for (const auto& [k, n] : c.different_by_region) all.different_by_region[k] += n;
      for (const std::string& e : c.examples)
        if (all.examples.size() < 8) all.examples.push_back(e);
    }
    if (const char* log = std::getenv("DTRN_SWEEP_LOG"))
      if (FILE* f = std::fopen(log, "a")) {
        for (const std::string& l : logs) std::fputs(l.c_str(), f);
        std::fclose(f);
      }
    return all;
  }

  static void Print(const char* what, const Counts& c, size_t flips, double seconds) {
    std::printf("%s: %zu flips: %zu refused, %zu identical, %zu different (%.1f s)\n", what, flips, c.refused,
                c.identical, c.different, seconds);
    for (const auto& [code, n] : c.codes) std::printf("  refused %-28s %zu\n", code.c_str(), n);
    for (const auto& [region, n] : c.different_by_region)
      std::printf("  different in the %-10s %zu\n", region.c_str(), n);
    for (const std::string& e : c.examples) std::printf("  e.g. %s\n", e.c_str());
  }

  static std::vector<size_t> AllOffsets(size_t begin, size_t end, size_t stride = 1) {
    std::vector<size_t> v;
    for (size_t i = begin; i < end; i += stride) v.push_back(i);
    return v;
  }

  static t::TempDir* dir_;
  static std::string path_, bytes_, error_;
  static std::vector<Request> requests_;
  static std::vector<std::string> good_;
};

t::TempDir* BitFlip::dir_ = nullptr;
std::string BitFlip::path_, BitFlip::bytes_, BitFlip::error_;
std::vector<Request> BitFlip::requests_;
std::vector<std::string> BitFlip::good_;

// Defect 1's target: with the checksum on, every single-bit flip at every byte is refused
// with a named error, or scores bit-identically. Not one scores differently.
TEST_F(BitFlip, EveryFlipWithTheChecksumIsRefusedOrIdentical) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<size_t> all = AllOffsets(0, bytes_.size());
  Counts c = Sweep(all, {0x01, 0x80}, LoadOptions{});
  Print("checksum on", c, 2 * all.size(), Seconds(start));
  EXPECT_EQ(c.refused + c.identical, 2 * all.size());
  EXPECT_EQ(c.different, 0u) << "flips that loaded and scored differently, e.g. "
                             << (c.examples.empty() ? "" : c.examples[0]);
}

// The fast path (verify_checksum = false): the header's own checksum and the semantic checks
// (bounds, overlaps, one role per tensor, enums, scales, gate wiring) alone. A flip in the
// constant segment changes a weight, which no semantic rule can see; this measures the rest.
// By default every 13th byte of the header, the FlatBuffer and its padding, and every 127th
// of the segment (each loaded flip costs a Session and four requests); DTRN_SWEEP_FULL=1: every byte.
TEST_F(BitFlip, WithoutTheChecksumTheSemanticChecksAlone) {
  const format::Header h =
      format::Header::Parse(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size()).value();
  const bool full = std::getenv("DTRN_SWEEP_FULL") != nullptr;
  const auto start = std::chrono::steady_clock::now();
  LoadOptions fast;
  fast.verify_checksum = false;
  const std::vector<size_t> meta = AllOffsets(0, h.segment_offset, full ? 1 : 13);
  Counts m = Sweep(meta, {0x01, 0x80}, fast);
  Print(full ? "checksum off, header + flatbuffer + padding (every byte)"
             : "checksum off, header + flatbuffer + padding (every 13th byte)",
        m, 2 * meta.size(), Seconds(start));
  const auto start2 = std::chrono::steady_clock::now();
  const std::vector<size_t> seg = AllOffsets(h.segment_offset, bytes_.size(), full ? 1 : 127);
  Counts s = Sweep(seg, {0x01, 0x80}, fast);
  Print(full ? "checksum off, segment (every byte)" : "checksum off, segment (every 127th byte)", s, 2 * seg.size(),
        Seconds(start2));
  // The header keeps its own checksum on the fast path: no header flip may load.
  for (size_t off = 0; off < format::kHeaderSize; ++off)
    for (uint8_t mask : {0x01, 0x80}) {
      std::string buf = bytes_;
      buf[off] = static_cast<char>(buf[off] ^ mask);
      EXPECT_FALSE(Model::FromBuffer(buf.data(), buf.size(), fast).ok()) << "header flip " << off;
    }
}

// A semantic check the checksum-off sweep asked for (model_verify.cc): an int8 weight's
// per-channel scale flipped negative (the sign bit of its first float) loads with no
// checksum to catch it unless the verifier refuses it; it must, naming the layer.
TEST_F(BitFlip, Int8WeightScaleFlipIsRefusedWithoutTheChecksum) {
  const format::Header h =
      format::Header::Parse(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size()).value();
  const fb::Model* m = fb::GetModel(bytes_.data() + h.flatbuffer_offset);
  const fb::Linear* attn = m->tim_blocks()->Get(0)->attn_in();
  ASSERT_EQ(attn->precision(), fb::Precision::INT8) << "attn_in is not int8 in this model";
  const fb::Tensor* w = m->tensors()->Get(attn->weight());
  ASSERT_NE(w->quantization(), nullptr);
  const size_t at =
      static_cast<size_t>(reinterpret_cast<const char*>(w->quantization()->scale()->data()) - bytes_.data()) +
      3;  // scale[0]'s sign byte
  std::string bad = bytes_;
  bad[at] = static_cast<char>(bad[at] ^ 0x80);
  LoadOptions fast;
  fast.verify_checksum = false;
  auto r = Model::FromBuffer(bad.data(), bad.size(), fast);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("weight scale of output 0"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(attn->name()->str()), std::string::npos) << r.status().message();
  EXPECT_FALSE(Model::FromBuffer(bad.data(), bad.size()).ok());
}

// The acceptance check's idea (../shared/checks/hardening): flips chosen at random, three in
// four in the metadata, masks 0x01, 0x80 and 0x10, loaded by dtrn-run: exit 2 (refused) or the
// same scores as the good model, never a crash, a hang or other scores.
TEST_F(BitFlip, DtrnRunRefusesOrScoresTheSame) {
  if (!Built("dtrn-run")) GTEST_SKIP() << "dtrn-run not built";
  const std::string run = t::ToolPath("dtrn-run");
  const std::string req = dir_->file("req.jsonl");
  {
    std::string text = t::ReadFile(t::SourceDir() + "/examples/small/requests.jsonl");
    size_t end = 0;
    for (int i = 0; i < 4; ++i) end = text.find('\n', end) + 1;
    t::WriteFile(req, text.substr(0, end));
  }
  std::string good;
  ASSERT_EQ(t::RunCommand(Q(run) + " --model " + Q(path_) + " --requests " + Q(req) + " --quiet 2>/dev/null", &good), 0)
      << good;
  const format::Header h =
      format::Header::Parse(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size()).value();
  std::mt19937_64 rng(20261201);
  const uint8_t masks[] = {0x01, 0x80, 0x10};
  int refused = 0, same = 0;
  const int kFlips = 60;
  for (int i = 0; i < kFlips; ++i) {
    const size_t off = i % 4 ? rng() % h.segment_offset : rng() % bytes_.size();
    const uint8_t mask = masks[rng() % 3];
    std::string bad = bytes_;
    bad[off] = static_cast<char>(bad[off] ^ mask);
    t::WriteFile(dir_->file("bad.dtrn"), bad);
    std::string out;
    const int rc = t::RunCommand("timeout 20 " + Q(run) + " --model " + Q(dir_->file("bad.dtrn")) + " --requests " +
                                     Q(req) + " --quiet 2>/dev/null",
                                 &out);
    ASSERT_TRUE(rc == 0 || rc == 2) << "flip " << off << "^" << int(mask) << ": exit " << rc;
    if (rc == 2) {
      ++refused;
    } else {
      EXPECT_EQ(out, good) << "flip " << off << "^" << int(mask) << " scored differently";
      ++same;
    }
  }
  std::printf("dtrn-run: %d flips: %d refused, %d identical\n", kFlips, refused, same);
}

// ------------------------------------------------------------------ dtrn-convert's output

// A checkpoint for a one-field model whose item table has `vocab` rows of width d (vocab x d
// x 4 bytes), for conversions that take a moment.
std::string BigCheckpoint(int64_t vocab, int d) {
  const std::string config = R"({"name": "big", "d": )" + std::to_string(d) +
                             R"(, "tasks": ["a"], "behaviors": ["x"], "L": 3, "blocks": 1, "heads": 1, "d_ff": 8,
    "fields": [{"name": "item_id", "group": "item", "kind": "sparse", "vocab": )" +
                             std::to_string(vocab) + R"(}],
    "pooling": "mean", "mtl": "towers", "towers": []})";
  auto c = convert::ParseConfig(config);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  std::vector<convert::StWriteTensor> ts;
  uint32_t x = 12345;
  for (const auto& [name, shape] : convert::ExpectedTensors(c.value())) {
    size_t n = 1;
    for (int64_t s : shape) n *= static_cast<size_t>(s);
    convert::StWriteTensor tensor{name, shape, std::vector<float>(n)};
    for (float& v : tensor.values) {
      x = x * 1664525u + 1013904223u;
      v = (static_cast<float>(x >> 8) / 16777216.f - 0.5f) * 0.2f;
    }
    ts.push_back(std::move(tensor));
  }
  std::vector<uint8_t> b = convert::SerializeSafeTensors(ts, {{"dtrn_config", config}, {"dtrn_format", "1"}});
  return std::string(b.begin(), b.end());
}

class ConvertOutput : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Built("dtrn-convert")) GTEST_SKIP() << "dtrn-convert not built";
    conv_ = t::ToolPath("dtrn-convert");
  }
  int Convert(const std::string& ck, const std::string& out, std::string* log) {
    return t::RunCommand(Q(conv_) + " --checkpoint " + Q(ck) + " --output " + Q(out) + " --quiet", log);
  }
  t::TempDir dir_;
  std::string conv_;
};

// Defect 2: --output equal to --checkpoint (the same path, a symlink to it, a hard link to
// it, or the checkpoint named through a symlink) exits 2 and leaves the checkpoint untouched.
TEST_F(ConvertOutput, OutputNamingTheCheckpointIsRefused) {
  const std::string ck = dir_.file("ck.safetensors");
  const std::string bytes = t::ReadFile(t::SourceDir() + "/examples/small/model.safetensors");
  t::WriteFile(ck, bytes);
  ASSERT_EQ(::symlink(ck.c_str(), dir_.file("sym.dtrn").c_str()), 0);
  ASSERT_EQ(::link(ck.c_str(), dir_.file("hard.dtrn").c_str()), 0);
  ASSERT_EQ(::symlink(ck.c_str(), dir_.file("sym.safetensors").c_str()), 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {ck, ck},                                 // the same path
      {ck, dir_.path() + "/./ck.safetensors"},  // the same file, another spelling
      {ck, dir_.file("sym.dtrn")},              // a symlink to the checkpoint
      {ck, dir_.file("hard.dtrn")},             // a hard link to it
      {dir_.file("sym.safetensors"), ck},       // the checkpoint through a symlink
  };
  for (const auto& [in, out] : cases) {
    std::string log;
    EXPECT_EQ(Convert(in, out, &log), 2) << in << " -> " << out << ": " << log;
    EXPECT_NE(log.find("same file"), std::string::npos) << log;
    EXPECT_EQ(t::ReadFile(ck), bytes) << in << " -> " << out << " changed the checkpoint";
  }
  struct stat st;
  ASSERT_EQ(::lstat(dir_.file("sym.dtrn").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the symlink itself is left alone";
  EXPECT_EQ(DirEntries(dir_.path()),
            (std::vector<std::string>{"ck.safetensors", "hard.dtrn", "sym.dtrn", "sym.safetensors"}));
  // A distinct output still works.
  std::string log;
  EXPECT_EQ(Convert(ck, dir_.file("m.dtrn"), &log), 0) << log;
}

// Starts dtrn-convert, polls its open files until one is the output's temporary (an unnamed
// O_TMPFILE file shows as "DIR/#INODE (deleted)", a named one as "DIR/.out.dtrn.partial-..."),
// then SIGKILLs it. True when it was killed with the temporary open.
bool KillDuringWrite(const std::string& conv, const std::string& ck, const std::string& out, bool named) {
  std::vector<std::string> args = {conv, "--checkpoint", ck, "--output", out, "--quiet"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "DTRN_ATOMIC_FILE_NAMED=", 23) != 0) env_s.push_back(*e);
  if (named) env_s.push_back("DTRN_ATOMIC_FILE_NAMED=1");
  std::vector<char*> envp;
  for (std::string& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  const int rc = posix_spawn(&pid, conv.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return false;
  char real[PATH_MAX];
  if (!realpath(out.substr(0, out.find_last_of('/')).c_str(), real)) return false;
  const std::string dir = std::string(real) + "/";
  const std::string fds = "/proc/" + std::to_string(pid) + "/fd";
  bool caught = false;
  const auto start = std::chrono::steady_clock::now();
  while (!caught && Seconds(start) < 60) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;  // finished before we saw it write
    for (const std::string& fd : DirEntries(fds)) {
      char target[4096];
      const ssize_t n = readlink((fds + "/" + fd).c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      const std::string link(target, static_cast<size_t>(n));
      if (link.rfind(dir, 0) != 0) continue;
      const std::string name = link.substr(dir.size());
      if ((!named && name[0] == '#') || (named && name.find(".partial-") != std::string::npos)) caught = true;
    }
    if (!caught) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  return caught && WIFSIGNALED(status);
}

// Defect 3: SIGKILL during the write. The old output stays intact; the O_TMPFILE path leaves
// nothing at all, the named fallback a ".out.dtrn.partial-PID-XXXXXX" that the next run
// removes (its writer is gone). Loops until the kill lands during the write (bounded).
void KillAndRecover(const std::string& conv, t::TempDir& dir, bool named) {
  const std::string ck = dir.file("big.safetensors");
  t::WriteFile(ck, BigCheckpoint(named ? 300000 : 400000, 32));  // 38-51 MB
  const std::string out = dir.file("out.dtrn");
  const std::string old = "the previous output";
  int caught = 0, tries = 0;
  for (; tries < 12 && caught < 2; ++tries) {
    t::WriteFile(out, old);
    if (!KillDuringWrite(conv, ck, out, named)) continue;
    const std::vector<std::string> left = DirEntries(dir.path());
    if (t::ReadFile(out) != old) continue;  // renamed just before the kill: not during the write
    ++caught;
    EXPECT_EQ(t::ReadFile(out), old) << "the old output must survive";
    std::vector<std::string> partial;
    for (const std::string& e : left)
      if (e != "big.safetensors" && e != "out.dtrn") partial.push_back(e);
    if (named) {
      ASSERT_EQ(partial.size(), 1u) << "the named fallback leaves its temporary until the next run";
      EXPECT_EQ(partial[0].rfind(".out.dtrn.partial-", 0), 0u) << partial[0];
    } else {
      // Nothing, unless the kill fell between Commit's link of the finished file to
      // ".out.dtrn.partial-PID-linked" and its rename over the output (a tiny window).
      for (const std::string& e : partial)
        EXPECT_TRUE(e.rfind(".out.dtrn.partial-", 0) == 0 && e.size() > 7 && e.substr(e.size() - 7) == "-linked")
            << "O_TMPFILE: a killed writer leaves nothing, found " << e;
    }
  }
  std::printf("%s: killed during the write %d of %d tries\n", named ? "named temporary" : "O_TMPFILE", caught, tries);
  ASSERT_GE(caught, 1) << "never caught dtrn-convert writing in " << tries << " tries";
  // The next run (to completion) removes what the killed one left and writes a good model.
  ::setenv("DTRN_ATOMIC_FILE_NAMED", named ? "1" : "0", 1);
  std::string log;
  const int rc = t::RunCommand(Q(conv) + " --checkpoint " + Q(ck) + " --output " + Q(out) + " --quiet", &log);
  ::unsetenv("DTRN_ATOMIC_FILE_NAMED");
  ASSERT_EQ(rc, 0) << log;
  EXPECT_EQ(DirEntries(dir.path()), (std::vector<std::string>{"big.safetensors", "out.dtrn"}));
  EXPECT_TRUE(Model::Load(out).ok());
}

TEST_F(ConvertOutput, KilledDuringTheWriteLeavesNothing) { KillAndRecover(conv_, dir_, /*named=*/false); }
TEST_F(ConvertOutput, KilledDuringTheWriteNamedFallbackIsRemovedByTheNextRun) {
  KillAndRecover(conv_, dir_, /*named=*/true);
}

// The named fallback in process: the test hook forces it; a dead writer's temporary (and an
// old release's "NAME.tmp-XXXXXX" left for over a minute) is removed, a live writer's is not.
TEST(AtomicFile, NamedFallbackAndStaleTemporaries) {
  t::TempDir dir;
  const std::string path = dir.file("m.dtrn");
  ::setenv("DTRN_ATOMIC_FILE_NAMED", "1", 1);
  auto f = tools::AtomicFile::Create(path);
  ::unsetenv("DTRN_ATOMIC_FILE_NAMED");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_FALSE((*f)->unnamed());
  ASSERT_TRUE((*f)->Write("abc").ok());
  // While it writes, its temporary is there and another writer's cleanup keeps it.
  std::vector<std::string> during = DirEntries(dir.path());
  ASSERT_EQ(during.size(), 1u);
  EXPECT_EQ(during[0].rfind(".m.dtrn.partial-" + std::to_string(::getpid()) + "-", 0), 0u) << during[0];
  EXPECT_EQ(tools::RemoveStaleTemporaries(path), 0);
  ASSERT_TRUE((*f)->Commit().ok());
  EXPECT_EQ(DirEntries(dir.path()), std::vector<std::string>{"m.dtrn"});
  EXPECT_EQ(t::ReadFile(path), "abc");

  // A dead writer's: a child process that exits at once gives a pid that is surely gone.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  t::WriteFile(dir.file(".m.dtrn.partial-" + std::to_string(child) + "-Ab12Cd"), "x");
  t::WriteFile(dir.file(".m.dtrn.partial-" + std::to_string(::getpid()) + "-Zz9999"), "live");
  t::WriteFile(dir.file("m.dtrn.tmp-aB3dE6"), "legacy");
  t::WriteFile(dir.file("m.dtrn.tmp-young1"), "legacy, just written");
  const std::string old_legacy = dir.file("m.dtrn.tmp-aB3dE6");
  struct timespec times[2] = {{std::time(nullptr) - 3600, 0}, {std::time(nullptr) - 3600, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, old_legacy.c_str(), times, 0), 0);
  t::WriteFile(dir.file(".other.dtrn.partial-" + std::to_string(child) + "-Ab12Cd"), "another target's");
  EXPECT_EQ(tools::RemoveStaleTemporaries(path), 2);
  EXPECT_EQ(DirEntries(dir.path()),
            (std::vector<std::string>{".m.dtrn.partial-" + std::to_string(::getpid()) + "-Zz9999",
                                      ".other.dtrn.partial-" + std::to_string(child) + "-Ab12Cd", "m.dtrn",
                                      "m.dtrn.tmp-young1"}));
}

// Without the hook the unnamed path is used where the filesystem has O_TMPFILE (as here, on
// Linux with /proc), and nothing but the output ever appears in the directory.
TEST(AtomicFile, UnnamedWhereTheFilesystemAllows) {
  t::TempDir dir;
  const std::string path = dir.file("m.dtrn");
  auto f = tools::AtomicFile::Create(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
#ifdef O_TMPFILE
  if (!(*f)->unnamed()) GTEST_SKIP() << "this filesystem has no O_TMPFILE";
  ASSERT_TRUE((*f)->Write("abc").ok());
  EXPECT_TRUE(DirEntries(dir.path()).empty());
  ASSERT_TRUE((*f)->Commit().ok());
  EXPECT_EQ(DirEntries(dir.path()), std::vector<std::string>{"m.dtrn"});
#endif
}

// ------------------------------------------------------------------ fuzz findings

// fuzz/fuzz_dtrn_load: a tensor's shape vector (int64 elements) 4 bytes off its alignment
// passed the FlatBuffers verifier, which checks a vector's length field only, and reading it
// was a misaligned load (UBSan). Refused now, as damage.
TEST(FuzzRegressions, MisalignedInt64VectorIsRefused) {
  const std::string bytes =
      t::ReadFile(t::SourceDir() + "/fuzz/corpus/fuzz_dtrn_load/regress-misaligned-int64-vector.dtrn");
  LoadOptions fast;
  fast.verify_checksum = false;
  auto m = Model::FromBuffer(bytes.data(), bytes.size(), fast);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(m.status().message().find("a vector of 64-bit integers is not 8-byte aligned"), std::string::npos)
      << m.status().message();
  EXPECT_FALSE(Model::FromBuffer(bytes.data(), bytes.size()).ok());
}

}  // namespace
}  // namespace dtrn
