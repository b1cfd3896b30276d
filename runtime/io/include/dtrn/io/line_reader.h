// Line-by-line reading of text files (JSON Lines requests and scores).
#pragma once

#include <cstddef>
#include <fstream>
#include <memory>
#include <string>

#include "dtrn/status.h"

namespace dtrn::io {

// Reads a text file line by line (no need to hold it whole); skips blank lines.
class LineReader {
 public:
  static Result<std::unique_ptr<LineReader>> Open(const std::string& path);
  // The next non-blank line (without its newline) and its 1-based number; false at end of file.
  Result<bool> Next(std::string* line, size_t* line_no);
  const std::string& path() const { return path_; }

 private:
  LineReader(std::string path) : path_(std::move(path)) {}
  std::string path_;
  std::ifstream in_;
  size_t line_no_ = 0;
};

}  // namespace dtrn::io
