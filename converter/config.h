// The model config (the checkpoint's `dtrn_config` metadata) as a typed struct,
// validated as strictly as reference/dtrn_ref/config.py: unknown or duplicate keys,
// wrong types, out-of-range sizes and contradictions are errors naming the key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dtrn/runtime.h"
#include "dtrn/status.h"
#include "dtrn_format.h"

namespace dtrn::convert {

struct FieldConfig {
  std::string name;
  FieldGroup group = FieldGroup::kUser;
  FieldKind kind = FieldKind::kSparse;
  std::string table;  // sparse
  int64_t vocab = 0;  // sparse
  bool hashed = false;
  int width = 0;         // dense
  int table_index = -1;  // sparse: index into ModelConfig::tables
};

struct TableConfig {
  std::string name;
  int64_t vocab = 0;
  bool hashed = false;
};

struct ModelConfig {
  std::string name;
  int d = 0;
  std::vector<std::string> tasks, behaviors;
  int L = 0, blocks = 0, heads = 0, d_ff = 0;
  std::vector<FieldConfig> fields;
  std::vector<TableConfig> tables;  // in order of first use by a field
  int item_table = -1;
  Pooling pooling = Pooling::Target;
  Mtl mtl = Mtl::Towers;
  int experts_shared = 0, experts_per_task = 0;
  std::vector<int> expert_hidden, towers;
  int hyper_dim = 0, hyper_hidden = 0, trm_hidden = 0;
  std::vector<std::string> seq_fields;  // item sparse fields every behaviour event carries
  double dropout = 0;

  int K() const { return static_cast<int>(tasks.size()); }
  int B() const { return static_cast<int>(behaviors.size()); }
  int n() const { return static_cast<int>(fields.size()) + B(); }  // TRM fields
  int n_ln() const { return 2 * blocks; }
  int num_experts() const;
  std::vector<int> gate_experts(int k) const;  // checkpoint expert indices, gate output order
  int tower_input() const { return mtl == Mtl::Towers ? n() * d : expert_hidden.back(); }
};

Result<ModelConfig> ParseConfig(const std::string& json_text);

}  // namespace dtrn::convert
