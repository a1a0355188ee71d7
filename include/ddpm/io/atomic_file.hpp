#pragma once
// The one way libddpm writes a file that must never be half-written (checkpoints, the run's
// config.toml, metrics.jsonl when it is rewritten): write PATH.tmp, fsync it, rename it over
// PATH, fsync the directory. A crash, kill or full disk at any moment leaves either the old
// file or the new one, never a mix, and never a leftover PATH.tmp after an error.
#include <stdexcept>
#include <string>

namespace ddpm::io {

/// The output path itself cannot be created or replaced (no such directory, permission denied,
/// read-only file system, a directory in the way): the caller's path is wrong, not the machine
/// (the tools exit 2 for it; a write that fails midway, e.g. a full disk, stays a runtime_error).
class UnwritableOutput : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Replaces `path` by `bytes` atomically and durably. Every system call's result is
/// checked (open, write, fsync, close, rename, the directory's fsync). On failure the
/// temporary file is removed, `path` is untouched, and std::runtime_error
/// "cannot write 'PATH': REASON" is thrown (UnwritableOutput when the path is at fault).
/// An existing `path` that is not a regular file (a device such as /dev/stdout or /dev/full, a
/// FIFO) cannot be replaced: the bytes are written into it directly, every write checked.
void write_file_atomically(const std::string& path, const std::string& bytes);

/// fsync of a directory, so that a rename or unlink in it survives a power cut.
/// Throws std::runtime_error naming the directory.
void sync_directory(const std::string& dir);

}  // namespace ddpm::io
