// dtrn-convert: config parsing, checkpoint checks, hypernetwork folding (vs the Python
// reference when importable), config -> .dtrn -> inspect round trip, embeddings,
// int8 layers and decisions, equalization exactness, atomic writes, CLI exit codes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "calibration.h"
#include "checkpoint_check.h"
#include "config.h"
#include "convert.h"
#include "dtrn/dtrn_generated.h"
#include "dtrn/io/requests.h"
#include "dtrn/io/scores.h"
#include "dtrn/runtime.h"
#include "dtrn_writer.h"
#include "equalize.h"
#include "folding.h"
#include "half.h"
#include "inspect.h"
#include "model_build.h"
#include "safetensors.h"
#include "safetensors_write.h"
#include "test_util.h"

namespace dtrn::convert {
namespace {

using dtrn::testing::TempDir;
using json = nlohmann::json;

// Small but complete: shared table, dense fields in two groups, 2 blocks, ple head.
const char kPleConfig[] = R"({
  "name": "tiny_ple", "d": 8, "tasks": ["click", "buy"], "behaviors": ["click", "cart"],
  "L": 6, "blocks": 2, "heads": 2, "d_ff": 16,
  "fields": [
    {"name": "user_id", "group": "user", "kind": "sparse", "vocab": 50, "hashed": true},
    {"name": "user_vec", "group": "user", "kind": "dense", "width": 3},
    {"name": "hour", "group": "context", "kind": "sparse", "vocab": 24},
    {"name": "item_id", "group": "item", "kind": "sparse", "vocab": 200},
    {"name": "last_item", "group": "item", "kind": "sparse", "table": "item_id", "vocab": 200},
    {"name": "shop", "group": "item", "kind": "sparse", "vocab": 30, "hashed": true},
    {"name": "item_vec", "group": "item", "kind": "dense", "width": 2}
  ],
  "pooling": "target", "mtl": "ple",
  "experts": {"shared": 1, "per_task": 2, "hidden": [12, 6]},
  "towers": [5]
})";

const char kTowersConfig[] = R"({
  "d": 4, "tasks": ["a"], "behaviors": ["x", "y", "z"], "L": 3, "blocks": 1, "heads": 1, "d_ff": 8,
  "fields": [{"name": "item_id", "group": "item", "kind": "sparse", "vocab": 20}],
  "pooling": "mean", "mtl": "towers", "towers": []
})";

std::string ReadText(const std::string& p) { return dtrn::testing::ReadFile(p); }

ModelConfig MustParse(const std::string& text) {
  auto c = ParseConfig(text);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? c.value() : ModelConfig();
}

// A checkpoint with random weights for a config (what `dtrn_ref init` does, without Python).
std::vector<uint8_t> RandomCheckpoint(const std::string& config_text, uint32_t seed, float scale = 0.3f) {
  ModelConfig c = MustParse(config_text);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<StWriteTensor> ts;
  for (const auto& [name, shape] : ExpectedTensors(c)) {
    size_t n = 1;
    for (int64_t s : shape) n *= static_cast<size_t>(s);
    StWriteTensor t{name, shape, std::vector<float>(n)};
    for (float& v : t.values) v = nd(rng) * scale;
    ts.push_back(std::move(t));
  }
  return SerializeSafeTensors(ts, {{"dtrn_config", config_text}, {"dtrn_format", "1"}});
}

void WriteBytes(const std::string& path, const std::vector<uint8_t>& b) {
  dtrn::testing::WriteFile(path, std::string(b.begin(), b.end()));
}

// Random valid requests (docs/request-format.md) for a config, with labels.
std::string RandomRequests(const ModelConfig& c, int count, int candidates, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  auto field_value = [&](const FieldConfig& f) -> json {
    if (f.kind == FieldKind::kDense) {
      json a = json::array();
      for (int i = 0; i < f.width; ++i) a.push_back(nd(rng));
      return a;
    }
    return f.hashed ? static_cast<int64_t>(rng()) * 7919 : static_cast<int64_t>(rng() % f.vocab);
  };
  const TableConfig& item = c.tables[c.item_table];
  std::string out;
  for (int r = 0; r < count; ++r) {
    json q = {{"id", "r" + std::to_string(r)}, {"user", json::object()}, {"context", json::object()}};
    json cands = json::array(), labels = json::array();
    for (int i = 0; i < candidates; ++i) {
      json cand = json::object();
      json lab = json::array();
      for (int k = 0; k < c.K(); ++k) lab.push_back(static_cast<int>(rng() % 3 == 0));
      labels.push_back(lab);
      cands.push_back(cand);
    }
    for (const FieldConfig& f : c.fields) {
      if (f.group == FieldGroup::kUser) q["user"][f.name] = field_value(f);
      if (f.group == FieldGroup::kContext) q["context"][f.name] = field_value(f);
      if (f.group == FieldGroup::kItem) {
        for (auto& cand : cands) cand[f.name] = field_value(f);
      }
    }
    json beh = json::object();
    for (const std::string& b : c.behaviors) {
      json seq = json::array();
      const int len = static_cast<int>(rng() % (c.L + 3));  // sometimes empty, sometimes longer than L
      for (int j = 0; j < len; ++j)
        seq.push_back(item.hashed ? static_cast<int64_t>(rng()) : static_cast<int64_t>(rng() % item.vocab));
      beh[b] = seq;
    }
    q["behaviors"] = beh;
    q["candidates"] = cands;
    q["labels"] = labels;
    out += q.dump() + "\n";
  }
  return out;
}

format::Header HeaderOf(const std::vector<uint8_t>& bytes) {
  return format::Header::Parse(bytes.data(), bytes.size()).value();
}
const fb::Model* Fb(const std::vector<uint8_t>& bytes) {
  return fb::GetModel(bytes.data() + HeaderOf(bytes).flatbuffer_offset);
}

std::vector<uint8_t> ReadBytes(const std::string& p) {
  std::string s = dtrn::testing::ReadFile(p);
  return std::vector<uint8_t>(s.begin(), s.end());
}

std::vector<float> CkptTensor(const std::vector<uint8_t>& ck, const std::string& name) {
  auto st = ParseSafeTensors(ck.data(), ck.size());
  EXPECT_TRUE(st.ok());
  return st->Floats(*st->Find(name));
}

const fb::Tensor* TensorNamed(const fb::Model* m, const std::string& name) {
  for (const fb::Tensor* t : *m->tensors()) {
    if (t->name()->str() == name) return t;
  }
  return nullptr;
}

const uint8_t* Segment(const std::vector<uint8_t>& bytes) { return bytes.data() + HeaderOf(bytes).segment_offset; }

std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

// ---------------------------------------------------------------- config

TEST(Config, ShippedConfigsParse) {
  for (const char* name : {"small", "standard", "large"}) {
    auto c = ParseConfig(ReadText(dtrn::testing::SourceDir() + "/reference/configs/" + name + ".json"));
    ASSERT_TRUE(c.ok()) << name << ": " << c.status().ToString();
  }
  ModelConfig s = MustParse(ReadText(dtrn::testing::SourceDir() + "/reference/configs/small.json"));
  EXPECT_EQ(s.n(), 10);
  EXPECT_EQ(s.trm_hidden, 5);  // ceil(10 / 2)
  EXPECT_EQ(s.hyper_dim, 16);
  EXPECT_EQ(s.hyper_hidden, 32);
  EXPECT_EQ(s.tables.size(), 5u);
  EXPECT_EQ(s.tables[s.item_table].name, "item_id");
  EXPECT_EQ(s.tables[s.item_table].vocab, 10000);
  EXPECT_EQ(s.num_experts(), 3);
  EXPECT_EQ(s.tower_input(), 64);
}

TEST(Config, SharedTablesAndPleNumbering) {
  ModelConfig c = MustParse(kPleConfig);
  ASSERT_EQ(c.tables.size(), 4u);  // user_id, hour, item_id (shared by last_item), shop
  EXPECT_EQ(c.fields[4].table_index, c.item_table);
  EXPECT_EQ(c.n(), 9);
  EXPECT_EQ(c.num_experts(), 5);                              // K * per_task + shared
  EXPECT_EQ(c.gate_experts(0), (std::vector<int>{0, 1, 4}));  // own first, then shared
  EXPECT_EQ(c.gate_experts(1), (std::vector<int>{2, 3, 4}));
}

TEST(Config, ErrorsNameTheKey) {
  json base = json::parse(kPleConfig);
  struct Case {
    std::function<void(json&)> mutate;
    std::string needle;
  };
  std::vector<Case> cases = {
      {[](json& j) { j["colour"] = 1; }, "'colour': unknown key"},
      {[](json& j) { j.erase("d"); }, "'d': missing"},
      {[](json& j) { j["d"] = 8.5; }, "'d': expected an integer"},
      {[](json& j) { j["d"] = 0; }, "'d': 0 is out of range"},
      {[](json& j) { j["heads"] = 3; }, "'heads': d = 8 is not divisible by heads = 3"},
      {[](json& j) {
         j["tasks"] = json::array({"a", "a"});
       },
       "'tasks[1]': duplicate name 'a'"},
      {[](json& j) { j["tasks"] = json::array({"a.b"}); }, "'tasks[0]'"},
      {[](json& j) { j["fields"][3]["name"] = "item"; }, "first item field must be 'item_id'"},
      {[](json& j) { j["fields"][1]["vocab"] = 3; }, "a dense field has no embedding table"},
      {[](json& j) { j["fields"][0]["width"] = 3; }, "a sparse field has no width"},
      {[](json& j) { j["fields"][0]["group"] = "users"; }, "fields[0] ('user_id').group"},
      {[](json& j) { j["fields"][4]["vocab"] = 201; }, "table 'item_id' is shared with another field"},
      {[](json& j) { j["mtl"] = "mmoe"; }, "'experts.per_task': the 'mmoe' head has only shared experts"},
      {[](json& j) { j["mtl"] = "tower"; }, "'mtl': expected one of"},
      {[](json& j) { j["pooling"] = "max"; }, "'pooling'"},
      {[](json& j) { j["experts"]["hidden"] = json::array(); }, "'experts.hidden'"},
      {[](json& j) { j["towers"] = json::array({0}); }, "'towers[0]'"},
      {[](json& j) { j["dropout"] = 1.0; }, "'dropout'"},
      {[](json& j) { j["fields"][0]["hashed"] = 1; }, "hashed': expected true or false"},
  };
  for (const Case& c : cases) {
    json j = base;
    c.mutate(j);
    auto r = ParseConfig(j.dump());
    ASSERT_FALSE(r.ok()) << "accepted: " << c.needle;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << r.status().message();
  }
  auto dup = ParseConfig(R"({"d": 8, "d": 8})");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("'d': appears twice"), std::string::npos) << dup.status().message();
  EXPECT_FALSE(ParseConfig("{").ok());
  EXPECT_FALSE(ParseConfig("[]").ok());
}

// ---------------------------------------------------------------- checkpoint check

TEST(CheckpointCheck, MissingExtraMisshapedNameTheTensor) {
  ModelConfig c = MustParse(kPleConfig);
  auto expected = ExpectedTensors(c);
  auto build = [&](const std::function<void(std::vector<StWriteTensor>&)>& mutate) {
    std::vector<StWriteTensor> ts;
    for (const auto& [name, shape] : expected) {
      size_t n = 1;
      for (int64_t s : shape) n *= s;
      ts.push_back({name, shape, std::vector<float>(n, 0.1f)});
    }
    mutate(ts);
    return SerializeSafeTensors(ts, {{"dtrn_config", kPleConfig}, {"dtrn_format", "1"}});
  };
  auto check = [&](const std::vector<uint8_t>& b) {
    auto st = ParseSafeTensors(b.data(), b.size());
    EXPECT_TRUE(st.ok());
    return CheckCheckpoint(c, st.value());
  };
  EXPECT_TRUE(check(build([](auto&) {})).ok());
  Status missing = check(build([](auto& ts) { ts.erase(ts.begin() + 7); }));
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("'" + expected[7].first + "'"), std::string::npos) << missing.message();
  Status extra = check(build([](auto& ts) { ts.push_back({"experts.9.0.weight", {1}, {0.f}}); }));
  EXPECT_NE(extra.message().find("unexpected tensor 'experts.9.0.weight'"), std::string::npos) << extra.message();
  Status shape = check(build([](auto& ts) {
    for (auto& t : ts) {
      if (t.name == "gates.1.weight") t.shape = {t.shape[1], t.shape[0]};
    }
  }));
  EXPECT_NE(shape.message().find("'gates.1.weight' has shape [72, 3]"), std::string::npos) << shape.message();
  // The gate of a ple task has E_t + E_s = 3 outputs over r_k of width n*d = (7 + 2) * 8.
  bool found = false;
  for (const auto& [name, s] : expected) {
    if (name == "gates.1.weight") found = (s == std::vector<int64_t>{3, 72});
  }
  EXPECT_TRUE(found);
}

TEST(CheckpointCheck, MetadataErrors) {
  auto meta = [](std::map<std::string, std::string> m) {
    std::vector<uint8_t> b = SerializeSafeTensors({}, m);
    auto st = ParseSafeTensors(b.data(), b.size());
    return ConfigFromCheckpoint(st.value()).status();
  };
  EXPECT_NE(meta({}).message().find("dtrn_format"), std::string::npos);
  EXPECT_EQ(meta({{"dtrn_format", "2"}, {"dtrn_config", kPleConfig}}).code(), StatusCode::kUnimplemented);
  EXPECT_NE(meta({{"dtrn_format", "1"}}).message().find("dtrn_config"), std::string::npos);
  EXPECT_NE(
      meta({{"dtrn_format", "1"}, {"dtrn_config", "{\"d\": 1}"}}).message().find("checkpoint dtrn_config: config key"),
      std::string::npos);
}

// ---------------------------------------------------------------- folding

TEST(Folding, MatchesDirectEvaluation) {
  ModelConfig c = MustParse(kPleConfig);
  std::vector<uint8_t> ck = RandomCheckpoint(kPleConfig, 3, 0.5f);
  auto st = ParseSafeTensors(ck.data(), ck.size());
  ASSERT_TRUE(st.ok());
  std::vector<float> cln = FoldHypernetwork(c, st.value());
  const int K = c.K(), B = c.B(), dh = c.hyper_dim, hh = c.hyper_hidden, d = c.d, nln = c.n_ln();
  ASSERT_EQ(cln.size(), static_cast<size_t>(K * B * nln * 2 * d));
  auto T = CkptTensor(ck, "tim.hyper.task_emb"), S = CkptTensor(ck, "tim.hyper.behavior_emb");
  auto W1 = CkptTensor(ck, "tim.hyper.fc1.weight"), c1 = CkptTensor(ck, "tim.hyper.fc1.bias");
  auto W2 = CkptTensor(ck, "tim.hyper.fc2.weight"), c2 = CkptTensor(ck, "tim.hyper.fc2.bias");
  int nontrivial = 0;
  for (int k = 0; k < K; ++k) {
    for (int b = 0; b < B; ++b) {
      std::vector<double> hid(hh);
      for (int j = 0; j < hh; ++j) {
        double a = c1[j];
        for (int i = 0; i < dh; ++i) a += W1[j * 2 * dh + i] * T[k * dh + i] + W1[j * 2 * dh + dh + i] * S[b * dh + i];
        hid[j] = a > 0 ? a : 0;
      }
      for (int l = 0; l < nln; ++l) {
        for (int i = 0; i < d; ++i) {
          double dg = c2[l * 2 * d + i], be = c2[l * 2 * d + d + i];
          for (int j = 0; j < hh; ++j) {
            dg += W2[(l * 2 * d + i) * hh + j] * hid[j];
            be += W2[(l * 2 * d + d + i) * hh + j] * hid[j];
          }
          const size_t at = (((static_cast<size_t>(k) * B + b) * nln + l) * 2) * d + i;
          EXPECT_NEAR(cln[at], 1.0 + dg, 1e-5) << "gamma k" << k << " b" << b << " l" << l << " i" << i;
          EXPECT_NEAR(cln[at + d], be, 1e-5) << "beta k" << k << " b" << b << " l" << l << " i" << i;
          nontrivial += std::fabs(dg) > 0.1;
        }
      }
    }
  }
  EXPECT_GT(nontrivial, 10) << "the test weights must make gamma differ from 1";
}

TEST(Folding, MatchesPythonReference) {
  if (!dtrn::testing::ReferenceAvailable()) GTEST_SKIP() << "python3 with torch + safetensors not available";
  TempDir dir;
  std::string out;
  const std::string cfg = dtrn::testing::SourceDir() + "/reference/configs/small.json";
  int rc = dtrn::testing::RunReference("init --config '" + cfg + "' --out '" + dir.file("ck.safetensors") +
                                           "' --seed 1 --cln-out '" + dir.file("cln.safetensors") + "'",
                                       &out);
  if (rc != 0 && out.find("No module named") != std::string::npos) GTEST_SKIP() << "reference not importable: " << out;
  ASSERT_EQ(rc, 0) << out;
  auto ck = ReadCheckpoint(dir.file("ck.safetensors"));
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  auto c = ConfigFromCheckpoint(ck->st);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(CheckCheckpoint(c.value(), ck->st).ok());
  std::vector<float> mine = FoldHypernetwork(c.value(), ck->st);
  auto ref = ReadCheckpoint(dir.file("cln.safetensors"));
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  const StTensor* t = ref->st.Find("cln");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{c->K(), c->B(), c->n_ln(), 2, c->d}));
  std::vector<float> theirs = ref->st.Floats(*t);
  ASSERT_EQ(theirs.size(), mine.size());
  double max_diff = 0, max_dev = 0;
  for (size_t i = 0; i < mine.size(); ++i)
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(mine[i] - theirs[i])));
  for (size_t i = 0; i < mine.size(); i += 2 * c->d)
    max_dev = std::max(max_dev, static_cast<double>(std::fabs(mine[i] - 1.f)));
  EXPECT_LE(max_diff, 1e-5);
  EXPECT_GT(max_dev, 1e-3) << "reference init must give non-trivial gamma for this test to mean something";
}

// ---------------------------------------------------------------- f32 round trip + inspect

struct Converted {
  TempDir dir;
  std::vector<uint8_t> ckpt, model;
  std::string log;
};

std::unique_ptr<Converted> ConvertWith(const std::string& config, ConvertOptions o, uint32_t seed = 1, int requests = 0,
                                       int candidates = 6) {
  auto c = std::make_unique<Converted>();
  c->ckpt = RandomCheckpoint(config, seed);
  WriteBytes(c->dir.file("ck.safetensors"), c->ckpt);
  if (requests) {
    dtrn::testing::WriteFile(c->dir.file("req.jsonl"),
                             RandomRequests(MustParse(config), requests, candidates, seed + 100));
    o.calibration = c->dir.file("req.jsonl");
  }
  o.checkpoint = c->dir.file("ck.safetensors");
  o.output = c->dir.file("m.dtrn");
  std::ostringstream log;
  auto r = Convert(o, log);
  c->log = log.str();
  EXPECT_TRUE(r.ok()) << r.status().ToString() << "\n" << c->log;
  if (r.ok()) c->model = ReadBytes(o.output);
  return c;
}

TEST(RoundTrip, F32ConfigToDtrnToInspect) {
  auto c = ConvertWith(kPleConfig, ConvertOptions());
  ASSERT_FALSE(c->model.empty());
  const fb::Model* m = Fb(c->model);
  ModelConfig cfg = MustParse(kPleConfig);
  EXPECT_EQ(m->format_version(), format::kFormatVersion);
  EXPECT_EQ(m->name()->str(), "tiny_ple");
  EXPECT_EQ(m->producer()->str().rfind("dtrn-convert ", 0), 0u);
  EXPECT_EQ(m->d(), 8);
  EXPECT_EQ(m->seq_len(), 6);
  EXPECT_EQ(m->blocks(), 2);
  EXPECT_EQ(m->mtl(), fb::Mtl::Ple);
  EXPECT_EQ(m->tasks()->size(), 2u);
  EXPECT_EQ(m->tables()->size(), cfg.tables.size());
  EXPECT_EQ(m->tables()->Get(m->item_table())->name()->str(), "item_id");
  EXPECT_EQ(m->fields()->Get(4)->table(), m->item_table()) << "last_item shares item_id's table";
  EXPECT_EQ(m->experts()->size(), 5u);  // K * E_t + E_s
  EXPECT_EQ(m->task_gates()->Get(1)->layer()->out_features(), 3);
  // PLE wiring in the file: task 1's own experts (2, 3), then the shared one (4).
  EXPECT_EQ(std::vector<int>(m->task_gates()->Get(1)->experts()->begin(), m->task_gates()->Get(1)->experts()->end()),
            (std::vector<int>{2, 3, 4}));
  EXPECT_EQ(m->towers()->Get(0)->layers()->Get(1)->out_features(), 1);
  EXPECT_TRUE(m->experts()->Get(0)->layers()->Get(1)->relu()) << "experts: relu after every layer";
  EXPECT_TRUE(m->towers()->Get(0)->layers()->Get(0)->relu());
  EXPECT_FALSE(m->towers()->Get(0)->layers()->Get(1)->relu());
  EXPECT_TRUE(m->tim_blocks()->Get(1)->ffn1()->relu());
  EXPECT_FALSE(m->tim_blocks()->Get(1)->ffn2()->relu());
  EXPECT_TRUE(m->trm()->Get(0)->fc1()->relu());
  EXPECT_EQ(m->tim_blocks()->Get(0)->attn_in()->name()->str(), "tim.blocks.0.attn.in_proj");
  EXPECT_EQ(m->tim_blocks()->Get(0)->attn_in()->out_features(), 24);
  // Layout: constant segment at align64(64 + S), offsets 64-aligned, checksum over the whole body.
  const format::Header h = HeaderOf(c->model);
  EXPECT_EQ(h.segment_offset, format::Align(format::kHeaderSize + h.flatbuffer_size));
  EXPECT_EQ(c->model.size(), h.segment_offset + h.segment_size);
  for (const fb::Tensor* t : *m->tensors()) {
    EXPECT_EQ(t->offset() % 64, 0u) << t->name()->str();
    EXPECT_LE(t->offset() + t->size(), h.segment_size);
  }
  // Tensors are the checkpoint's bytes; the hypernetwork does not ship.
  for (const char* name : {"emb.item_id.weight", "dense.item_vec.weight", "experts.4.1.bias", "tim.pos"}) {
    const fb::Tensor* t = TensorNamed(m, name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->type(), fb::DType::F32);
    std::vector<float> want = CkptTensor(c->ckpt, name);
    ASSERT_EQ(t->size(), want.size() * 4);
    EXPECT_EQ(std::memcmp(Segment(c->model) + t->offset(), want.data(), t->size()), 0) << name;
  }
  const fb::Tensor* in_w = TensorNamed(m, "tim.blocks.1.attn.in_proj.weight");
  ASSERT_NE(in_w, nullptr);
  EXPECT_EQ(std::memcmp(Segment(c->model) + in_w->offset(),
                        CkptTensor(c->ckpt, "tim.blocks.1.attn.in_proj_weight").data(), in_w->size()),
            0);
  for (const fb::Tensor* t : *m->tensors()) EXPECT_EQ(t->name()->str().find("hyper"), std::string::npos);
  const fb::Tensor* cln = m->tensors()->Get(m->cln());
  EXPECT_EQ(std::vector<int64_t>(cln->shape()->begin(), cln->shape()->end()), (std::vector<int64_t>{2, 2, 4, 2, 8}));
  // The runtime loads it; inspect describes it.
  auto loaded = Model::Load(c->dir.file("m.dtrn"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_FALSE(loaded.value()->has_int8_layers());
  std::ostringstream text;
  Status st = InspectDtrnFile(c->dir.file("m.dtrn"), text);
  EXPECT_TRUE(st.ok()) << st.ToString() << text.str();
  const std::string s_text = text.str();
  for (const char* needle : {"format_version: 2", "name: tiny_ple", "tasks: [click, buy]", "mtl: Ple", "checksum: ok",
                             "runtime load: ok", "emb.shop.weight", "experts.4.1", "gates.1", "[2, 2, 4, 2, 8]"}) {
    EXPECT_NE(s_text.find(needle), std::string::npos) << needle << "\n" << s_text;
  }
  for (const fb::Tensor* t : *m->tensors())
    EXPECT_NE(s_text.find(t->name()->str()), std::string::npos) << t->name()->str();
}

TEST(RoundTrip, TowersHeadMeanPoolingNoQuery) {
  auto c = ConvertWith(kTowersConfig, ConvertOptions());
  ASSERT_FALSE(c->model.empty());
  const fb::Model* m = Fb(c->model);
  EXPECT_EQ(m->query(), nullptr);
  EXPECT_EQ(m->pooling(), fb::Pooling::Mean);
  EXPECT_EQ(m->task_gates()->size(), 0u);
  EXPECT_EQ(m->towers()->Get(0)->layers()->size(), 1u) << "towers: [] is one linear logit";
  EXPECT_EQ(m->towers()->Get(0)->layers()->Get(0)->in_features(), 16);  // n*d = (1 + 3) * 4
  EXPECT_TRUE(Model::FromBuffer(c->model.data(), c->model.size()).ok());
}

TEST(Inspect, DetectsCorruption) {
  auto c = ConvertWith(kPleConfig, ConvertOptions());
  ASSERT_FALSE(c->model.empty());
  std::vector<uint8_t> bad = c->model;
  bad[bad.size() - 100] ^= 0x40;  // inside the constant segment
  std::ostringstream text;
  Status st = InspectDtrn(bad.data(), bad.size(), text);
  EXPECT_EQ(st.code(), StatusCode::kDataLoss);
  EXPECT_NE(text.str().find("checksum: MISMATCH"), std::string::npos);
  for (size_t n : {size_t{0}, size_t{3}, size_t{100}, c->model.size() - 1}) {
    std::ostringstream t2;
    EXPECT_FALSE(InspectDtrn(c->model.data(), n, t2).ok()) << "truncated to " << n;
  }
  std::vector<uint8_t> ident = c->model;
  ident[8] = 'X';  // file identifier (after the size prefix and root offset)
  std::ostringstream t3;
  EXPECT_FALSE(InspectDtrn(ident.data(), ident.size(), t3).ok());
}

// ---------------------------------------------------------------- embeddings

TEST(Embeddings, F16AndInt8PerRow) {
  ConvertOptions o;
  o.embeddings = EmbeddingType::kF16;
  auto h = ConvertWith(kPleConfig, o);
  o.embeddings = EmbeddingType::kInt8;
  auto q = ConvertWith(kPleConfig, o);
  ASSERT_FALSE(h->model.empty());
  ASSERT_FALSE(q->model.empty());
  const std::vector<float> w = CkptTensor(h->ckpt, "emb.shop.weight");  // [30, 8]
  const fb::Tensor* th = TensorNamed(Fb(h->model), "emb.shop.weight");
  ASSERT_EQ(th->type(), fb::DType::F16);
  ASSERT_EQ(th->size(), w.size() * 2);
  const uint16_t* hv = reinterpret_cast<const uint16_t*>(Segment(h->model) + th->offset());
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(quant::HalfToFloat(hv[i]), w[i], std::fabs(w[i]) * 0x1p-11 + 1e-7);
  const fb::Tensor* tq = TensorNamed(Fb(q->model), "emb.shop.weight");
  ASSERT_EQ(tq->type(), fb::DType::INT8);
  ASSERT_EQ(tq->size(), w.size());
  ASSERT_NE(tq->quantization(), nullptr);
  ASSERT_EQ(tq->quantization()->scale()->size(), 30u);
  EXPECT_EQ(tq->quantization()->quantized_dimension(), 0);
  const int8_t* qv = reinterpret_cast<const int8_t*>(Segment(q->model) + tq->offset());
  for (size_t r = 0; r < 30; ++r) {
    const float s = tq->quantization()->scale()->Get(r);
    for (size_t j = 0; j < 8; ++j) EXPECT_LE(std::fabs(w[r * 8 + j] - qv[r * 8 + j] * s), s / 2 * 1.0001);
  }
  // Positions, cln and dense projections stay f32.
  EXPECT_EQ(TensorNamed(Fb(q->model), "tim.pos")->type(), fb::DType::F32);
  EXPECT_EQ(TensorNamed(Fb(q->model), "cln")->type(), fb::DType::F32);
  EXPECT_EQ(TensorNamed(Fb(q->model), "dense.user_vec.weight")->type(), fb::DType::F32);
  EXPECT_LT(q->model.size(), h->model.size());
  EXPECT_TRUE(Model::FromBuffer(h->model.data(), h->model.size()).ok());
  EXPECT_TRUE(Model::FromBuffer(q->model.data(), q->model.size()).ok());
}

TEST(Embeddings, F16OverflowIsANamedError) {
  ModelConfig c = MustParse(kTowersConfig);
  std::vector<uint8_t> ck = RandomCheckpoint(kTowersConfig, 1);
  auto st = ParseSafeTensors(ck.data(), ck.size());
  ASSERT_TRUE(st.ok());
  auto d = BuildF32Desc(c, st.value());
  ASSERT_TRUE(d.ok());
  std::vector<float> big(20 * 4, 1.f);
  big[13] = 1e6f;
  auto b = std::make_shared<std::vector<uint8_t>>(big.size() * 4);
  std::memcpy(b->data(), big.data(), b->size());
  d->tensors[d->table_weight[0]].data = b;
  Status s = SetEmbeddings(&d.value(), EmbeddingType::kF16);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'emb.item_id.weight' row 3"), std::string::npos) << s.message();
}

// ---------------------------------------------------------------- int8

void ExpectInt8LayerConsistent(const std::vector<uint8_t>& model, const std::vector<uint8_t>& ck, const fb::Linear* l,
                               const std::string& ckpt_prefix) {
  const fb::Model* m = Fb(model);
  const fb::Tensor* w = m->tensors()->Get(l->weight());
  const fb::Tensor* b = m->tensors()->Get(l->bias());
  ASSERT_EQ(w->type(), fb::DType::INT8) << l->name()->str();
  ASSERT_EQ(b->type(), fb::DType::F32) << l->name()->str() << ": int8 layers keep an f32 bias";
  ASSERT_NE(w->quantization(), nullptr);
  ASSERT_EQ(w->quantization()->scale()->size(), static_cast<size_t>(l->out_features()));
  EXPECT_EQ(w->quantization()->zero_point()->size(), 0u) << "symmetric weights";
  const std::vector<float> wf = CkptTensor(ck, ckpt_prefix + ".weight"), bf = CkptTensor(ck, ckpt_prefix + ".bias");
  const int8_t* q = reinterpret_cast<const int8_t*>(Segment(model) + w->offset());
  const float* bq = reinterpret_cast<const float*>(Segment(model) + b->offset());
  const int in = l->in_features();
  for (int o = 0; o < l->out_features(); ++o) {
    const float s = w->quantization()->scale()->Get(o);
    for (int i = 0; i < in; ++i) ASSERT_LE(std::fabs(wf[o * in + i] - q[o * in + i] * s), s / 2 * 1.0001);
    EXPECT_EQ(bq[o], bf[o]) << l->name()->str() << " bias " << o;
  }
}

TEST(Int8, AllLayersQuantizedConsistently) {
  ConvertOptions o;
  o.int8 = true;
  o.policy = Int8Policy::kAll;
  o.equalize = false;  // compare weights against the checkpoint's directly
  auto c = ConvertWith(kPleConfig, o, 5, 24, 7);
  ASSERT_FALSE(c->model.empty());
  const fb::Model* m = Fb(c->model);
  auto loaded = Model::FromBuffer(c->model.data(), c->model.size());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_TRUE(loaded.value()->has_int8_layers());
  ASSERT_NE(m->decisions(), nullptr);
  // 2 blocks x 4 + query + 2 tasks x 2 TRM + 5 experts x 2 + 2 gates + 2 towers x 2
  EXPECT_EQ(m->decisions()->size(), 8u + 1 + 4 + 10 + 2 + 4);
  for (const fb::LayerDecision* d : *m->decisions()) {
    EXPECT_EQ(d->precision(), fb::Precision::INT8) << d->layer()->str();
    EXPECT_EQ(d->reason()->str().rfind("int8: SQNR", 0), 0u) << d->reason()->str();
  }
  ExpectInt8LayerConsistent(c->model, c->ckpt, m->experts()->Get(3)->layers()->Get(0), "experts.3.0");
  ExpectInt8LayerConsistent(c->model, c->ckpt, m->experts()->Get(3)->layers()->Get(1), "experts.3.1");
  ExpectInt8LayerConsistent(c->model, c->ckpt, m->task_gates()->Get(0)->layer(), "gates.0");
  ExpectInt8LayerConsistent(c->model, c->ckpt, m->towers()->Get(1)->layers()->Get(0), "towers.1.0");
  ExpectInt8LayerConsistent(c->model, c->ckpt, m->trm()->Get(1)->fc1(), "trm.1.fc1");
  ExpectInt8LayerConsistent(c->model, c->ckpt, m->tim_blocks()->Get(1)->ffn2(), "tim.blocks.1.ffn2");
  ExpectInt8LayerConsistent(c->model, c->ckpt, m->query(), "tim.query");
  // Dense projections stay f32; embeddings default to int8 in int8 mode.
  EXPECT_EQ(m->fields()->Get(1)->projection()->precision(), fb::Precision::F32);
  EXPECT_EQ(TensorNamed(m, "emb.item_id.weight")->type(), fb::DType::INT8);
  // And it scores.
  auto reqs = io::ReadRequestsFile(*loaded.value(), c->dir.file("req.jsonl"));
  ASSERT_TRUE(reqs.ok()) << reqs.status().ToString();
  auto scores = ScoreAll(loaded.value(), reqs.value());
  ASSERT_TRUE(scores.ok()) << scores.status().ToString();
  for (const Scores& s : scores.value()) {
    for (float p : s.probabilities) ASSERT_TRUE(p >= 0.f && p <= 1.f);
  }
}

TEST(Int8, MeasuredDecisionsAndReport) {
  ConvertOptions o;
  o.int8 = true;
  TempDir rep;
  o.report = rep.file("report.json");
  auto c = ConvertWith(kPleConfig, o, 6, 24, 7);
  ASSERT_FALSE(c->model.empty());
  const fb::Model* m = Fb(c->model);
  ASSERT_NE(m->decisions(), nullptr);
  EXPECT_EQ(m->decisions()->size(), 29u);
  // Each decision agrees with the layer it names and gives a measured reason.
  std::map<std::string, fb::Precision> prec;
  for (const fb::Block* b : *m->tim_blocks()) {
    for (const fb::Linear* l : {b->attn_in(), b->attn_out(), b->ffn1(), b->ffn2()})
      prec[l->name()->str()] = l->precision();
  }
  for (const fb::Mlp* mlp : *m->experts()) {
    for (const fb::Linear* l : *mlp->layers()) prec[l->name()->str()] = l->precision();
  }
  for (const fb::LayerDecision* d : *m->decisions()) {
    const std::string r = d->reason()->str();
    EXPECT_NE(r.find("dB"), std::string::npos) << r;
    if (prec.count(d->layer()->str())) EXPECT_EQ(prec[d->layer()->str()], d->precision()) << d->layer()->str();
    EXPECT_EQ(r.rfind(d->precision() == fb::Precision::INT8 ? "int8:" : "f32:", 0), 0u) << r;
  }
  json j = json::parse(ReadText(o.report));
  EXPECT_EQ(j["precision"], "int8");
  EXPECT_EQ(j["embeddings"], "int8");
  EXPECT_EQ(j["output_bytes"].get<uint64_t>(), c->model.size());
  EXPECT_EQ(j["comparison"]["requests"], 24);
  EXPECT_EQ(j["comparison"]["candidates"], 24 * 7);
  EXPECT_EQ(j["comparison"]["tasks"].size(), 2u);
  EXPECT_TRUE(j["comparison"]["tasks"][0]["auc_f32"].is_number()) << "labels present: AUC computed";
  EXPECT_GE(j["comparison"]["mean_abs_dp"].get<double>(), 0.0);
  EXPECT_LE(j["comparison"]["mean_abs_dp"].get<double>(), j["comparison"]["max_abs_dp"].get<double>());
  EXPECT_EQ(j["layers"].size(), 29u);
  EXPECT_NE(c->log.find("int8 vs f32 on 24 requests"), std::string::npos) << c->log;
}

TEST(Int8, QuantizeLinearOnceAndOnlyOnce) {
  ModelConfig c = MustParse(kTowersConfig);
  std::vector<uint8_t> ck = RandomCheckpoint(kTowersConfig, 2);
  auto st = ParseSafeTensors(ck.data(), ck.size());
  auto d = BuildF32Desc(c, st.value());
  ASSERT_TRUE(d.ok());
  LinearDesc* l = d->FindLinear("towers.0.0");
  ASSERT_NE(l, nullptr);
  EXPECT_TRUE(QuantizeLinear(&d.value(), l).ok());
  EXPECT_EQ(l->precision, fb::Precision::INT8);
  EXPECT_EQ(d->tensors[l->bias].type, fb::DType::F32) << "the bias stays f32";
  Status again = QuantizeLinear(&d.value(), l);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.message().find("already int8"), std::string::npos) << again.message();
}

TEST(Int8, EqualizationIsExactInF32) {
  ModelConfig c = MustParse(kPleConfig);
  std::vector<uint8_t> ck = RandomCheckpoint(kPleConfig, 9);
  auto st = ParseSafeTensors(ck.data(), ck.size());
  auto d = BuildF32Desc(c, st.value());
  ASSERT_TRUE(d.ok());
  FieldScaling s;
  s.exponent = {3, -2, 1, 0, 0, -4, 5};  // fields; item_id's table must stay 0
  ModelDesc eq = d.value();
  ASSERT_TRUE(ApplyFieldScaling(&eq, s).ok());
  EXPECT_NE(TensorFloats(eq.tensors[eq.table_weight[0]])[0], TensorFloats(d->tensors[d->table_weight[0]])[0]);
  auto b0 = SerializeDtrn(d.value()), b1 = SerializeDtrn(eq);
  auto m0 = Model::FromBuffer(b0->data(), b0->size()), m1 = Model::FromBuffer(b1->data(), b1->size());
  ASSERT_TRUE(m0.ok() && m1.ok());
  TempDir dir;
  dtrn::testing::WriteFile(dir.file("r.jsonl"), RandomRequests(c, 10, 5, 4));
  auto reqs = io::ReadRequestsFile(*m0.value(), dir.file("r.jsonl"));
  ASSERT_TRUE(reqs.ok()) << reqs.status().ToString();
  auto s0 = ScoreAll(m0.value(), reqs.value()), s1 = ScoreAll(m1.value(), reqs.value());
  ASSERT_TRUE(s0.ok() && s1.ok());
  for (size_t r = 0; r < s0->size(); ++r) {
    EXPECT_EQ((*s0)[r].logits, (*s1)[r].logits) << "power-of-two rescaling must be bit-exact (request " << r << ")";
  }
  // And the chooser never touches item_id's table and lowers its own noise estimate.
  TempDir dir2;
  auto cal = Calibrate(m0.value(), reqs.value(), 0, nullptr, true);
  ASSERT_TRUE(cal.ok());
  FieldScaling chosen = ChooseFieldScaling(d.value(), cal.value());
  EXPECT_EQ(chosen.exponent[3], 0);
  EXPECT_EQ(chosen.exponent[4], 0);
  EXPECT_LE(chosen.error_after, chosen.error_before);
}

// ---------------------------------------------------------------- failures: atomic, exit codes

TEST(AtomicWrite, FailedRenameLeavesNothing) {
  TempDir dir;
  std::filesystem::create_directory(dir.file("target"));
  dtrn::testing::WriteFile(dir.file("target/x"), "x");  // a non-empty directory cannot be replaced by a file
  Status s = WriteFileAtomic(dir.file("target"), std::vector<uint8_t>(100, 1));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIo);
  EXPECT_EQ(DirEntries(dir.path()), std::vector<std::string>{"target"}) << "no temporary file left behind";
  EXPECT_FALSE(WriteFileAtomic(dir.file("no/such/dir/m.dtrn"), {1, 2}).ok());
  ASSERT_TRUE(WriteFileAtomic(dir.file("ok.bin"), {1, 2, 3}).ok());
  EXPECT_EQ(dtrn::testing::ReadFile(dir.file("ok.bin")), std::string("\x01\x02\x03"));
  ASSERT_TRUE(WriteFileAtomic(dir.file("ok.bin"), {4}).ok()) << "replaces an existing file";
  EXPECT_EQ(dtrn::testing::ReadFile(dir.file("ok.bin")), std::string("\x04"));
}

TEST(AtomicWrite, FailedConversionLeavesNoFile) {
  TempDir dir;
  std::vector<uint8_t> ck = RandomCheckpoint(kPleConfig, 1);
  auto convert = [&](const std::vector<uint8_t>& bytes, ConvertOptions o = ConvertOptions()) {
    WriteBytes(dir.file("ck.safetensors"), bytes);
    o.checkpoint = dir.file("ck.safetensors");
    o.output = dir.file("out.dtrn");
    o.verbose = false;
    std::ostringstream log;
    return Convert(o, log).status();
  };
  std::vector<uint8_t> truncated(ck.begin(), ck.begin() + ck.size() / 2);
  EXPECT_EQ(convert(truncated).code(), StatusCode::kDataLoss);
  EXPECT_FALSE(dtrn::testing::FileExists(dir.file("out.dtrn")));
  // A failure after the model is built (bad calibration requests) must leave nothing either.
  dtrn::testing::WriteFile(dir.file("bad.jsonl"), "{\"id\": 1}\n");
  ConvertOptions o;
  o.int8 = true;
  o.calibration = dir.file("bad.jsonl");
  Status s = convert(ck, o);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--calibration"), std::string::npos) << s.message();
  EXPECT_FALSE(dtrn::testing::FileExists(dir.file("out.dtrn")));
  for (const std::string& e : DirEntries(dir.path())) EXPECT_EQ(e.find(".tmp-"), std::string::npos) << e;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    conv_ = dtrn::testing::ToolPath("dtrn-convert");
    insp_ = dtrn::testing::ToolPath("dtrn-inspect");
    if (!dtrn::testing::FileExists(conv_)) GTEST_SKIP() << "dtrn-convert not built";
    ck_ = RandomCheckpoint(kPleConfig, 1);
  }
  int Run(const std::string& args, std::string* out = nullptr) {
    return dtrn::testing::RunCommand(conv_ + " " + args, out);
  }
  // Converts `bytes`; expects exit code 2, a message naming `needle`, and no output file.
  void ExpectBadInput(const std::vector<uint8_t>& bytes, const std::string& needle) {
    WriteBytes(dir_.file("in.safetensors"), bytes);
    std::string out;
    EXPECT_EQ(Run("--checkpoint " + dir_.file("in.safetensors") + " --output " + dir_.file("o.dtrn"), &out), 2) << out;
    EXPECT_NE(out.find(needle), std::string::npos) << out;
    EXPECT_FALSE(dtrn::testing::FileExists(dir_.file("o.dtrn")));
  }
  TempDir dir_;
  std::string conv_, insp_;
  std::vector<uint8_t> ck_;
};

TEST_F(Cli, ExitCode2OnBadInput) {
  ExpectBadInput(std::vector<uint8_t>(ck_.begin(), ck_.begin() + 1000), "safetensors");
  ExpectBadInput(std::vector<uint8_t>(ck_.begin(), ck_.begin() + 3), "shorter than the 8-byte header");
  std::vector<uint8_t> lying = ck_;
  lying[0] ^= 0x10;  // header length now lies
  ExpectBadInput(lying, "safetensors");
  std::vector<uint8_t> nan = ck_;
  const float qnan = NAN;
  std::memcpy(nan.data() + nan.size() - 8, &qnan, 4);
  ExpectBadInput(nan, "non-finite value");
  json bad_cfg = json::parse(kPleConfig);
  bad_cfg["heads"] = 3;
  auto st = ParseSafeTensors(ck_.data(), ck_.size());
  std::vector<StWriteTensor> ts;
  for (const auto& kv : st->tensors) ts.push_back({kv.first, kv.second.shape, st->Floats(kv.second)});
  ExpectBadInput(SerializeSafeTensors(ts, {{"dtrn_config", bad_cfg.dump()}, {"dtrn_format", "1"}}), "'heads'");
  ts.pop_back();
  ExpectBadInput(SerializeSafeTensors(ts, {{"dtrn_config", kPleConfig}, {"dtrn_format", "1"}}), "is missing");
  std::string out;
  EXPECT_EQ(Run("--checkpoint " + dir_.file("nope.safetensors") + " --output " + dir_.file("o.dtrn"), &out), 2) << out;
  EXPECT_NE(out.find("cannot open checkpoint"), std::string::npos) << out;
}

TEST_F(Cli, FlagsHelpAndInt8NeedsCalibration) {
  std::string out;
  EXPECT_EQ(Run("--help", &out), 0);
  EXPECT_NE(out.find("--int8-layers"), std::string::npos);
  EXPECT_NE(out.find("default: f32 with --precision f32"), std::string::npos);
  EXPECT_EQ(Run("--bogus", &out), 2);
  EXPECT_EQ(Run("--checkpoint x", &out), 2);
  EXPECT_NE(out.find("--output is required"), std::string::npos);
  EXPECT_EQ(Run("--checkpoint a --output b --precision int4", &out), 2);
  EXPECT_EQ(Run("--checkpoint a --output b --embeddings f8", &out), 2);
  WriteBytes(dir_.file("ck.safetensors"), ck_);
  EXPECT_EQ(
      Run("--checkpoint " + dir_.file("ck.safetensors") + " --output " + dir_.file("o.dtrn") + " --precision int8",
          &out),
      2);
  EXPECT_NE(out.find("--precision int8 needs --calibration"), std::string::npos) << out;
  EXPECT_FALSE(dtrn::testing::FileExists(dir_.file("o.dtrn")));
}

TEST_F(Cli, ConvertThenInspect) {
  WriteBytes(dir_.file("ck.safetensors"), ck_);
  std::string out;
  ASSERT_EQ(
      Run("--checkpoint=" + dir_.file("ck.safetensors") + " --output=" + dir_.file("o.dtrn") + " --embeddings f16",
          &out),
      0)
      << out;
  EXPECT_NE(out.find("reading checkpoint"), std::string::npos) << "progress output";
  ASSERT_EQ(dtrn::testing::RunCommand(insp_ + " " + dir_.file("o.dtrn"), &out), 0) << out;
  EXPECT_NE(out.find("checksum: ok"), std::string::npos) << out;
  EXPECT_NE(out.find("F16"), std::string::npos) << out;
  std::vector<uint8_t> m = ReadBytes(dir_.file("o.dtrn"));
  m[m.size() - 1] ^= 1;
  WriteBytes(dir_.file("bad.dtrn"), m);
  EXPECT_EQ(dtrn::testing::RunCommand(insp_ + " " + dir_.file("bad.dtrn"), &out), 2) << out;
  EXPECT_NE(out.find("MISMATCH"), std::string::npos) << out;
  EXPECT_EQ(dtrn::testing::RunCommand(insp_ + " " + dir_.file("missing.dtrn"), &out), 2) << out;
  EXPECT_EQ(dtrn::testing::RunCommand(insp_ + " --help", &out), 0) << out;
}

}  // namespace
}  // namespace dtrn::convert
