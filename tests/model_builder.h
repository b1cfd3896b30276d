// Test-only: builds a random-weight .dtrn directly with the FlatBuffers API and the format
// library (no converter, no Python), and random requests for it. A library of its own
// (tests/CMakeLists.txt: dtrn_test_support), used by the GoogleTest suites.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "dtrn/runtime.h"
#include "dtrn_format.h"

namespace dtrn::testing {

struct TestField {
  std::string name;
  FieldGroup group = FieldGroup::kUser;
  FieldKind kind = FieldKind::kSparse;
  int64_t vocab = 0;    // sparse
  bool hashed = false;  // sparse
  int width = 0;        // dense
  std::string table;    // sparse; default: its own name
};

struct TestModelConfig {
  std::string name = "test";
  int d = 8;
  std::vector<std::string> tasks = {"click", "buy"};
  std::vector<std::string> behaviors = {"click", "cart", "buy"};
  int L = 6;
  int blocks = 2;
  int heads = 2;
  int d_ff = 16;
  std::vector<TestField> fields = {
      {"user_id", FieldGroup::kUser, FieldKind::kSparse, 50, true, 0, ""},
      {"user_segment", FieldGroup::kUser, FieldKind::kSparse, 7, false, 0, ""},
      {"user_profile", FieldGroup::kUser, FieldKind::kDense, 0, false, 3, ""},
      {"hour", FieldGroup::kContext, FieldKind::kSparse, 24, false, 0, ""},
      {"item_id", FieldGroup::kItem, FieldKind::kSparse, 40, false, 0, ""},
      {"category", FieldGroup::kItem, FieldKind::kSparse, 9, true, 0, ""},
      {"item_stats", FieldGroup::kItem, FieldKind::kDense, 0, false, 2, ""},
  };
  fb::Pooling pooling = fb::Pooling::Target;
  fb::Mtl mtl = fb::Mtl::Mmoe;
  int experts_shared = 2;
  int experts_per_task = 0;
  std::vector<int> expert_hidden = {16, 12};
  std::vector<int> tower_hidden = {8};
  int trm_hidden = 0;  // 0: ceil(n / 2)
  uint64_t seed = 1;
  fb::DType table_type = fb::DType::F32;             // F32, F16 or INT8 (per-row scales)
  bool int8_head = false;                            // experts, gates and towers as INT8 with fixed activation params
  uint32_t format_version = format::kFormatVersion;  // another value: the header says so (tests)
  std::vector<std::string> seq_fields;               // item sparse fields every behaviour event carries
};

// The .dtrn bytes of a random-weight model for `config` (deterministic in config.seed).
std::string BuildTestModel(const TestModelConfig& config);

// A random valid request for `model`: N candidates, behaviour lengths drawn in [0, max_len]
// (and, for models with seq_fields, side ids for every event).
Request RandomRequest(const Model& model, std::mt19937_64& rng, size_t N, size_t max_len, const std::string& id = "r");

}  // namespace dtrn::testing
