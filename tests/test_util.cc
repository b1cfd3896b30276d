#include "test_util.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace dtrn::testing {

std::string SourceDir() { return DTRN_SOURCE_DIR; }
std::string BinaryDir() { return DTRN_BINARY_DIR; }

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/dtrn-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot write " + path);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

int RunCommand(const std::string& command, std::string* output) {
  std::string cmd = command + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int rc = pclose(p);
  if (output) *output = out;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int RunReference(const std::string& args, std::string* output) {
  std::string ref = SourceDir() + "/reference";
  return RunCommand("cd '" + ref + "' && PYTHONPATH='" + ref + "' python3 -m dtrn_ref " + args, output);
}

bool ReferenceAvailable() {
  static int ok = RunCommand("python3 -c 'import torch, safetensors'") == 0 ? 1 : 0;
  return ok == 1;
}

std::string ToolPath(const std::string& name) {
  // A cross build's tests start the tools through launchers there (scripts/arm64.sh: qemu-aarch64).
  if (const char* dir = std::getenv("DTRN_TEST_TOOL_DIR"); dir && *dir) {
    std::string p = std::string(dir) + "/" + name;
    if (FileExists(p)) return p;
  }
  for (const char* sub : {"/converter/", "/runtime/", "/bench/", "/examples/", "/"}) {
    std::string p = BinaryDir() + sub + name;
    if (FileExists(p)) return p;
  }
  return BinaryDir() + "/" + name;
}

}  // namespace dtrn::testing
