#pragma once
// Until the shared atomic-write helper (io/atomic_file.hpp) lands: writes `bytes` to
// "<path>.tmp", checks every write, fsync and close, renames it over `path` and fsyncs the
// directory, so that `path` is either the old file or the complete new one, durably.
// On failure removes the temporary file and throws std::runtime_error("<path>: <reason>").
#include <string>

namespace ddpm {

void write_file_durably(const std::string& path, const std::string& bytes);
/// fsync of a directory (makes renames and removals in it durable). Throws like above.
void sync_directory(const std::string& dir);

}  // namespace ddpm
