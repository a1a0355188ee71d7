#include "io/read_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace ddpm::io {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what, const std::string& why) {
  throw std::invalid_argument(what + " '" + path + "': " + why);
}

// Opens `path` for reading without blocking and checks, on the descriptor, that it is a regular
// file (a FIFO swapped in after a stat cannot slip through). Returns the fd and its size.
int open_regular(const std::string& path, const std::string& what, uint64_t& size) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(path, what, std::string("cannot be opened: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, what, S_ISDIR(st.st_mode) ? "is a directory" : "is not a regular file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail(path, what, std::string("cannot be opened: ") + std::strerror(errno));
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, what, "is not a regular file");
  }
  size = static_cast<uint64_t>(st.st_size);
  return fd;
}

}  // namespace

void require_regular_file(const std::string& path, const std::string& what) {
  uint64_t size = 0;
  ::close(open_regular(path, what, size));
}

std::string read_regular_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  uint64_t size = 0;
  const int fd = open_regular(path, what, size);
  if (size > max_bytes) {
    ::close(fd);
    fail(path, what, "larger than " + std::to_string(max_bytes) + " bytes (" + std::to_string(size) + ")");
  }
  std::string bytes(static_cast<size_t>(size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // an error, or the file shrank while being read
      const int err = n < 0 ? errno : 0;
      ::close(fd);
      fail(path, what, err ? std::string("read error: ") + std::strerror(err) : "shrank while being read");
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return bytes;
}

}  // namespace ddpm::io
