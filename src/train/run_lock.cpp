#include "ddpm/train/run_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace ddpm {
namespace {
long read_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  return n > 0 ? std::strtol(buf, nullptr, 10) : 0;
}
}  // namespace

RunLock::RunLock(const std::string& run_dir) : path_((fs::path(run_dir) / "lock").string()) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw std::runtime_error("run directory '" + run_dir + "': cannot create the lock file '" + path_ +
                             "': " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const long owner = read_pid(fd_);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw RunLockedError("--run-dir '" + run_dir + "' is in use by another process (pid " +
                           (owner > 0 ? std::to_string(owner) : std::string("unknown")) + ", lock file " + path_ +
                           "); wait for it to finish or choose another --run-dir");
    throw std::runtime_error("run directory '" + run_dir + "': cannot lock '" + path_ + "': " + std::strerror(err));
  }
  stale_pid_ = read_pid(fd_);
  const std::string pid = std::to_string(static_cast<long>(::getpid())) + "\n";
  // The pid is informative only (error messages); the flock is the lock, so a failed write is no error.
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
}

RunLock::~RunLock() {
  if (fd_ < 0) return;
  (void)::ftruncate(fd_, 0);
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

}  // namespace ddpm
