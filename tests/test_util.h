// Helpers shared by the GoogleTest suites: temp dirs, files, and the Python reference.
#pragma once

#include <string>
#include <vector>

namespace dtrn::testing {

std::string SourceDir();  // the repository root
std::string BinaryDir();  // the CMake build root

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& bytes);
bool FileExists(const std::string& path);

// Runs a shell command; returns its exit code (-1 if it could not run). Output goes to *output when given.
int RunCommand(const std::string& command, std::string* output = nullptr);

// Runs `python3 -m dtrn_ref ARGS` from reference/ (PYTHONPATH set); returns the exit code.
int RunReference(const std::string& args, std::string* output = nullptr);

// True when python3 can import torch and safetensors (the reference's needs).
bool ReferenceAvailable();

// Path of a built executable (e.g. "dtrn-convert"): $DTRN_TEST_TOOL_DIR/NAME when that exists
// (a cross build's launchers), else searched under BinaryDir().
std::string ToolPath(const std::string& name);

}  // namespace dtrn::testing
