// Model: maps a .dtrn file (or copies a buffer) and keeps the verified view.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "dtrn/version.h"
#include "model_impl.h"

namespace dtrn {

Model::Impl::~Impl() {
  if (map_base != nullptr) munmap(map_base, map_size);
  std::free(owned);
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

Result<std::shared_ptr<const Model>> Model::Load(const std::string& path, LoadOptions options) {
  try {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) return NotFound(path + ": no such file");
      return IoError(path + ": cannot open: " + std::strerror(err));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return IoError(path + ": cannot stat: " + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      return InvalidArgument(path + ": not a regular file");
    }
    auto impl = std::make_unique<Impl>();
    impl->size = static_cast<size_t>(st.st_size);
    if (impl->size > 0) {
      void* p = ::mmap(nullptr, impl->size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        return IoError(path + ": cannot mmap: " + std::strerror(err));
      }
      impl->map_base = p;
      impl->map_size = impl->size;
      impl->bytes = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
    DTRN_RETURN_IF_ERROR(VerifyAndResolve(path, options, impl.get()));
    return std::shared_ptr<const Model>(new Model(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return Internal(path + ": out of memory while loading");
  }
}

Result<std::shared_ptr<const Model>> Model::FromBuffer(const void* data, size_t size, LoadOptions options) {
  if (data == nullptr && size > 0) return InvalidArgument("buffer: null data with size " + std::to_string(size));
  try {
    auto impl = std::make_unique<Impl>();
    impl->size = size;
    if (size > 0) {
      // 64-aligned copy: tensors sit at 64-aligned offsets from the (aligned) segment start.
      size_t alloc = (size + 63) / 64 * 64;
      impl->owned = static_cast<uint8_t*>(std::aligned_alloc(64, alloc));
      if (impl->owned == nullptr) return Internal("buffer: out of memory copying " + std::to_string(size) + " bytes");
      std::memcpy(impl->owned, data, size);
      impl->bytes = impl->owned;
    }
    DTRN_RETURN_IF_ERROR(VerifyAndResolve("buffer", options, impl.get()));
    return std::shared_ptr<const Model>(new Model(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return Internal("buffer: out of memory while loading");
  }
}

const std::string& Model::name() const { return impl_->name; }
int Model::d() const { return impl_->d; }
int Model::seq_len() const { return impl_->L; }
const std::vector<std::string>& Model::tasks() const { return impl_->tasks; }
const std::vector<std::string>& Model::behaviors() const { return impl_->behaviors; }
const std::vector<FieldInfo>& Model::fields() const { return impl_->fields; }
const std::vector<int>& Model::group_fields(FieldGroup group) const {
  return impl_->group_fields[static_cast<int>(group)];
}
const std::vector<int>& Model::seq_fields() const { return impl_->seq_fields; }
bool Model::has_int8_layers() const { return impl_->has_int8; }
size_t Model::file_size() const { return impl_->size; }
const std::string& Model::producer() const { return impl_->producer; }
const std::string& Model::checkpoint_digest() const { return impl_->checkpoint_digest; }

const char* Version() { return DTRN_VERSION_STRING; }
unsigned FormatVersion() { return format::kFormatVersion; }

const char* FieldGroupName(FieldGroup group) {
  switch (group) {
    case FieldGroup::kUser: return "user";
    case FieldGroup::kContext: return "context";
    case FieldGroup::kItem: return "item";
  }
  return "?";
}

}  // namespace dtrn
