#pragma once
// The one way libddpm reads a whole input file a user names: it must be a regular file, checked
// before a byte is read, so that a FIFO, a terminal or a device never blocks or streams a tool
// forever (open with O_NONBLOCK — a FIFO without a writer would block a plain open — then fstat).
#include <cstdint>
#include <limits>
#include <string>

namespace ddpm::io {

/// Throws std::invalid_argument "WHAT 'PATH': REASON" unless `path` is an existing regular file
/// (after symlinks). `what` names the kind of file ("torch file", "image file").
void require_regular_file(const std::string& path, const std::string& what);

/// The bytes of the regular file `path` (checked as above, on the opened descriptor too), at
/// most `max_bytes` of them (larger: refused before anything is allocated). Throws
/// std::invalid_argument "WHAT 'PATH': REASON".
std::string read_regular_file(const std::string& path, const std::string& what,
                              uint64_t max_bytes = std::numeric_limits<uint64_t>::max());

}  // namespace ddpm::io
