#include "synthetic.h"

#include <cmath>

#include "checkpoint_check.h"
#include "config.h"
#include "safetensors_write.h"

namespace dtrn::convert {
namespace {

struct Workload {
  const char* name;
  const char* config;
};

// reference/configs/{small,standard,large}.json
const Workload kWorkloads[] = {
    {"small",
     R"({"name": "small", "d": 16, "tasks": ["click", "purchase"], "behaviors": ["click", "cart", "purchase"], "L": 20, "blocks": 1, "heads": 2, "d_ff": 32, "fields": [{"name": "user_id", "group": "user", "kind": "sparse", "vocab": 1000, "hashed": true}, {"name": "user_segment", "group": "user", "kind": "sparse", "vocab": 1000}, {"name": "user_profile", "group": "user", "kind": "dense", "width": 4}, {"name": "hour", "group": "context", "kind": "sparse", "vocab": 1000}, {"name": "item_id", "group": "item", "kind": "sparse", "vocab": 10000, "hashed": true}, {"name": "category", "group": "item", "kind": "sparse", "vocab": 1000}, {"name": "item_stats", "group": "item", "kind": "dense", "width": 3}], "pooling": "target", "mtl": "mmoe", "experts": {"shared": 3, "per_task": 0, "hidden": [64]}, "towers": [32]})"},
    {"standard",
     R"({"name": "standard", "d": 32, "tasks": ["click", "cart", "purchase"], "behaviors": ["click", "cart", "purchase"], "L": 50, "blocks": 1, "heads": 2, "d_ff": 64, "fields": [{"name": "user_id", "group": "user", "kind": "sparse", "vocab": 1000, "hashed": true}, {"name": "user_segment", "group": "user", "kind": "sparse", "vocab": 1000}, {"name": "user_city", "group": "user", "kind": "sparse", "vocab": 1000, "hashed": true}, {"name": "user_profile", "group": "user", "kind": "dense", "width": 8}, {"name": "hour", "group": "context", "kind": "sparse", "vocab": 1000}, {"name": "device", "group": "context", "kind": "sparse", "vocab": 1000}, {"name": "item_id", "group": "item", "kind": "sparse", "vocab": 100000, "hashed": true}, {"name": "category", "group": "item", "kind": "sparse", "vocab": 1000}, {"name": "brand", "group": "item", "kind": "sparse", "vocab": 1000, "hashed": true}, {"name": "item_stats", "group": "item", "kind": "dense", "width": 4}], "pooling": "target", "mtl": "mmoe", "experts": {"shared": 4, "per_task": 0, "hidden": [256, 128]}, "towers": [64, 32]})"},
    {"large",
     R"({"name": "large", "d": 64, "tasks": ["click", "cart", "fav", "purchase"], "behaviors": ["click", "cart", "fav", "purchase"], "L": 100, "blocks": 2, "heads": 4, "d_ff": 128, "fields": [{"name": "user_id", "group": "user", "kind": "sparse", "vocab": 1000, "hashed": true}, {"name": "user_segment", "group": "user", "kind": "sparse", "vocab": 1000}, {"name": "user_city", "group": "user", "kind": "sparse", "vocab": 1000, "hashed": true}, {"name": "user_age", "group": "user", "kind": "sparse", "vocab": 1000}, {"name": "user_gender", "group": "user", "kind": "sparse", "vocab": 1000}, {"name": "user_profile", "group": "user", "kind": "dense", "width": 16}, {"name": "hour", "group": "context", "kind": "sparse", "vocab": 1000}, {"name": "device", "group": "context", "kind": "sparse", "vocab": 1000}, {"name": "item_id", "group": "item", "kind": "sparse", "vocab": 1000000, "hashed": true}, {"name": "category", "group": "item", "kind": "sparse", "vocab": 1000}, {"name": "brand", "group": "item", "kind": "sparse", "vocab": 1000, "hashed": true}, {"name": "shop", "group": "item", "kind": "sparse", "vocab": 1000, "hashed": true}, {"name": "price_bucket", "group": "item", "kind": "sparse", "vocab": 1000}, {"name": "item_stats", "group": "item", "kind": "dense", "width": 8}], "pooling": "target", "mtl": "ple", "experts": {"shared": 2, "per_task": 2, "hidden": [512, 256]}, "towers": [128, 64]})"},
};

}  // namespace

std::vector<std::string> WorkloadNames() {
  std::vector<std::string> v;
  for (const Workload& w : kWorkloads) v.push_back(w.name);
  return v;
}

Result<std::string> WorkloadConfig(const std::string& name) {
  for (const Workload& w : kWorkloads)
    if (name == w.name) return std::string(w.config);
  return InvalidArgument("unknown workload '" + name + "' (the spec's: small, standard, large)");
}

Result<std::vector<uint8_t>> SyntheticCheckpoint(const std::string& config_json, uint64_t seed) {
  DTRN_ASSIGN_OR_RETURN(ModelConfig c, ParseConfig(config_json));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<StWriteTensor> ts;
  for (const auto& [name, shape] : ExpectedTensors(c)) {
    size_t n = 1;
    for (int64_t s : shape) n *= static_cast<size_t>(s);
    StWriteTensor t{name, shape, std::vector<float>(n)};
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    float scale;
    if (name.rfind("emb.", 0) == 0) {
      scale = 0.1f;
    } else if (name == "tim.pos") {
      scale = 0.03f;
    } else if (name.rfind("tim.hyper.fc2", 0) == 0 || name.rfind("trm.", 0) == 0) {
      scale = bias ? 0.02f : 0.05f;  // near identity: gamma ~ 1, beta ~ 0, a ~ 1
    } else if (bias) {
      scale = 0.02f;
    } else if (shape.size() == 2) {
      scale = std::sqrt(2.f / static_cast<float>(shape[0] + shape[1]));  // Xavier normal
    } else {
      scale = 0.3f;  // task / behaviour embeddings of the hypernetwork
    }
    for (float& v : t.values) v = nd(rng) * scale;
    ts.push_back(std::move(t));
  }
  return SerializeSafeTensors(ts, {{"dtrn_config", config_json}, {"dtrn_format", "1"}});
}

std::vector<Request> SyntheticRequests(const Model& model, size_t count, size_t candidates, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  const std::vector<FieldInfo>& fields = model.fields();
  auto value = [&](const FieldInfo& f) {
    FieldValue v;
    if (f.kind == FieldKind::kSparse) {
      v.id = f.hashed ? static_cast<int64_t>(rng()) : static_cast<int64_t>(rng() % static_cast<uint64_t>(f.vocab));
    } else {
      for (int i = 0; i < f.width; ++i) v.dense.push_back(nd(rng));
    }
    return v;
  };
  const size_t B = model.behaviors().size();
  const int L = model.seq_len();
  const FieldInfo& item = fields[model.group_fields(FieldGroup::kItem)[0]];
  std::vector<Request> out;
  for (size_t r = 0; r < count; ++r) {
    Request q;
    q.id = "synthetic-" + std::to_string(r);
    for (int i : model.group_fields(FieldGroup::kUser)) q.user.push_back(value(fields[i]));
    for (int i : model.group_fields(FieldGroup::kContext)) q.context.push_back(value(fields[i]));
    for (size_t b = 0; b < B; ++b) {
      const double depth = B > 1 ? static_cast<double>(b) / (B - 1) : 0.0;
      const size_t n_max = std::max<size_t>(1, static_cast<size_t>(std::lround(L * (1.0 - 0.7 * depth))));
      const size_t len = rng() % (n_max + 1);
      std::vector<int64_t> seq;
      std::vector<std::vector<int64_t>> side(model.seq_fields().size());
      for (size_t j = 0; j < len; ++j) {
        seq.push_back(value(item).id);
        for (size_t f = 0; f < side.size(); ++f) side[f].push_back(value(fields[model.seq_fields()[f]]).id);
      }
      q.behaviors.push_back(std::move(seq));
      if (!side.empty()) q.behavior_side_ids.push_back(std::move(side));
    }
    for (size_t c = 0; c < candidates; ++c) {
      std::vector<FieldValue> cand;
      for (int i : model.group_fields(FieldGroup::kItem)) cand.push_back(value(fields[i]));
      q.candidates.push_back(std::move(cand));
    }
    out.push_back(std::move(q));
  }
  return out;
}

}  // namespace dtrn::convert
