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

// Candidates per tile: every stage is row-independent, so a tile only bounds the
// activations (a tile's whole way through TRM and the head stays in L1/L2) and is the unit
// of work of intra-request threads.
constexpr size_t kMaxTile = 32;

// One candidate-tile worker: its own components (operators and scratch); worker 0 also
// runs Prepare, whose per-request results the others read.
struct Worker {
  std::unique_ptr<FieldEmbeddings> embed;
  std::unique_ptr<Tim> tim;
  std::unique_ptr<Trm> trm;
  std::unique_ptr<MultiTaskHead> head;
  ChainScratch scratch;
  Buffer<float> logits;  // [tile, K]
  Status status;
};

struct Session::Impl {
  Impl(std::shared_ptr<const Model> model_ref, const SessionOptions& o)
      : model(std::move(model_ref)), m(ViewOf(*model)), opts(o) {}
  ~Impl() {
    if (pool) pthreadpool_destroy(pool);
  }

  Status Init();
  Status Prepare(const Request& r);
  Status ScoreCandidates(const Request& r, Scores* out);
  // Tiles t = w, w + W, w + 2W, ... of the current ScoreCandidates on worker w.
  void RunTiles(size_t w);

  std::shared_ptr<const Model> model;
  const ModelView& m;
  SessionOptions opts;
  pthreadpool_t pool = nullptr;
  std::unique_ptr<WeightCache> weights;  // packed int8 weights, shared by the workers
  std::vector<Worker> workers;

  MappedContext context;
  MappedCandidates candidates;
  bool prepared = false;
  std::string prepared_id;
  // The ScoreCandidates in flight.
  const Request* request = nullptr;
  Scores* scores = nullptr;
  size_t tile = 0, tiles = 0;
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
  DTRN_ASSIGN_OR_RETURN(const int8::Isa isa, ChooseIsa(opts.kernels));
  weights = std::make_unique<WeightCache>(isa);
  // An observer sees every layer in order, from one thread.
  const size_t n_workers = opts.observer ? 1 : static_cast<size_t>(opts.threads);
  workers.resize(n_workers);
  for (Worker& w : workers) {
    DTRN_ASSIGN_OR_RETURN(w.embed, FieldEmbeddings::Create(m, weights.get()));
    DTRN_ASSIGN_OR_RETURN(w.tim, Tim::Create(m, weights.get()));
    DTRN_ASSIGN_OR_RETURN(w.trm, Trm::Create(m, weights.get()));
    DTRN_ASSIGN_OR_RETURN(w.head, MultiTaskHead::Create(m, weights.get(), opts.observer != nullptr));
  }
  return Status::Ok();
}

// Stage 1: DTRN.bottom's user part, on worker 0 (its dense layers may use the pool).
Status Session::Impl::Prepare(const Request& r) {
  prepared = false;
  Worker& w0 = workers[0];
  const Exec x{pool, opts.observer, &w0.scratch};
  DTRN_RETURN_IF_ERROR(CheckContext(m, r, &context));
  DTRN_RETURN_IF_ERROR(w0.embed->EmbedUserContext(r, context, x));
  w0.head->PrepareRequest(*w0.embed);
  DTRN_RETURN_IF_ERROR(w0.tim->Prepare(context, x));
  for (size_t i = 1; i < workers.size(); ++i) {
    workers[i].embed->ShareRequest(*w0.embed);
    workers[i].tim->ShareRequest(*w0.tim);
    workers[i].head->ShareRequest(*w0.head);
  }
  prepared_id = r.id;
  prepared = true;
  return Status::Ok();
}

void Session::Impl::RunTiles(size_t wi) {
  Worker& w = workers[wi];
  const Exec x{workers.size() > 1 ? nullptr : pool, opts.observer, &w.scratch};
  const size_t N = candidates.n, K = m.K;
  w.status = Status::Ok();
  for (size_t t = wi; t < tiles; t += workers.size()) {
    const size_t c0 = t * tile, T = std::min(tile, N - c0);
    // Items -> interests -> a_k -> the head -> p, for candidates [c0, c0 + T).
    float* lt = w.logits.Reserve(T * K);
    if (lt == nullptr) {
      w.status = OutOfMemory("logits");
      return;
    }
    Status st = w.embed->EmbedItems(*request, candidates, c0, T, x);
    if (st.ok()) st = w.tim->Pool(T, *w.embed, x);
    if (st.ok()) st = w.trm->Run(T, *w.embed, *w.tim, x);
    if (st.ok()) st = w.head->Run(T, *w.embed, *w.tim, *w.trm, x, lt);
    if (!st.ok()) {
      w.status = st;
      return;
    }
    std::copy(lt, lt + T * K, scores->logits.begin() + c0 * K);
    kernels::SigmoidRows(T * K, lt, 1.f, scores->probabilities.data() + c0 * K);
  }
}

// Stage 2: the candidates, in tiles spread over the workers.
Status Session::Impl::ScoreCandidates(const Request& r, Scores* out) {
  if (out == nullptr) return InvalidArgument("ScoreCandidates: null output");
  if (!prepared) return InvalidArgument("request '" + r.id + "': ScoreCandidates before a successful Prepare");
  if (r.id != prepared_id)
    return InvalidArgument("request '" + r.id + "': ScoreCandidates on a different request than Prepare ('" +
                           prepared_id + "')");
  DTRN_RETURN_IF_ERROR(CheckCandidates(m, r, &candidates));
  const size_t N = candidates.n, K = m.K, W = workers.size();
  out->num_candidates = N;
  out->num_tasks = K;
  out->probabilities.resize(N * K);
  out->logits.resize(N * K);
  // Equal tiles, a multiple of the worker count when there is more than one.
  tiles = (N + kMaxTile - 1) / kMaxTile;
  if (W > 1) tiles = std::max(W, (tiles + W - 1) / W * W);
  tile = (N + tiles - 1) / tiles;
  tiles = (N + tile - 1) / tile;
  request = &r;
  scores = out;
  if (W > 1 && tiles > 1) {
    // No exception may leave a pool thread: a worker's failure is its status.
    auto run = [](void* self, size_t i) {
      Impl* impl = static_cast<Impl*>(self);
      try {
        impl->RunTiles(i);
      } catch (const std::bad_alloc&) {
        impl->workers[i].status = Internal("out of memory (candidate tile worker)");
      }
    };
    for (Worker& w : workers) w.status = Status::Ok();
    pthreadpool_parallelize_1d(pool, run, this, std::min(W, tiles), 0);
  } else {
    for (Worker& w : workers) w.status = Status::Ok();
    RunTiles(0);  // one worker, or one tile
  }
  for (const Worker& w : workers) DTRN_RETURN_IF_ERROR(w.status);
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
