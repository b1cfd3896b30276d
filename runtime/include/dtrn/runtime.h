// dtrn-edge C++ API: load a .dtrn model once, make a Session per thread,
// score requests (one user, N candidates) into N x K probabilities.
//
//   auto model = dtrn::Model::Load("m.dtrn");            // mmap + verify
//   auto session = dtrn::Session::Create(*model, {});    // per thread
//   dtrn::Scores scores;
//   dtrn::Status st = (*session)->Score(request, &scores);
//   std::vector<int> order = dtrn::Rank(scores, request.weights);
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dtrn/status.h"

namespace dtrn {

namespace internal {
struct ModelAccess;  // the runtime's own view of a loaded model (runtime/src/model_impl.h)
}  // namespace internal

// "0.2.0": this library's version (the .dtrn format version is kFormatVersion in
// schema/dtrn_format.h; `dtrn-inspect --version` prints both).
const char* Version();
// The .dtrn format_version this library reads and writes.
unsigned FormatVersion();

enum class FieldGroup { kUser = 0, kContext = 1, kItem = 2 };
// "user", "context", "item": the group's key in a request.
const char* FieldGroupName(FieldGroup group);
enum class FieldKind { kSparse = 0, kDense = 1 };

struct FieldInfo {
  std::string name;
  FieldGroup group;
  FieldKind kind;
  int width = 0;        // dense only
  int64_t vocab = 0;    // sparse only
  bool hashed = false;  // sparse only
};

// One value of a field: a sparse id or a dense vector.
struct FieldValue {
  int64_t id = 0;
  std::vector<float> dense;
};

// One request, mapped one to one from docs/request-format.md. Field values are
// in the model's field order within each group (Model::fields() filtered by group).
struct Request {
  std::string id;
  std::vector<FieldValue> user;
  std::vector<FieldValue> context;
  std::vector<std::vector<int64_t>> behaviors;  // model behaviour order, oldest first
  // Only for models with seq_fields (spec: the item side ids every behaviour event carries):
  // [B][seq field][event], the same length as behaviors[b], in the model's seq_fields order.
  // Empty for models without seq_fields.
  std::vector<std::vector<std::vector<int64_t>>> behavior_side_ids;
  std::vector<std::vector<FieldValue>> candidates;  // N x item fields
  std::vector<std::vector<float>> labels;           // optional: N x K
  std::vector<float> weights;                       // optional: K (empty = all 1)
};

// N x K row-major.
struct Scores {
  size_t num_candidates = 0;
  size_t num_tasks = 0;
  std::vector<float> probabilities;
  std::vector<float> logits;
  float prob(size_t i, size_t k) const { return probabilities[i * num_tasks + k]; }
  float logit(size_t i, size_t k) const { return logits[i * num_tasks + k]; }
};

struct LoadOptions {
  // XXH3-64 over every byte after the header (FlatBuffer and constant segment): touches
  // the whole file. Turn it off only when the app verifies the file itself (a signature
  // over the download, say): the load then checks the header, the FlatBuffer's structure
  // and every semantic rule (bounds, overlaps, scales, enums), but a bit flip that keeps
  // the file consistent (a changed weight, a flipped flag) goes unnoticed.
  bool verify_checksum = true;
};

// Immutable after load; share one Model between all threads and sessions.
class Model {
 public:
  // Memory-maps and verifies the file (identifier, version, FlatBuffers verifier,
  // tensor bounds and shapes, checksum).
  static Result<std::shared_ptr<const Model>> Load(const std::string& path, LoadOptions options = {});
  // Same checks on bytes in memory (copied into an aligned buffer). For tests and fuzzing.
  static Result<std::shared_ptr<const Model>> FromBuffer(const void* data, size_t size, LoadOptions options = {});

  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::string& name() const;
  int d() const;
  int seq_len() const;
  const std::vector<std::string>& tasks() const;
  const std::vector<std::string>& behaviors() const;
  const std::vector<FieldInfo>& fields() const;  // config order
  // Indices into fields() of the given group, in config order.
  const std::vector<int>& group_fields(FieldGroup group) const;
  // Indices into fields() of the item fields every behaviour event also carries (spec
  // `seq_fields`), in the model's order; empty for most models.
  const std::vector<int>& seq_fields() const;
  bool has_int8_layers() const;
  size_t file_size() const;
  const std::string& producer() const;           // "dtrn-convert 0.2.0"
  const std::string& checkpoint_digest() const;  // "sha256:<hex>" of the source checkpoint, or ""

 private:
  struct Impl;
  friend struct internal::ModelAccess;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Sees every linear layer's output during f32 scoring (the converter's calibration).
class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  // layer: the Linear's name in the model; input rows x in_features; output rows x out_features
  // (after bias and relu when the layer has one).
  virtual void Observe(const std::string& layer, const float* input, size_t rows, size_t in_features,
                       const float* output, size_t out_features) = 0;
};

// Which int8 kernel a session's INT8 layers run on (F32 layers always run on XNNPACK).
// Every choice computes the same bits (int8_kernels.h); the choice is for speed, for A/B
// timing and for testing the paths a CPU at hand would not pick.
enum class DenseKernels {
  kAuto = 0,        // the best this CPU has: AVX-512 VNNI, ARM dot product, AVX2, else portable
  kPortable = 1,    // plain C++ (the reference)
  kAvx2 = 2,        // x86-64 AVX2 + FMA
  kAvx512Vnni = 3,  // x86-64 AVX-512 VNNI
  kNeonDot = 4,     // aarch64 ARMv8.2 dot product
};
// The name of a choice ("auto", "portable", "avx2", "avx512-vnni", "neon-dotprod"), and back.
const char* DenseKernelsName(DenseKernels k);
bool ParseDenseKernels(const std::string& name, DenseKernels* out);

struct SessionOptions {
  int threads = 1;  // intra-request threads (pthreadpool); 1 = caller's thread only
  // Slows scoring. With an observer every head layer runs whole (the per-request split of
  // the first expert/gate/tower layer is off), so Observe sees exactly each Linear's full
  // input and output.
  ActivationObserver* observer = nullptr;
  DenseKernels kernels = DenseKernels::kAuto;  // Session::Create fails if unavailable here
};

// Per-thread scoring state: XNNPACK operators, scratch memory. Not thread-safe;
// make one per thread. Reuses its memory across requests.
class Session {
 public:
  static Result<std::unique_ptr<Session>> Create(std::shared_ptr<const Model> model, SessionOptions options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Validates the request against the model and scores every candidate.
  Status Score(const Request& request, Scores* out);

  // The two stages, timeable on their own: Prepare runs everything that depends
  // on the user only (embeddings, conditional transformer); ScoreCandidates the
  // part batched over candidates. Score() = Prepare + ScoreCandidates.
  // Prepare validates everything but the candidates (user, context, behaviours, weights);
  // ScoreCandidates validates the candidates and scores them against the last successful
  // Prepare, which must have been given the same request (checked by id); it may run
  // several times per Prepare. Each id is checked and mapped to its row exactly once.
  Status Prepare(const Request& request);
  Status ScoreCandidates(const Request& request, Scores* out);

  const Model& model() const;

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Candidate indices by fused score sum_k w_k * p_k (summed in task order), best first,
// ties to the lower index. Empty weights = all 1. Errors on wrong count or non-finite weights.
Result<std::vector<int>> Rank(const Scores& scores, const std::vector<float>& weights);
Result<std::vector<int>> TopK(const Scores& scores, const std::vector<float>& weights, size_t k);

// splitmix64 as in the model spec (hashed tables).
uint64_t SplitMix64(uint64_t x);

// The fused score of candidate i: sum_k w_k * p_k in task order (empty weights = all 1),
// in float, as Rank orders by it. Callers check the weights first (Rank does).
float FusedScore(const Scores& scores, const std::vector<float>& weights, size_t i);

}  // namespace dtrn
