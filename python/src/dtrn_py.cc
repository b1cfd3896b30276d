// dtrn._dtrn: the nanobind module under the `dtrn` Python package (python/dtrn/__init__.py
// wraps it). It binds the C++ API (dtrn/runtime.h) and the JSON request parser
// (dtrn/io/requests.h), so a request given as a dict or a JSON line is read exactly as
// dtrn-run reads it, and its scores are the same bits.
//
// Errors: a non-ok dtrn::Status becomes a dtrn.Error subclass chosen by its StatusCode,
// carrying the runtime's message (and .code, the code's name). The GIL is released while a
// request is parsed and scored; one session serves one call at a time (a mutex), so two
// Python threads score concurrently with a session each.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dtrn/io/requests.h"
#include "dtrn/runtime.h"
#include "dtrn/status.h"

namespace nb = nanobind;

namespace {

// ---- errors ------------------------------------------------------------------------------------

struct StatusError {
  dtrn::Status status;
};
[[noreturn]] void Raise(dtrn::Status status) { throw StatusError{std::move(status)}; }
[[noreturn]] void Invalid(const std::string& message) { Raise(dtrn::InvalidArgument(message)); }

// dtrn.Error and one subclass per StatusCode (index = code), created at import.
PyObject* g_errors[7] = {};

void SetError(const dtrn::Status& st) {
  const int code = static_cast<int>(st.code());
  PyObject* cls = (code > 0 && code < 7 && g_errors[code]) ? g_errors[code] : g_errors[0];
  nb::object exc = nb::steal(PyObject_CallFunction(cls, "s", st.message().c_str()));
  if (!exc.is_valid()) return;  // the constructor raised: leave that error set
  nb::setattr(exc, "code", nb::str(dtrn::StatusCodeName(st.code())));
  PyErr_SetObject(cls, exc.ptr());
}

template <class T>
T Unwrap(dtrn::Result<T> r) {
  if (!r.ok()) Raise(r.status());
  return std::move(r).value();
}

// ---- numpy -------------------------------------------------------------------------------------

// A numpy array that owns `v` (moved to the heap, freed with the array).
template <class T>
nb::object ToNumpy(std::vector<T> v, std::initializer_list<size_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T>(heap->data(), shape, owner).cast();
}

using I64Vec = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using F32Vec = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using F32Mat = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

std::vector<int64_t> Ids(nb::handle h, const std::string& what) {
  I64Vec a;
  if (!nb::try_cast(h, a, false)) Invalid(what + ": expected a 1-D int64 array");
  return std::vector<int64_t>(a.data(), a.data() + a.shape(0));
}

nb::dict ScoresDict(const std::string& id, dtrn::Scores scores, const std::vector<float>& weights) {
  std::vector<int> order = Unwrap(dtrn::Rank(scores, weights));
  const size_t n = scores.num_candidates, k = scores.num_tasks;
  nb::dict d;
  d["id"] = id;
  d["probabilities"] = ToNumpy(std::move(scores.probabilities), {n, k});
  d["logits"] = ToNumpy(std::move(scores.logits), {n, k});
  d["order"] = ToNumpy(std::vector<int32_t>(order.begin(), order.end()), {n});
  return d;
}

// ---- model and session -------------------------------------------------------------------------

struct PyModel {
  std::shared_ptr<const dtrn::Model> model;
  std::string path;
};

const char* GroupName(dtrn::FieldGroup g) { return dtrn::FieldGroupName(g); }
const char* KindName(dtrn::FieldKind k) { return k == dtrn::FieldKind::kSparse ? "sparse" : "dense"; }

std::vector<std::string> Names(const dtrn::Model& m, const std::vector<int>& idx) {
  std::vector<std::string> out;
  for (int i : idx) out.push_back(m.fields()[i].name);
  return out;
}

struct PySession {
  std::shared_ptr<const dtrn::Model> model;
  std::unique_ptr<dtrn::Session> session;
  dtrn::io::RequestSchema schema;
  std::mutex mu;  // a Session is single-threaded

  dtrn::Scores Score(const dtrn::Request& request) {
    dtrn::Scores scores;
    dtrn::Status st;
    {
      nb::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu);
      st = session->Score(request, &scores);
    }
    if (!st.ok()) Raise(st);
    return scores;
  }

  // One JSON request line (docs/request-format.md), read by dtrn-run's parser.
  nb::dict ScoreJson(const std::string& line) {
    dtrn::Result<dtrn::Request> parsed = dtrn::InvalidArgument("unparsed");
    {
      nb::gil_scoped_release release;
      parsed = dtrn::io::ParseRequestJson(schema, line, 0);
    }
    dtrn::Request request = Unwrap(std::move(parsed));
    dtrn::Scores scores = Score(request);
    return ScoresDict(request.id, std::move(scores), request.weights);
  }

  // One field value of the user or context group: an int (sparse) or a float32 [w] array (dense).
  void GroupValues(const std::vector<dtrn::FieldInfo>& fields, nb::dict values, const char* group,
                   std::vector<dtrn::FieldValue>* out) {
    out->assign(fields.size(), {});
    size_t seen = 0;
    for (size_t i = 0; i < fields.size(); ++i) {
      const dtrn::FieldInfo& f = fields[i];
      const std::string where = std::string(group) + "['" + f.name + "']";
      if (!values.contains(f.name.c_str())) Invalid(std::string(group) + ": missing field '" + f.name + "'");
      nb::handle v = values[f.name.c_str()];
      ++seen;
      if (f.kind == dtrn::FieldKind::kSparse) {
        if (!nb::try_cast(v, (*out)[i].id, false)) Invalid(where + ": expected an int id");
      } else {
        F32Vec a;
        if (!nb::try_cast(v, a, false)) Invalid(where + ": expected a 1-D float32 array");
        if (a.shape(0) != static_cast<size_t>(f.width))
          Invalid(where + ": " + std::to_string(a.shape(0)) + " values, the field's width is " +
                  std::to_string(f.width));
        (*out)[i].dense.assign(a.data(), a.data() + a.shape(0));
      }
    }
    if (seen != nb::len(values)) {
      for (auto [key, value] : values) {
        std::string k = nb::cast<std::string>(nb::str(key));
        bool known = false;
        for (const auto& f : fields) known = known || f.name == k;
        if (!known) Invalid(std::string(group) + ": unknown field '" + k + "'");
      }
    }
  }

  // Arrays in, arrays out: see dtrn.Session.score_arrays (python/dtrn/__init__.py), which
  // brings every input to these dtypes and shapes first.
  nb::dict ScoreArrays(const std::string& id, nb::dict user, nb::dict context, nb::list behaviors, nb::list side_ids,
                       nb::dict candidates, nb::object weights) {
    dtrn::Request r;
    r.id = id;
    GroupValues(schema.user, user, "user", &r.user);
    GroupValues(schema.context, context, "context", &r.context);
    if (nb::len(behaviors) != schema.behaviors.size())
      Invalid("behaviors: " + std::to_string(nb::len(behaviors)) + " sequences, the model has " +
              std::to_string(schema.behaviors.size()) + " behaviour types");
    for (size_t b = 0; b < schema.behaviors.size(); ++b)
      r.behaviors.push_back(Ids(behaviors[b], "behaviors['" + schema.behaviors[b] + "']"));
    const size_t num_seq_fields = model->seq_fields().size();
    if (num_seq_fields > 0) {
      if (nb::len(side_ids) != schema.behaviors.size()) Invalid("side_ids: one list per behaviour type expected");
      for (size_t b = 0; b < schema.behaviors.size(); ++b) {
        nb::list per_field = nb::cast<nb::list>(side_ids[b]);
        if (nb::len(per_field) != num_seq_fields) Invalid("side_ids: one array per seq field expected");
        std::vector<std::vector<int64_t>> ids;
        for (size_t s = 0; s < num_seq_fields; ++s)
          ids.push_back(Ids(per_field[s], "side_ids['" + model->fields()[model->seq_fields()[s]].name + "']['" +
                                              schema.behaviors[b] + "']"));
        r.behavior_side_ids.push_back(std::move(ids));
      }
    } else if (nb::len(side_ids) != 0) {
      Invalid("side_ids: this model has no seq_fields");
    }

    // Candidates: one column per item field, [N] int64 ids or [N, w] float32.
    const auto& items = schema.item;
    size_t n = 0;
    bool have_n = false;
    std::vector<nb::handle> columns(items.size());
    for (size_t j = 0; j < items.size(); ++j) {
      if (!candidates.contains(items[j].name.c_str()))
        Invalid("candidates: missing item field '" + items[j].name + "'");
      columns[j] = candidates[items[j].name.c_str()];
    }
    if (nb::len(candidates) != items.size()) {
      for (auto [key, value] : candidates) {
        std::string k = nb::cast<std::string>(nb::str(key));
        bool known = false;
        for (const auto& f : items) known = known || f.name == k;
        if (!known) Invalid("candidates: unknown item field '" + k + "'");
      }
    }
    auto check_n = [&](size_t rows, const std::string& name) {
      if (!have_n) {
        n = rows;
        have_n = true;
      } else if (rows != n) {
        Invalid("candidates['" + name + "']: " + std::to_string(rows) + " rows, other columns have " +
                std::to_string(n));
      }
    };
    std::vector<I64Vec> sparse(items.size());
    std::vector<F32Mat> dense(items.size());
    for (size_t j = 0; j < items.size(); ++j) {
      const std::string where = "candidates['" + items[j].name + "']";
      if (items[j].kind == dtrn::FieldKind::kSparse) {
        if (!nb::try_cast(columns[j], sparse[j], false)) Invalid(where + ": expected a 1-D int64 array [N]");
        check_n(sparse[j].shape(0), items[j].name);
      } else {
        if (!nb::try_cast(columns[j], dense[j], false)) Invalid(where + ": expected a 2-D float32 array [N, w]");
        if (dense[j].shape(1) != static_cast<size_t>(items[j].width))
          Invalid(where + ": width " + std::to_string(dense[j].shape(1)) + ", the field's width is " +
                  std::to_string(items[j].width));
        check_n(dense[j].shape(0), items[j].name);
      }
    }
    if (!have_n || n == 0) Invalid("candidates: no candidates");
    r.candidates.assign(n, std::vector<dtrn::FieldValue>(items.size()));
    for (size_t j = 0; j < items.size(); ++j) {
      if (items[j].kind == dtrn::FieldKind::kSparse) {
        const int64_t* ids = sparse[j].data();
        for (size_t i = 0; i < n; ++i) r.candidates[i][j].id = ids[i];
      } else {
        const size_t w = dense[j].shape(1);
        const float* x = dense[j].data();
        for (size_t i = 0; i < n; ++i) r.candidates[i][j].dense.assign(x + i * w, x + (i + 1) * w);
      }
    }
    if (!weights.is_none()) {
      F32Vec w;
      if (!nb::try_cast(weights, w, false)) Invalid("weights: expected a 1-D float32 array");
      r.weights.assign(w.data(), w.data() + w.shape(0));
    }
    dtrn::Scores scores = Score(r);
    return ScoresDict(r.id, std::move(scores), r.weights);
  }
};

dtrn::Scores ScoresFrom(F32Mat probabilities) {
  dtrn::Scores s;
  s.num_candidates = probabilities.shape(0);
  s.num_tasks = probabilities.shape(1);
  s.probabilities.assign(probabilities.data(), probabilities.data() + s.num_candidates * s.num_tasks);
  return s;
}

}  // namespace

NB_MODULE(_dtrn, m) {
  m.doc() = "dtrn-edge runtime bindings (use the dtrn package, not this module)";

  // Exception classes: dtrn.Error, and per StatusCode a subclass that is also the matching
  // Python built-in (ValueError, LookupError, ...), so plain `except ValueError` works too.
  struct Spec {
    int code;
    const char* name;
    PyObject* builtin;
  };
  const Spec specs[] = {
      {1, "InvalidArgumentError", PyExc_ValueError}, {2, "NotFoundError", PyExc_LookupError},
      {3, "DataLossError", PyExc_ValueError},        {4, "UnimplementedError", PyExc_NotImplementedError},
      {5, "InternalError", PyExc_RuntimeError},      {6, "IoError", PyExc_OSError}};
  g_errors[0] = PyErr_NewExceptionWithDoc("dtrn.Error", "An error reported by the dtrn-edge runtime (.code: its name).",
                                          PyExc_Exception, nullptr);
  m.attr("Error") = nb::handle(g_errors[0]);
  for (const Spec& s : specs) {
    nb::object bases = nb::make_tuple(nb::handle(g_errors[0]), nb::handle(s.builtin));
    g_errors[s.code] = PyErr_NewException((std::string("dtrn.") + s.name).c_str(), bases.ptr(), nullptr);
    m.attr(s.name) = nb::handle(g_errors[s.code]);
  }
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const StatusError& e) {
      SetError(e.status);
    }
  });

  m.def(
      "version", [] { return std::string(dtrn::Version()); }, "The library version, e.g. '0.2.0'.");
  m.def(
      "format_version", [] { return dtrn::FormatVersion(); }, "The .dtrn format_version this library reads.");

  nb::class_<dtrn::FieldInfo>(m, "Field")
      .def_ro("name", &dtrn::FieldInfo::name)
      .def_prop_ro("group", [](const dtrn::FieldInfo& f) { return GroupName(f.group); })
      .def_prop_ro("kind", [](const dtrn::FieldInfo& f) { return KindName(f.kind); })
      .def_ro("width", &dtrn::FieldInfo::width)
      .def_ro("vocab", &dtrn::FieldInfo::vocab)
      .def_ro("hashed", &dtrn::FieldInfo::hashed)
      .def("__repr__", [](const dtrn::FieldInfo& f) {
        std::string s = "Field(" + f.name + ", " + GroupName(f.group) + ", " + KindName(f.kind);
        s += f.kind == dtrn::FieldKind::kDense ? ", width=" + std::to_string(f.width)
                                               : ", vocab=" + std::to_string(f.vocab) + (f.hashed ? ", hashed" : "");
        return s + ")";
      });

  nb::class_<PyModel>(m, "Model")
      .def_static(
          "load",
          [](const std::string& path, bool verify_checksum) {
            dtrn::LoadOptions o;
            o.verify_checksum = verify_checksum;
            dtrn::Result<std::shared_ptr<const dtrn::Model>> r = dtrn::Model::Load(path, o);
            return PyModel{Unwrap(std::move(r)), path};
          },
          nb::arg("path"), nb::arg("verify_checksum") = true)
      .def_static(
          "from_bytes",
          [](nb::bytes data, bool verify_checksum) {
            dtrn::LoadOptions o;
            o.verify_checksum = verify_checksum;
            return PyModel{Unwrap(dtrn::Model::FromBuffer(data.c_str(), data.size(), o)), ""};
          },
          nb::arg("data"), nb::arg("verify_checksum") = true)
      .def_ro("path", &PyModel::path)
      .def_prop_ro("name", [](const PyModel& m) { return m.model->name(); })
      .def_prop_ro("d", [](const PyModel& m) { return m.model->d(); })
      .def_prop_ro("seq_len", [](const PyModel& m) { return m.model->seq_len(); })
      .def_prop_ro("tasks", [](const PyModel& m) { return m.model->tasks(); })
      .def_prop_ro("behaviors", [](const PyModel& m) { return m.model->behaviors(); })
      .def_prop_ro("fields", [](const PyModel& m) { return m.model->fields(); })
      .def("group_fields",
           [](const PyModel& m, const std::string& group) {
             for (auto g : {dtrn::FieldGroup::kUser, dtrn::FieldGroup::kContext, dtrn::FieldGroup::kItem})
               if (group == GroupName(g)) return Names(*m.model, m.model->group_fields(g));
             Invalid("group '" + group + "': expected user, context or item");
           })
      .def_prop_ro("seq_fields", [](const PyModel& m) { return Names(*m.model, m.model->seq_fields()); })
      .def_prop_ro("has_int8_layers", [](const PyModel& m) { return m.model->has_int8_layers(); })
      .def_prop_ro("file_size", [](const PyModel& m) { return m.model->file_size(); })
      .def_prop_ro("producer", [](const PyModel& m) { return m.model->producer(); })
      .def_prop_ro("checkpoint_digest", [](const PyModel& m) { return m.model->checkpoint_digest(); })
      .def(
          "session",
          [](const PyModel& m, int threads, const std::string& kernels) {
            dtrn::SessionOptions o;
            o.threads = threads;
            if (!dtrn::ParseDenseKernels(kernels, &o.kernels))
              Invalid("kernels '" + kernels + "': expected auto, portable, avx2, avx512-vnni or neon-dotprod");
            auto s = std::make_unique<PySession>();
            s->model = m.model;
            s->schema = dtrn::io::RequestSchema::FromModel(*m.model);
            dtrn::Status st;
            {
              nb::gil_scoped_release release;  // creates XNNPACK operators, may take a while
              auto created = dtrn::Session::Create(m.model, o);
              if (created.ok())
                s->session = std::move(created).value();
              else
                st = created.status();
            }
            if (!st.ok()) Raise(st);
            return s.release();
          },
          nb::arg("threads") = 1, nb::arg("kernels") = "auto", nb::rv_policy::take_ownership);

  nb::class_<PySession>(m, "Session")
      .def("score_json", &PySession::ScoreJson, nb::arg("line"))
      .def("score_arrays", &PySession::ScoreArrays, nb::arg("id"), nb::arg("user"), nb::arg("context"),
           nb::arg("behaviors"), nb::arg("side_ids"), nb::arg("candidates"), nb::arg("weights").none());

  m.def(
      "rank",
      [](F32Mat probabilities, std::vector<float> weights) {
        std::vector<int> order = Unwrap(dtrn::Rank(ScoresFrom(probabilities), weights));
        return ToNumpy(std::vector<int32_t>(order.begin(), order.end()), {order.size()});
      },
      nb::arg("probabilities"), nb::arg("weights"));
  m.def(
      "top_k",
      [](F32Mat probabilities, std::vector<float> weights, size_t k) {
        std::vector<int> order = Unwrap(dtrn::TopK(ScoresFrom(probabilities), weights, k));
        return ToNumpy(std::vector<int32_t>(order.begin(), order.end()), {order.size()});
      },
      nb::arg("probabilities"), nb::arg("weights"), nb::arg("k"));
}
