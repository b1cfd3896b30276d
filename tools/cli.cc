#include "dtrn/tools/cli.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace dtrn::tools {

int ExitCode(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return kExitOk;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kDataLoss:
    case StatusCode::kUnimplemented: return kExitBadInput;
    default: return kExitFailure;
  }
}

Flags& Flags::Value(const std::string& name) {
  valued_.insert(name);
  return *this;
}

Flags& Flags::Switch(const std::string& name) {
  switches_.insert(name);
  return *this;
}

int Flags::UsageError(const std::string& msg) const {
  std::fprintf(stderr, "%s: %s\n(see %s --help)\n", tool_.c_str(), msg.c_str(), tool_.c_str());
  return kExitBadInput;
}

int Flags::Parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "-h" || arg == "--help") {
      std::fputs(usage_.c_str(), stdout);
      return kExitOk;
    }
    const size_t eq = arg.find('=');
    const bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (switches_.count(arg)) {
      if (inline_value) return UsageError(arg + " takes no value");
      on_.insert(arg);
      continue;
    }
    if (!valued_.count(arg)) return UsageError("unknown option " + arg);
    if (!inline_value) {
      if (i + 1 >= argc) return UsageError(arg + " needs a value");
      value = argv[++i];
    }
    if (values_.count(arg)) return UsageError(arg + " given twice");
    values_[arg] = value;
  }
  return -1;
}

const std::string& Flags::Get(const std::string& name) const {
  static const std::string kEmpty;
  auto it = values_.find(name);
  return it == values_.end() ? kEmpty : it->second;
}

namespace {
bool ParseLong(const std::string& s, long lo, long hi, long* out) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end || errno || v < lo || v > hi) return false;
  *out = v;
  return true;
}
}  // namespace

bool Flags::Int(const std::string& name, long lo, long hi, long fallback, long* out) const {
  if (!values_.count(name)) return *out = fallback, true;
  const std::string& v = values_.at(name);
  if (ParseLong(v, lo, hi, out)) return true;
  long any = 0;
  if (ParseLong(v, lo, (1L << 62), &any))
    UsageError(name + ": expected at most " + std::to_string(hi) + ", got '" + v + "'");
  else
    UsageError(name + ": expected " +
               (lo == 1   ? std::string("a positive integer")
                : lo == 0 ? "a non-negative integer"
                          : "an integer >= " + std::to_string(lo)) +
               ", got '" + v + "'");
  return false;
}

bool Flags::IntList(const std::string& name, long lo, long hi, const std::vector<long>& fallback,
                    std::vector<long>* out) const {
  if (!values_.count(name)) return *out = fallback, true;
  out->clear();
  const std::string& s = values_.at(name);
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    long v = 0;
    if (!ParseLong(item, lo, hi, &v)) {
      UsageError(name + ": expected comma-separated integers in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                 "], got '" + s + "'");
      return false;
    }
    out->push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return true;
}

bool Flags::Choice(const std::string& name, const std::vector<std::string>& choices, const std::string& fallback,
                   std::string* out) const {
  if (!values_.count(name)) return *out = fallback, true;
  const std::string& v = values_.at(name);
  std::string list;
  for (const std::string& c : choices) {
    if (c == v) return *out = v, true;
    list += (list.empty() ? "" : ", ") + c;
  }
  UsageError(name + ": expected one of " + list + ", got '" + v + "'");
  return false;
}

bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

}  // namespace dtrn::tools
