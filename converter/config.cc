#include "config.h"

#include <algorithm>

#include <map>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

namespace dtrn::convert {
namespace {

using json = nlohmann::json;

Status Bad(const std::string& key, const std::string& what) {
  return InvalidArgument("config key '" + key + "': " + what);
}

Result<int64_t> Int(const json& v, const std::string& key, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) return Bad(key, "expected an integer, got " + v.dump());
  const bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(hi) &&
                                                     static_cast<int64_t>(v.get<uint64_t>()) >= lo
                                               : v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
  if (!in_range) {
    return Bad(key, v.dump() + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return v.get<int64_t>();
}

Result<int> SmallInt(const json& v, const std::string& key, int64_t lo, int64_t hi) {
  DTRN_ASSIGN_OR_RETURN(int64_t x, Int(v, key, lo, hi));
  return static_cast<int>(x);
}

// Names become tensor-name components (emb.<table>.weight): no dots, no spaces.
Result<std::string> Name(const json& v, const std::string& key) {
  static const std::regex re("^[A-Za-z_][A-Za-z0-9_]*$");
  if (!v.is_string() || !std::regex_match(v.get<std::string>(), re)) {
    return Bad(key, "expected a name matching [A-Za-z_][A-Za-z0-9_]*, got " + v.dump());
  }
  return v.get<std::string>();
}

Result<std::vector<std::string>> Names(const json& v, const std::string& key) {
  if (!v.is_array() || v.empty()) return Bad(key, "expected a non-empty array of names");
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string k = key + "[" + std::to_string(i) + "]";
    DTRN_ASSIGN_OR_RETURN(std::string s, Name(v[i], k));
    if (!seen.insert(s).second) return Bad(k, "duplicate name '" + s + "'");
    out.push_back(s);
  }
  return out;
}

Result<std::vector<int>> Widths(const json& v, const std::string& key, bool allow_empty) {
  if (!v.is_array() || (v.empty() && !allow_empty)) {
    return Bad(key, std::string("expected ") + (allow_empty ? "an" : "a non-empty") + " array of layer widths");
  }
  std::vector<int> out;
  for (size_t i = 0; i < v.size(); ++i) {
    DTRN_ASSIGN_OR_RETURN(int w, SmallInt(v[i], key + "[" + std::to_string(i) + "]", 1, 1 << 20));
    out.push_back(w);
  }
  return out;
}

Status CheckKeys(const json& obj, const std::set<std::string>& allowed, const std::string& where) {
  if (!obj.is_object()) return Bad(where, "expected an object");
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!allowed.count(it.key())) return Bad(where.empty() ? it.key() : where + "." + it.key(), "unknown key");
  }
  return Status::Ok();
}

Result<FieldConfig> ParseField(const json& f, size_t i, const std::set<std::string>& seen) {
  std::string where = "fields[" + std::to_string(i) + "]";
  if (!f.is_object()) return Bad(where, "expected an object");
  for (const char* req : {"name", "group", "kind"}) {
    if (!f.contains(req)) return Bad(where + "." + req, "missing");
  }
  FieldConfig out;
  DTRN_ASSIGN_OR_RETURN(out.name, Name(f["name"], where + ".name"));
  where += " ('" + out.name + "')";
  if (seen.count(out.name)) return Bad(where + ".name", "duplicate field name '" + out.name + "'");
  const json& g = f["group"];
  if (g == "user")
    out.group = FieldGroup::kUser;
  else if (g == "context")
    out.group = FieldGroup::kContext;
  else if (g == "item")
    out.group = FieldGroup::kItem;
  else
    return Bad(where + ".group", "expected one of user, context, item, got " + g.dump());
  const json& kd = f["kind"];
  if (kd == "sparse") {
    out.kind = FieldKind::kSparse;
    for (auto it = f.begin(); it != f.end(); ++it) {
      static const std::set<std::string> keys = {"name", "group", "kind", "table", "vocab", "hashed"};
      if (!keys.count(it.key())) {
        return Bad(where + "." + it.key(), it.key() == "width" ? "a sparse field has no width" : "unknown key");
      }
    }
    if (!f.contains("vocab")) return Bad(where + ".vocab", "missing (a sparse field needs its vocabulary size)");
    if (f.contains("table")) {
      DTRN_ASSIGN_OR_RETURN(out.table, Name(f["table"], where + ".table"));
    } else {
      out.table = out.name;
    }
    DTRN_ASSIGN_OR_RETURN(out.vocab, Int(f["vocab"], where + ".vocab", 1, int64_t{1} << 40));
    if (f.contains("hashed")) {
      if (!f["hashed"].is_boolean()) return Bad(where + ".hashed", "expected true or false");
      out.hashed = f["hashed"].get<bool>();
    }
  } else if (kd == "dense") {
    out.kind = FieldKind::kDense;
    for (auto it = f.begin(); it != f.end(); ++it) {
      static const std::set<std::string> keys = {"name", "group", "kind", "width"};
      if (!keys.count(it.key())) {
        bool table_key = it.key() == "table" || it.key() == "vocab" || it.key() == "hashed";
        return Bad(where + "." + it.key(), table_key ? "a dense field has no embedding table" : "unknown key");
      }
    }
    if (!f.contains("width")) return Bad(where + ".width", "missing (a dense field needs its width)");
    DTRN_ASSIGN_OR_RETURN(out.width, SmallInt(f["width"], where + ".width", 1, 1 << 20));
  } else {
    return Bad(where + ".kind", "expected one of sparse, dense, got " + kd.dump());
  }
  return out;
}

Status ParseExperts(const json* e, ModelConfig* c) {
  static const std::set<std::string> keys = {"shared", "per_task", "hidden"};
  if (c->mtl == Mtl::Towers) {
    if (!e) return Status::Ok();
    DTRN_RETURN_IF_ERROR(CheckKeys(*e, keys, "experts"));
    bool empty = (!e->contains("shared") || (*e)["shared"] == 0) &&
                 (!e->contains("per_task") || (*e)["per_task"] == 0) &&
                 (!e->contains("hidden") || ((*e)["hidden"].is_array() && (*e)["hidden"].empty()));
    if (!empty) return Bad("experts", "the 'towers' head has no experts (omit 'experts')");
    return Status::Ok();
  }
  const std::string head = c->mtl == Mtl::Mmoe ? "mmoe" : "ple";
  if (!e) return Bad("experts", "missing (the '" + head + "' head needs experts)");
  DTRN_RETURN_IF_ERROR(CheckKeys(*e, keys, "experts"));
  if (!e->contains("hidden")) return Bad("experts.hidden", "missing");
  if (e->contains("shared")) {
    DTRN_ASSIGN_OR_RETURN(c->experts_shared, SmallInt((*e)["shared"], "experts.shared", 0, 1024));
  }
  if (e->contains("per_task")) {
    DTRN_ASSIGN_OR_RETURN(c->experts_per_task, SmallInt((*e)["per_task"], "experts.per_task", 0, 1024));
  }
  if (c->mtl == Mtl::Mmoe) {
    if (c->experts_per_task != 0)
      return Bad("experts.per_task", "the 'mmoe' head has only shared experts (per_task must be 0)");
    if (c->experts_shared < 1) return Bad("experts.shared", "the 'mmoe' head needs at least one shared expert");
  } else if (c->experts_shared + c->experts_per_task < 1) {
    return Bad("experts", "the 'ple' head needs shared + per_task > 0");
  }
  DTRN_ASSIGN_OR_RETURN(c->expert_hidden, Widths((*e)["hidden"], "experts.hidden", false));
  return Status::Ok();
}

}  // namespace

int ModelConfig::num_experts() const {
  if (mtl == Mtl::Ple) return K() * experts_per_task + experts_shared;
  return mtl == Mtl::Mmoe ? experts_shared : 0;
}

std::vector<int> ModelConfig::gate_experts(int k) const {
  std::vector<int> out;
  if (mtl == Mtl::Mmoe) {
    for (int s = 0; s < experts_shared; ++s) out.push_back(s);
  } else if (mtl == Mtl::Ple) {
    for (int t = 0; t < experts_per_task; ++t) out.push_back(k * experts_per_task + t);
    for (int s = 0; s < experts_shared; ++s) out.push_back(K() * experts_per_task + s);
  }
  return out;
}

Result<ModelConfig> ParseConfig(const std::string& text) {
  std::string dup;
  // Detect duplicates with a key-set stack per object depth.
  std::vector<std::set<std::string>> stack;
  json::parser_callback_t dupcb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      stack.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!stack.empty()) stack.pop_back();
    } else if (event == json::parse_event_t::key && !stack.empty()) {
      std::string k = parsed.get<std::string>();
      if (!stack.back().insert(k).second && dup.empty()) dup = k;
    }
    (void)depth;
    return true;  // keep everything; duplicates are reported after parsing
  };
  json raw = json::parse(text, dupcb, /*allow_exceptions=*/false);
  if (raw.is_discarded()) return InvalidArgument("config: not valid JSON");
  if (!dup.empty()) return Bad(dup, "appears twice in one object");
  static const std::set<std::string> top = {
      "name",    "d",   "tasks",   "behaviors", "L",         "blocks",       "heads",      "d_ff",    "fields",
      "pooling", "mtl", "experts", "towers",    "hyper_dim", "hyper_hidden", "trm_hidden", "dropout", "seq_fields"};
  DTRN_RETURN_IF_ERROR(CheckKeys(raw, top, ""));
  for (const char* k : {"d", "tasks", "behaviors", "L", "blocks", "heads", "d_ff", "fields", "mtl", "towers"}) {
    if (!raw.contains(k)) return Bad(k, "missing");
  }
  ModelConfig c;
  if (raw.contains("name")) {
    if (!raw["name"].is_string()) return Bad("name", "expected a string");
    c.name = raw["name"].get<std::string>();
  }
  DTRN_ASSIGN_OR_RETURN(c.d, SmallInt(raw["d"], "d", 1, 1 << 16));
  DTRN_ASSIGN_OR_RETURN(c.tasks, Names(raw["tasks"], "tasks"));
  DTRN_ASSIGN_OR_RETURN(c.behaviors, Names(raw["behaviors"], "behaviors"));
  DTRN_ASSIGN_OR_RETURN(c.L, SmallInt(raw["L"], "L", 1, 1 << 20));
  DTRN_ASSIGN_OR_RETURN(c.blocks, SmallInt(raw["blocks"], "blocks", 1, 64));
  DTRN_ASSIGN_OR_RETURN(c.heads, SmallInt(raw["heads"], "heads", 1, c.d));
  if (c.d % c.heads != 0) {
    return Bad("heads", "d = " + std::to_string(c.d) + " is not divisible by heads = " + std::to_string(c.heads));
  }
  DTRN_ASSIGN_OR_RETURN(c.d_ff, SmallInt(raw["d_ff"], "d_ff", 1, 1 << 20));

  const json& fields = raw["fields"];
  if (!fields.is_array() || fields.empty()) return Bad("fields", "expected a non-empty array of field objects");
  std::set<std::string> seen;
  for (size_t i = 0; i < fields.size(); ++i) {
    DTRN_ASSIGN_OR_RETURN(FieldConfig f, ParseField(fields[i], i, seen));
    seen.insert(f.name);
    c.fields.push_back(std::move(f));
  }
  const FieldConfig* first_item = nullptr;
  for (const FieldConfig& f : c.fields) {
    if (f.group == FieldGroup::kItem) {
      first_item = &f;
      break;
    }
  }
  if (!first_item || first_item->name != "item_id") return Bad("fields", "the first item field must be 'item_id'");
  if (first_item->kind != FieldKind::kSparse) return Bad("fields ('item_id').kind", "item_id must be a sparse field");
  std::map<std::string, int> table_index;
  for (size_t i = 0; i < c.fields.size(); ++i) {
    FieldConfig& f = c.fields[i];
    if (f.kind != FieldKind::kSparse) continue;
    auto it = table_index.find(f.table);
    if (it == table_index.end()) {
      table_index[f.table] = static_cast<int>(c.tables.size());
      c.tables.push_back({f.table, f.vocab, f.hashed});
      f.table_index = static_cast<int>(c.tables.size()) - 1;
    } else {
      const TableConfig& t = c.tables[it->second];
      if (t.vocab != f.vocab || t.hashed != f.hashed) {
        return Bad("fields[" + std::to_string(i) + "] ('" + f.name + "').table",
                   "table '" + f.table + "' is shared with another field but vocab/hashed differ");
      }
      f.table_index = it->second;
    }
  }
  c.item_table = first_item->table_index;

  const json pooling = raw.contains("pooling") ? raw["pooling"] : json("target");
  if (!pooling.is_string() || !format::ParsePooling(pooling.get<std::string>(), &c.pooling))
    return Bad("pooling", "expected one of target, mean, got " + pooling.dump());
  const json& mtl = raw["mtl"];
  if (!mtl.is_string() || !format::ParseMtl(mtl.get<std::string>(), &c.mtl))
    return Bad("mtl", "expected one of towers, mmoe, ple, got " + mtl.dump());
  DTRN_RETURN_IF_ERROR(ParseExperts(raw.contains("experts") ? &raw["experts"] : nullptr, &c));
  DTRN_ASSIGN_OR_RETURN(c.towers, Widths(raw["towers"], "towers", true));

  c.hyper_dim = c.d;
  c.hyper_hidden = 2 * c.d;
  c.trm_hidden = (c.n() + 1) / 2;
  if (raw.contains("hyper_dim")) {
    DTRN_ASSIGN_OR_RETURN(c.hyper_dim, SmallInt(raw["hyper_dim"], "hyper_dim", 1, 1 << 16));
  }
  if (raw.contains("hyper_hidden")) {
    DTRN_ASSIGN_OR_RETURN(c.hyper_hidden, SmallInt(raw["hyper_hidden"], "hyper_hidden", 1, 1 << 16));
  }
  if (raw.contains("trm_hidden")) {
    DTRN_ASSIGN_OR_RETURN(c.trm_hidden, SmallInt(raw["trm_hidden"], "trm_hidden", 1, 1 << 16));
  }
  if (raw.contains("dropout")) {
    const json& dr = raw["dropout"];
    if (!dr.is_number() || !(dr.get<double>() >= 0.0 && dr.get<double>() < 1.0)) {
      return Bad("dropout", "expected a number in [0, 1), got " + dr.dump());
    }
    c.dropout = dr.get<double>();
  }
  // Item sparse fields (other than item_id) whose ids every behaviour event also carries.
  if (raw.contains("seq_fields")) {
    const json& sf = raw["seq_fields"];
    if (!sf.is_array()) return Bad("seq_fields", "expected an array of item field names, got " + sf.dump());
    for (size_t j = 0; j < sf.size(); ++j) {
      const std::string where = "seq_fields[" + std::to_string(j) + "]";
      if (!sf[j].is_string()) return Bad(where, "expected a field name, got " + sf[j].dump());
      const std::string name = sf[j].get<std::string>();
      const FieldConfig* f = nullptr;
      for (const FieldConfig& fc : c.fields)
        if (fc.name == name) f = &fc;
      if (f == nullptr) return Bad(where, "no field '" + name + "'");
      if (f->group != FieldGroup::kItem || f->kind != FieldKind::kSparse)
        return Bad(where, "'" + name + "' is not an item sparse field (seq_fields names item sparse fields)");
      if (name == "item_id") return Bad(where, "item_id is every event's own id; seq_fields names the others");
      if (std::find(c.seq_fields.begin(), c.seq_fields.end(), name) != c.seq_fields.end())
        return Bad(where, "'" + name + "' is listed twice");
      c.seq_fields.push_back(name);
    }
  }
  return c;
}

}  // namespace dtrn::convert
