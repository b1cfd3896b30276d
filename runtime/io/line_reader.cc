#include "dtrn/io/line_reader.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace dtrn::io {
namespace {

bool IsBlank(const std::string& s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  return true;
}

}  // namespace

Result<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return NotFound("cannot open " + path + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return InvalidArgument("cannot read " + path + ": it is a directory");
  std::unique_ptr<LineReader> r(new LineReader(path));
  r->in_.open(path, std::ios::binary);
  if (!r->in_) return IoError("cannot open " + path + ": " + std::strerror(errno));
  return r;
}

Result<bool> LineReader::Next(std::string* line, size_t* line_no) {
  while (std::getline(in_, *line)) {
    ++line_no_;
    if (IsBlank(*line)) continue;
    *line_no = line_no_;
    return true;
  }
  if (in_.bad()) return IoError("read error in " + path_ + " after line " + std::to_string(line_no_));
  return false;
}

}  // namespace dtrn::io
