#include "checkpoint_check.h"

#include <set>

namespace dtrn::convert {
namespace {

std::string ShapeStr(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors(const ModelConfig& c) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> t;
  const int64_t d = c.d, K = c.K(), B = c.B(), n = c.n();
  auto linear = [&](const std::string& prefix, int64_t out, int64_t in) {
    t.push_back({prefix + ".weight", {out, in}});
    t.push_back({prefix + ".bias", {out}});
  };
  for (const TableConfig& tab : c.tables) t.push_back({"emb." + tab.name + ".weight", {tab.vocab, d}});
  for (const FieldConfig& f : c.fields) {
    if (f.kind == FieldKind::kDense) linear("dense." + f.name, d, f.width);
  }
  t.push_back({"tim.pos", {c.L, d}});
  t.push_back({"tim.hyper.task_emb", {K, c.hyper_dim}});
  t.push_back({"tim.hyper.behavior_emb", {B, c.hyper_dim}});
  linear("tim.hyper.fc1", c.hyper_hidden, 2 * int64_t{c.hyper_dim});
  linear("tim.hyper.fc2", int64_t{c.n_ln()} * 2 * d, c.hyper_hidden);
  for (int i = 0; i < c.blocks; ++i) {
    const std::string p = "tim.blocks." + std::to_string(i);
    t.push_back({p + ".attn.in_proj_weight", {3 * d, d}});
    t.push_back({p + ".attn.in_proj_bias", {3 * d}});
    linear(p + ".attn.out_proj", d, d);
    linear(p + ".ffn1", c.d_ff, d);
    linear(p + ".ffn2", d, c.d_ff);
  }
  if (c.pooling == Pooling::Target) linear("tim.query", d, d);
  for (int k = 0; k < K; ++k) {
    linear("trm." + std::to_string(k) + ".fc1", c.trm_hidden, n);
    linear("trm." + std::to_string(k) + ".fc2", n, c.trm_hidden);
  }
  for (int e = 0; e < c.num_experts(); ++e) {
    int64_t in = n * d;
    for (size_t j = 0; j < c.expert_hidden.size(); ++j) {
      linear("experts." + std::to_string(e) + "." + std::to_string(j), c.expert_hidden[j], in);
      in = c.expert_hidden[j];
    }
  }
  if (c.mtl != Mtl::Towers) {
    for (int k = 0; k < K; ++k) linear("gates." + std::to_string(k), c.gate_experts(k).size(), n * d);
  }
  for (int k = 0; k < K; ++k) {
    int64_t in = c.tower_input();
    for (size_t j = 0; j <= c.towers.size(); ++j) {
      int64_t out = j < c.towers.size() ? c.towers[j] : 1;
      linear("towers." + std::to_string(k) + "." + std::to_string(j), out, in);
      in = out;
    }
  }
  return t;
}

Status CheckCheckpoint(const ModelConfig& c, const SafeTensors& st) {
  std::set<std::string> expected;
  for (const auto& [name, shape] : ExpectedTensors(c)) {
    expected.insert(name);
    const StTensor* t = st.Find(name);
    if (!t)
      return NotFound("checkpoint: tensor '" + name + "' " + ShapeStr(shape) + " is missing (the config implies it)");
    if (t->shape != shape) {
      return InvalidArgument("checkpoint: tensor '" + name + "' has shape " + ShapeStr(t->shape) +
                             ", the config implies " + ShapeStr(shape));
    }
  }
  for (const auto& kv : st.tensors) {
    if (!expected.count(kv.first)) {
      return InvalidArgument("checkpoint: unexpected tensor '" + kv.first + "' " + ShapeStr(kv.second.shape) +
                             " (not implied by the config)");
    }
  }
  return Status::Ok();
}

Result<ModelConfig> ConfigFromCheckpoint(const SafeTensors& st) {
  auto fmt = st.metadata.find("dtrn_format");
  if (fmt == st.metadata.end())
    return InvalidArgument("checkpoint: metadata has no 'dtrn_format' (not a DTRN checkpoint?)");
  if (fmt->second != "1") {
    return Unimplemented("checkpoint: dtrn_format '" + fmt->second +
                         "' is not supported (this converter reads format 1)");
  }
  auto cfg = st.metadata.find("dtrn_config");
  if (cfg == st.metadata.end()) return InvalidArgument("checkpoint: metadata has no 'dtrn_config'");
  auto parsed = ParseConfig(cfg->second);
  if (!parsed.ok()) return Status(parsed.status().code(), "checkpoint dtrn_config: " + parsed.status().message());
  return parsed;
}

}  // namespace dtrn::convert
