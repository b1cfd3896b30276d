#include "dtrn/tools/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace dtrn::tools {
namespace {

constexpr size_t kBufferSize = 1 << 20;
constexpr char kPartial[] = ".partial-";

std::string Errno() { return std::strerror(errno); }

void SplitPath(const std::string& path, std::string* dir, std::string* base) {
  const size_t slash = path.find_last_of('/');
  *dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  *base = slash == std::string::npos ? path : path.substr(slash + 1);
}

// Named temporaries to remove if the process is interrupted (async-signal-safe: plain data).
constexpr int kSlots = 8;
char g_tmp[kSlots][4096];
volatile sig_atomic_t g_handlers = 0;

void OnSignal(int sig) {
  for (auto& p : g_tmp)
    if (p[0]) ::unlink(p);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

int Register(const std::string& path) {
  if (!g_handlers) {
    for (int sig : {SIGINT, SIGTERM}) {
      struct sigaction old;
      if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) std::signal(sig, OnSignal);
    }
    g_handlers = 1;
  }
  if (path.size() >= sizeof g_tmp[0]) return -1;
  for (int i = 0; i < kSlots; ++i)
    if (!g_tmp[i][0]) {
      std::memcpy(g_tmp[i], path.c_str(), path.size() + 1);
      return i;
    }
  return -1;
}

void Unregister(const std::string& path) {
  for (auto& p : g_tmp)
    if (p[0] && path == p) p[0] = '\0';
}

mode_t FileMode() {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return 0666 & ~mask;
}

bool AllDigitsOrLetters(const std::string& s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
  return !s.empty();
}

// Test-only: DTRN_ATOMIC_FILE_NAMED=1 forces the named temporary, the fallback for
// filesystems without O_TMPFILE, so that tests can exercise it on any filesystem.
bool ForceNamedForTests() {
  const char* e = std::getenv("DTRN_ATOMIC_FILE_NAMED");
  return e != nullptr && std::strcmp(e, "1") == 0;
}

}  // namespace

int RemoveStaleTemporaries(const std::string& path) {
  std::string dir, base;
  SplitPath(path, &dir, &base);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  const std::string ours = "." + base + kPartial;  // .NAME.partial-PID-XXXXXX
  const std::string legacy = base + ".tmp-";       // NAME.tmp-XXXXXX (dtrn-convert 0.1)
  int removed = 0;
  const time_t now = std::time(nullptr);
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    const std::string full = dir + "/" + name;
    if (name.rfind(ours, 0) == 0) {
      const std::string rest = name.substr(ours.size());
      const size_t dash = rest.find('-');
      if (dash == std::string::npos) continue;
      const long pid = std::strtol(rest.substr(0, dash).c_str(), nullptr, 10);
      if (pid <= 0 || !AllDigitsOrLetters(rest.substr(dash + 1))) continue;
      if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // its writer still runs
      if (::unlink(full.c_str()) == 0) ++removed;
    } else if (name.rfind(legacy, 0) == 0 && name.size() == legacy.size() + 6 &&
               AllDigitsOrLetters(name.substr(legacy.size()))) {
      // No writer pid in the name: stale once untouched for a minute.
      struct stat st;
      if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime > 60 &&
          ::unlink(full.c_str()) == 0)
        ++removed;
    }
  }
  ::closedir(d);
  return removed;
}

Result<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path) {
  std::unique_ptr<AtomicFile> f(new AtomicFile());
  f->path_ = path;
  std::string base;
  SplitPath(path, &f->dir_, &base);
  RemoveStaleTemporaries(path);
#ifdef O_TMPFILE
  if (!ForceNamedForTests() && ::access("/proc/self/fd", X_OK) == 0) {
    f->fd_ = ::open(f->dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, FileMode());
  }
#endif
  if (f->fd_ < 0) {
    std::string tmpl = f->dir_ + "/." + base + kPartial + std::to_string(::getpid()) + "-XXXXXX";
    std::string name = tmpl;
    f->fd_ = ::mkstemp(name.data());
    if (f->fd_ < 0) return IoError("cannot create a temporary file beside '" + path + "': " + Errno());
    f->tmp_ = name;
    Register(f->tmp_);
    if (::fchmod(f->fd_, FileMode()) != 0) {
      const std::string msg = "cannot chmod '" + f->tmp_ + "': " + Errno();
      f->Abandon();
      return IoError(msg);
    }
  }
  f->buffer_ = static_cast<char*>(std::malloc(kBufferSize));
  if (f->buffer_ == nullptr) {
    f->Abandon();
    return Internal("out of memory (output buffer)");
  }
  return f;
}

AtomicFile::~AtomicFile() {
  Abandon();
  std::free(buffer_);
}

Status AtomicFile::Flush() {
  size_t done = 0;
  while (done < buffered_) {
    const ssize_t n = ::write(fd_, buffer_ + done, buffered_ - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return IoError("cannot write '" + path_ + "': " + Errno());
    done += static_cast<size_t>(n);
  }
  buffered_ = 0;
  return Status::Ok();
}

Status AtomicFile::Write(const void* data, size_t size) {
  if (fd_ < 0) return IoError("'" + path_ + "': write after commit or abandon");
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const size_t n = std::min(size, kBufferSize - buffered_);
    std::memcpy(buffer_ + buffered_, p, n);
    buffered_ += n, p += n, size -= n;
    if (buffered_ == kBufferSize) DTRN_RETURN_IF_ERROR(Flush());
  }
  return Status::Ok();
}

Status AtomicFile::Commit() {
  if (fd_ < 0) return IoError("'" + path_ + "': commit after commit or abandon");
  Status st = Flush();
  if (st.ok() && ::fsync(fd_) != 0) st = IoError("cannot fsync '" + path_ + "': " + Errno());
  if (st.ok() && tmp_.empty()) {
    // Unnamed: give it a name in the directory, then rename that over the target
    // (linkat cannot replace an existing file).
    std::string base, dir;
    SplitPath(path_, &dir, &base);
    const std::string name = dir_ + "/." + base + kPartial + std::to_string(::getpid()) + "-linked";
    ::unlink(name.c_str());
    const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) != 0)
      st = IoError("cannot link the output into '" + dir_ + "': " + Errno());
    else
      tmp_ = name, Register(tmp_);
  }
  if (::close(fd_) != 0 && st.ok()) st = IoError("cannot close '" + path_ + "': " + Errno());
  fd_ = -1;
  if (st.ok() && ::rename(tmp_.c_str(), path_.c_str()) != 0)
    st = IoError("cannot rename '" + tmp_ + "' to '" + path_ + "': " + Errno());
  if (!st.ok()) {
    Abandon();
    return st;
  }
  Unregister(tmp_);
  tmp_.clear();
  // The rename is durable only once the directory is synced.
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

void AtomicFile::Abandon() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!tmp_.empty()) {
    ::unlink(tmp_.c_str());
    Unregister(tmp_);
    tmp_.clear();
  }
  buffered_ = 0;
}

}  // namespace dtrn::tools
