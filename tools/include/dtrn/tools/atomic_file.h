// An output file that is written whole or not at all.
//
// The bytes go to a temporary file in the target's directory, which Commit fsyncs and
// renames over the target (then fsyncs the directory): a reader sees the old file or the
// new one, never a part. The temporary is unnamed where the filesystem allows it
// (O_TMPFILE, linked in at Commit), so a killed writer leaves nothing behind. Elsewhere it
// is named ".<name>.partial-<pid>-XXXXXX": removed on failure, on SIGINT and SIGTERM, and
// by the next AtomicFile for the same target once its writer process is gone (after a
// SIGKILL). Leftovers of older releases ("<name>.tmp-XXXXXX") are removed the same way.
//
// Test-only: DTRN_ATOMIC_FILE_NAMED=1 in the environment forces the named temporary even
// where O_TMPFILE works (tests/integrity_test.cc kills a real dtrn-convert on both paths).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "dtrn/status.h"

namespace dtrn::tools {

class AtomicFile {
 public:
  // Removes stale temporaries of `path`, then opens a new one.
  static Result<std::unique_ptr<AtomicFile>> Create(const std::string& path);
  ~AtomicFile();  // an uncommitted file is abandoned
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  Status Write(const void* data, size_t size);
  Status Write(const std::string& s) { return Write(s.data(), s.size()); }
  // Makes the written bytes the file at path (mode 0666 & ~umask).
  Status Commit();
  void Abandon();
  bool unnamed() const { return tmp_.empty(); }  // O_TMPFILE in use

 private:
  AtomicFile() = default;
  std::string path_, dir_, tmp_;  // tmp_: the named temporary ("" while unnamed)
  int fd_ = -1;
  char* buffer_ = nullptr;
  size_t buffered_ = 0;
  Status Flush();
};

// Removes temporaries that AtomicFile (or an older release) left beside `path` and whose
// writer is no longer running. Returns how many it removed.
int RemoveStaleTemporaries(const std::string& path);

}  // namespace dtrn::tools
