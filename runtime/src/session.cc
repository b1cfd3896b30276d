// Session: the DTRN graph (spec: shared/spec/dtrn-model.md) in two stages, as the
// reference's DTRN.bottom / DTRN.head read:
//   Prepare          once per request: check and map the user side, embed the user and
//                    context fields, run TIM's transformer (tim.h), the head's per-request
//                    products (head.h).
//   ScoreCandidates  per tile of candidates: check and map them, embed the item fields
//                    (embed.h), pool the interests (TIM), TRM's weights (trm.h), the head.
// Every component owns its activations; the session owns only the mapped request.
#include <xnnpack.h>

#include <algorithm>
#include <new>

#include "embed.h"
#include "head.h"
#include "kernels.h"
#include "model_impl.h"
#include "request_check.h"
#include "tim.h"
#include "trm.h"

namespace dtrn {

// Candidates scored together; every stage is row-independent, so the tile only bounds the
// activations' size.
constexpr size_t kTile = size_t{1} << 30;

struct Session::Impl {
  Impl(std::shared_ptr<const Model> model_ref, const SessionOptions& o)
      : model(std::move(model_ref)), m(ViewOf(*model)), opts(o) {}
  ~Impl() {
    if (pool) pthreadpool_destroy(pool);
  }

  Status Init();
  Status Prepare(const Request& r);
  Status ScoreCandidates(const Request& r, Scores* out);

  std::shared_ptr<const Model> model;
  const ModelView& m;
  SessionOptions opts;
  pthreadpool_t pool = nullptr;
  ChainScratch scratch;
  Exec exec;
  std::unique_ptr<WeightCache> weights;  // packed int8 weights

  std::unique_ptr<FieldEmbeddings> embed;
  std::unique_ptr<Tim> tim;
  std::unique_ptr<Trm> trm;
  std::unique_ptr<MultiTaskHead> head;

  MappedContext context;
  MappedCandidates candidates;
  Buffer<float> logits;  // [tile, K]
  bool prepared = false;
  std::string prepared_id;
};

Status Session::Impl::Init() {
  if (opts.threads < 1) return InvalidArgument("SessionOptions.threads = " + std::to_string(opts.threads) + " < 1");
  const xnn_status st = xnn_initialize(nullptr);
  if (st != xnn_status_success)
    return Internal("xnn_initialize failed (xnn_status " + std::to_string(static_cast<int>(st)) + ")");
  if (opts.threads > 1) {
    pool = pthreadpool_create(static_cast<size_t>(opts.threads));
    if (pool == nullptr) return Internal("pthreadpool_create(" + std::to_string(opts.threads) + ") failed");
  }
  exec = Exec{pool, opts.observer, &scratch};
  DTRN_ASSIGN_OR_RETURN(const int8::Isa isa, ChooseIsa(opts.kernels));
  weights = std::make_unique<WeightCache>(isa);
  DTRN_ASSIGN_OR_RETURN(embed, FieldEmbeddings::Create(m, weights.get()));
  DTRN_ASSIGN_OR_RETURN(tim, Tim::Create(m, weights.get()));
  DTRN_ASSIGN_OR_RETURN(trm, Trm::Create(m, weights.get()));
  DTRN_ASSIGN_OR_RETURN(head, MultiTaskHead::Create(m, weights.get(), opts.observer != nullptr));
  return Status::Ok();
}

// Stage 1: DTRN.bottom's user part.
Status Session::Impl::Prepare(const Request& r) {
  prepared = false;
  DTRN_RETURN_IF_ERROR(CheckContext(m, r, &context));
  DTRN_RETURN_IF_ERROR(embed->EmbedUserContext(r, context, exec));
  head->PrepareRequest(*embed);
  DTRN_RETURN_IF_ERROR(tim->Prepare(context, exec));
  prepared_id = r.id;
  prepared = true;
  return Status::Ok();
}

// Stage 2: the candidates, one tile at a time: items -> interests -> a_k -> head -> p.
Status Session::Impl::ScoreCandidates(const Request& r, Scores* out) {
  if (out == nullptr) return InvalidArgument("ScoreCandidates: null output");
  if (!prepared) return InvalidArgument("request '" + r.id + "': ScoreCandidates before a successful Prepare");
  if (r.id != prepared_id)
    return InvalidArgument("request '" + r.id + "': ScoreCandidates on a different request than Prepare ('" +
                           prepared_id + "')");
  DTRN_RETURN_IF_ERROR(CheckCandidates(m, r, &candidates));
  const size_t N = candidates.n, K = m.K;
  out->num_candidates = N;
  out->num_tasks = K;
  out->probabilities.resize(N * K);
  out->logits.resize(N * K);
  for (size_t c0 = 0; c0 < N; c0 += kTile) {
    const size_t T = std::min(kTile, N - c0);
    float* lt = logits.Reserve(T * K);
    if (lt == nullptr) return OutOfMemory("logits");
    DTRN_RETURN_IF_ERROR(embed->EmbedItems(r, candidates, c0, T, exec));
    DTRN_RETURN_IF_ERROR(tim->Pool(T, *embed, exec));
    DTRN_RETURN_IF_ERROR(trm->Run(T, *embed, *tim, exec));
    DTRN_RETURN_IF_ERROR(head->Run(T, *embed, *tim, *trm, exec, lt));
    for (size_t j = 0; j < T * K; ++j) {
      out->logits[c0 * K + j] = lt[j];
      out->probabilities[c0 * K + j] = kernels::Sigmoid(lt[j]);
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- API

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

Result<std::unique_ptr<Session>> Session::Create(std::shared_ptr<const Model> model, SessionOptions options) {
  if (!model) return InvalidArgument("Session::Create: null model");
  try {
    auto impl = std::make_unique<Impl>(std::move(model), options);
    DTRN_RETURN_IF_ERROR(impl->Init());
    return std::unique_ptr<Session>(new Session(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return Internal("Session::Create: out of memory");
  }
}

Status Session::Prepare(const Request& request) {
  try {
    return impl_->Prepare(request);
  } catch (const std::bad_alloc&) {
    impl_->prepared = false;
    return Internal("request '" + request.id + "': out of memory");
  }
}

Status Session::ScoreCandidates(const Request& request, Scores* out) {
  try {
    return impl_->ScoreCandidates(request, out);
  } catch (const std::bad_alloc&) {
    return Internal("request '" + request.id + "': out of memory");
  }
}

Status Session::Score(const Request& request, Scores* out) {
  if (out == nullptr) return InvalidArgument("Score: null output");
  DTRN_RETURN_IF_ERROR(Prepare(request));
  return ScoreCandidates(request, out);
}

const Model& Session::model() const { return *impl_->model; }

}  // namespace dtrn
