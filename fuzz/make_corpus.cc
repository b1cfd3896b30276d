// Writes the seed corpora of the fuzz targets into DIR/<target>/ (fuzz/corpus/ is committed):
// tiny checkpoints and models from the test helpers, request lines from the example and the
// shared request corpus, random bytes for the structured-request target. Deterministic.
//   fuzz_make_corpus DIR SOURCE_DIR
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "checkpoint_check.h"
#include "config.h"
#include "fuzz_support.h"
#include "model_builder.h"
#include "safetensors_write.h"

namespace {

using dtrn::FieldGroup;
using dtrn::FieldKind;

void Write(const std::string& dir, const std::string& name, const std::string& bytes) {
  ::mkdir(dir.c_str(), 0777);
  std::ofstream f(dir + "/" + name, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::printf("%s/%s: %zu bytes\n", dir.c_str(), name.c_str(), bytes.size());
}

std::string Checkpoint(const std::string& config, uint32_t seed) {
  auto c = dtrn::convert::ParseConfig(config);
  if (!c.ok()) dtrn::fuzz::Fail(c.status().ToString());
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.3f);
  std::vector<dtrn::convert::StWriteTensor> ts;
  for (const auto& [name, shape] : dtrn::convert::ExpectedTensors(c.value())) {
    size_t n = 1;
    for (int64_t s : shape) n *= static_cast<size_t>(s);
    dtrn::convert::StWriteTensor t{name, shape, std::vector<float>(n)};
    for (float& v : t.values) v = nd(rng);
    ts.push_back(std::move(t));
  }
  auto b = dtrn::convert::SerializeSafeTensors(ts, {{"dtrn_config", config}, {"dtrn_format", "1"}});
  return std::string(b.begin(), b.end());
}

dtrn::testing::TestModelConfig Tiny() {
  dtrn::testing::TestModelConfig c;
  c.d = 4;
  c.L = 2;
  c.blocks = 1;
  c.heads = 1;
  c.d_ff = 4;
  c.tasks = {"a", "b"};
  c.behaviors = {"x", "y"};
  c.fields = {
      {"user_id", FieldGroup::kUser, FieldKind::kSparse, 5, true, 0, ""},
      {"user_vec", FieldGroup::kUser, FieldKind::kDense, 0, false, 2, ""},
      {"hour", FieldGroup::kContext, FieldKind::kSparse, 3, false, 0, ""},
      {"item_id", FieldGroup::kItem, FieldKind::kSparse, 6, false, 0, ""},
      {"category", FieldGroup::kItem, FieldKind::kSparse, 3, true, 0, ""},
  };
  c.experts_shared = 1;
  c.expert_hidden = {4};
  c.tower_hidden = {};
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fuzz_make_corpus DIR SOURCE_DIR\n");
    return 2;
  }
  const std::string root = argv[1], src = argv[2];
  ::mkdir(root.c_str(), 0777);

  // fuzz_safetensors: tiny checkpoints (a towers/mean and an mmoe config with dense fields).
  const std::string st = root + "/fuzz_safetensors";
  Write(st, "towers_mean.safetensors",
        Checkpoint(R"({"d": 2, "tasks": ["a"], "behaviors": ["x"], "L": 2, "blocks": 1, "heads": 1, "d_ff": 2,
      "fields": [{"name": "item_id", "group": "item", "kind": "sparse", "vocab": 3}],
      "pooling": "mean", "mtl": "towers", "towers": []})",
                   1));
  Write(st, "mmoe_dense.safetensors",
        Checkpoint(R"({"d": 2, "tasks": ["a", "b"], "behaviors": ["x"], "L": 2, "blocks": 1, "heads": 1, "d_ff": 2,
      "fields": [{"name": "u", "group": "user", "kind": "sparse", "vocab": 3, "hashed": true},
                 {"name": "v", "group": "user", "kind": "dense", "width": 2},
                 {"name": "item_id", "group": "item", "kind": "sparse", "vocab": 4},
                 {"name": "c", "group": "item", "kind": "sparse", "vocab": 2}],
      "pooling": "target", "mtl": "mmoe", "experts": {"shared": 1, "hidden": [2]},
      "towers": [2]})",
                   2));
  Write(st, "header_only.safetensors", std::string("\x10\0\0\0\0\0\0\0{}              ", 24));

  // fuzz_dtrn_load: tiny models, one per storage type and head.
  const std::string dl = root + "/fuzz_dtrn_load";
  auto c = Tiny();
  Write(dl, "f32.dtrn", dtrn::testing::BuildTestModel(c));
  c.table_type = dtrn::fb::DType::INT8;
  c.int8_head = true;
  Write(dl, "int8.dtrn", dtrn::testing::BuildTestModel(c));
  c = Tiny();
  c.table_type = dtrn::fb::DType::F16;
  c.seq_fields = {"category"};
  Write(dl, "f16_seq_fields.dtrn", dtrn::testing::BuildTestModel(c));
  c = Tiny();
  c.mtl = dtrn::fb::Mtl::Towers;
  c.tower_hidden = {2};
  c.pooling = dtrn::fb::Pooling::Mean;
  Write(dl, "towers_mean.dtrn", dtrn::testing::BuildTestModel(c));
  c = Tiny();
  c.mtl = dtrn::fb::Mtl::Ple;
  c.experts_per_task = 1;
  Write(dl, "ple.dtrn", dtrn::testing::BuildTestModel(c));

  // fuzz_request_json: example requests, the shared corpus's lines, the object form.
  const std::string rj = root + "/fuzz_request_json";
  {
    std::ifstream f(src + "/examples/small/requests.jsonl");
    std::string line;
    for (int i = 0; i < 2 && std::getline(f, line); ++i) Write(rj, "example" + std::to_string(i) + ".json", line);
  }
  {
    std::ifstream f(src + "/tests/data/request_corpus.jsonl");
    std::string text;
    int kept = 0;
    while (std::getline(f, text)) {
      auto e = nlohmann::json::parse(text, nullptr, false);
      if (!e.is_object() || !e.contains("line") || !e["line"].is_string()) continue;
      const std::string line = e["line"];
      if (line.size() > 1024) continue;  // deep_nesting: the fuzzer finds its own
      Write(rj, "corpus_" + e.value("name", std::to_string(kept)) + ".json", line);
      ++kept;
    }
  }
  {
    dtrn::Request r;
    r.id = "seq";
    r.user = {{5, {}}, {3, {}}, {0, {0.5f, -1.f, 2.f, 0.f}}};
    r.context = {{13, {}}};
    r.behaviors = {{1, 2}, {}, {7}};
    r.behavior_side_ids = {{{4, 5}}, {{}}, {{9}}};
    r.candidates = {{{5, {}}, {2, {}}, {0, {0.1f, 0.2f, 0.3f}}}};
    r.labels = {{1.f, 0.f}};
    r.weights = {1.f, 2.f};
    Write(rj, "seq_fields.json", dtrn::io::RequestToJsonLine(dtrn::fuzz::SmallSeqSchema(), r));
  }

  // fuzz_score: random bytes (the target turns any bytes into a structured request).
  std::mt19937_64 rng(8);
  for (size_t size : {16, 64, 256, 1024, 4096}) {
    std::string b(size, '\0');
    for (char& ch : b) ch = static_cast<char>(rng());
    Write(root + "/fuzz_score", "random" + std::to_string(size), b);
  }
  return 0;
}
