// Status and Result<T>: how every fallible call of dtrn-edge reports failure.
// Out-of-memory policy: library code never throws; a std::bad_alloc from the standard
// library inside a call is caught at the public entry point and returned as kInternal
// "out of memory". No exception crosses the library boundary. Header-only.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace dtrn {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,  // bad request, bad option, bad config
  kNotFound = 2,         // missing file, missing field or tensor
  kDataLoss = 3,         // truncated / corrupted file, checksum mismatch
  kUnimplemented = 4,    // valid but not supported (e.g. unknown format version)
  kInternal = 5,         // XNNPACK or another library failed
  kIo = 6,               // read or write failed
};

// "OK", "INVALID_ARGUMENT", ... (the C API's dtrn_status_name uses these names).
inline const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kIo: return "IO";
  }
  return "UNKNOWN";
}

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "OK", or "CODE_NAME: message".
  std::string ToString() const { return ok() ? "OK" : std::string(StatusCodeName(code_)) + ": " + message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return Status(StatusCode::kInvalidArgument, std::move(m)); }
inline Status NotFound(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status DataLoss(std::string m) { return Status(StatusCode::kDataLoss, std::move(m)); }
inline Status Unimplemented(std::string m) { return Status(StatusCode::kUnimplemented, std::move(m)); }
inline Status Internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }
inline Status IoError(std::string m) { return Status(StatusCode::kIo, std::move(m)); }

// Holds a T or a non-ok Status.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                                              // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace dtrn

#define DTRN_CONCAT_INNER(a, b) a##b
#define DTRN_CONCAT(a, b) DTRN_CONCAT_INNER(a, b)

// Returns the status from the enclosing function when it is not ok.
#define DTRN_RETURN_IF_ERROR(expr)       \
  do {                                   \
    ::dtrn::Status _dtrn_st = (expr);    \
    if (!_dtrn_st.ok()) return _dtrn_st; \
  } while (0)

// DTRN_ASSIGN_OR_RETURN(auto x, MakeX()): binds the value or returns the status.
#define DTRN_ASSIGN_OR_RETURN(lhs, expr) DTRN_ASSIGN_OR_RETURN_IMPL(DTRN_CONCAT(_dtrn_res_, __LINE__), lhs, expr)
#define DTRN_ASSIGN_OR_RETURN_IMPL(res, lhs, expr) \
  auto res = (expr);                               \
  if (!res.ok()) return res.status();              \
  lhs = std::move(res).value()
