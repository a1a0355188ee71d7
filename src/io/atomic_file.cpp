#include "ddpm/io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace ddpm::io {
namespace {

// Errors that say the path is wrong rather than the disk or the machine.
bool path_error(int err) {
  return err == ENOENT || err == ENOTDIR || err == EISDIR || err == EACCES || err == EPERM || err == EROFS ||
         err == ENAMETOOLONG || err == ELOOP;
}

[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  const std::string message = "cannot write '" + path + "': " + what + ": " + std::strerror(err);
  if (path_error(err)) throw UnwritableOutput(message);
  throw std::runtime_error(message);
}

// Writes all of `bytes` to fd, retrying on EINTR; false with errno set on failure.
bool write_all(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

// A device or FIFO given as the output: written in place (renaming a temporary over /dev/full
// would replace the device node with a file).
void write_in_place(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "open", errno);
  if (!write_all(fd, bytes)) {
    const int err = errno;
    ::close(fd);
    fail(path, "write", err);
  }
  if (::close(fd) != 0) fail(path, "close", errno);
}

}  // namespace

void sync_directory(const std::string& dir) {
  const std::string d = dir.empty() ? "." : dir;
  const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot sync directory '" + d + "': " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems (e.g. certain FUSE or network mounts) refuse fsync on directories;
  // EINVAL there means "not supported", not "not durable".
  if (rc != 0 && err != EINVAL) throw std::runtime_error("cannot sync directory '" + d + "': " + std::strerror(err));
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return write_in_place(path, bytes);
  // A symlink to a file (e.g. /dev/stdout redirected to one): the file is replaced, not the link.
  std::error_code ec;
  std::string file = path;
  if (std::filesystem::is_symlink(path, ec))
    if (const auto target = std::filesystem::canonical(path, ec); !ec) file = target.string();
  const std::string tmp = file + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "open " + tmp, errno);
  auto abandon = [&](const std::string& what, int err) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    fail(path, what, err);
  };
  if (!write_all(fd, bytes)) abandon("write", errno);
  if (::fsync(fd) != 0) abandon("fsync", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(path, "close", err);
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(path, "rename", err);
  }
  sync_directory(std::filesystem::path(file).parent_path().string());
}

}  // namespace ddpm::io
