#pragma once
// One writer per run directory: run_dir/lock, held with flock(2) for the writer's lifetime and
// holding its pid. The kernel drops the lock when the process dies (kill -9 included), so a
// lock file whose pid is gone is stale and simply taken over.
#include <stdexcept>
#include <string>

namespace ddpm {

/// Another live process holds the run directory.
class RunLockedError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// The lock of one run directory (see above): one writer at a time.
class RunLock {
 public:
  /// Creates run_dir if needed and locks it. Throws RunLockedError naming the directory and the
  /// owner's pid; std::runtime_error when the lock file cannot be created.
  explicit RunLock(const std::string& run_dir);
  ~RunLock();  ///< clears the pid and unlocks
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  /// The pid a previous owner left behind without unlocking (it died), 0 if none.
  long stale_pid() const { return stale_pid_; }
  /// The lock file, run_dir/lock.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  long stale_pid_ = 0;
};

}  // namespace ddpm
