// The command-line tools' shared parts: one flag parser (--name VALUE, --name=VALUE,
// switches, -h/--help, unknown or repeated flags as usage errors), exit codes from a
// Status, and the same-file check.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "dtrn/status.h"

namespace dtrn::tools {

constexpr int kExitOk = 0, kExitFailure = 1, kExitBadInput = 2;

// 2 for bad input (invalid, not found, damaged, unsupported), 1 for everything else.
int ExitCode(const Status& s);

class Flags {
 public:
  // tool: the name in messages ("dtrn-run"); usage: the --help text.
  Flags(std::string tool, std::string usage) : tool_(std::move(tool)), usage_(std::move(usage)) {}
  Flags& Value(const std::string& name);   // takes a value
  Flags& Switch(const std::string& name);  // takes none

  // -1 to go on; otherwise the exit status (0 after --help, which prints the usage to
  // stdout; 2 after a usage error, printed to stderr).
  int Parse(int argc, char** argv);

  bool Has(const std::string& name) const { return values_.count(name) > 0 || on_.count(name) > 0; }
  const std::string& Get(const std::string& name) const;  // "" when absent
  std::string Get(const std::string& name, const std::string& fallback) const {
    return values_.count(name) ? values_.at(name) : fallback;
  }
  // An integer in [lo, hi] (or `fallback` when absent); false after printing a usage error.
  bool Int(const std::string& name, long lo, long hi, long fallback, long* out) const;
  // A comma-separated list of integers in [lo, hi] (or `fallback` when absent).
  bool IntList(const std::string& name, long lo, long hi, const std::vector<long>& fallback,
               std::vector<long>* out) const;
  // One of `choices` (or `fallback` when absent).
  bool Choice(const std::string& name, const std::vector<std::string>& choices, const std::string& fallback,
              std::string* out) const;
  // Prints "TOOL: msg" (and a pointer to --help) to stderr; returns kExitBadInput.
  int UsageError(const std::string& msg) const;

 private:
  std::string tool_, usage_;
  std::set<std::string> valued_, switches_, on_;
  std::map<std::string, std::string> values_;
};

// True when both paths name one existing file (also through a symlink or a hard link).
bool SameFile(const std::string& a, const std::string& b);

}  // namespace dtrn::tools
