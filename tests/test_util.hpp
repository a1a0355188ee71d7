#pragma once
// Helpers shared by the tests: paths given by CTest's environment, temp dirs, running tools.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "io/zip.hpp"

namespace ddpm::test {
std::string bin_dir();      ///< where ddpm-train etc. are (ends in '/')
std::string tool_path(const std::string& tool);  ///< bin_dir() + tool: "…/ddpm-train"
std::string source_dir();   ///< the repository root
std::string data_dir();     ///< tests/data
/// A fresh empty directory under the system temp dir, unique per call.
std::string make_temp_dir(const std::string& prefix);
struct CommandResult {
  int exit_code;
  std::string output;  ///< stdout and stderr together
};
/// Runs a shell command line, capturing its output.
CommandResult run_command(const std::string& command_line);
/// Writes bytes to a file, creating its directory.
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);
void write_bytes(const std::string& path, const std::string& bytes);
std::vector<uint8_t> read_bytes(const std::string& path);
std::string read_string(const std::string& path);  ///< the file's bytes as a string
/// n 8×8 gray images of two classes (bright top half / bright left half, plus noise from
/// `seed`) as an IDX image file and, when labels_path is not empty, an IDX label file.
void write_idx_pair(const std::string& images_path, const std::string& labels_path, int n, int seed);
/// The entries of the zip file `path` (libddpm's zip reader): where each record's bytes lie.
std::vector<ddpm::io::ZipEntry> zip_entries(const std::string& path);
/// The tensor storages of a checkpoint as a sorted list of byte strings: LibTorch writes the
/// optimizer's per-parameter state in an order that varies between processes (keyed by address),
/// so equal checkpoints are equal as multisets of tensors, not record by record.
std::vector<std::string> tensor_multiset(const std::string& path);
/// A 2×2 GIF89a with two frames, built by hand (see test_util.cpp for the derivation).
std::vector<uint8_t> tiny_gif();
/// Peak memory of a child process (ru_maxrss from wait4, which covers the child and the
/// processes it waited for), for the bounds on hostile files.
struct Measured {
  int exit_code = -1;     ///< 128 + signal when killed
  std::string output;     ///< the command's stdout and stderr; for run_forked, the exception's message
  double peak_rss_mb = 0;  ///< the child's peak resident set
};
/// Runs a shell command line (as a child, through `exec`) and measures its peak memory.
Measured run_measured(const std::string& command_line);
/// Runs `f` in a forked child under an address-space limit of `limit_mb` above this process's
/// current size (so that an unbounded allocation fails there, not on the machine). exit_code:
/// 0 = `f` threw (output = what()), 1 = returned, 2 = std::bad_alloc, 128 + signal when killed.
/// peak_rss_mb is the child's peak resident set (VmHWM) above what it held when `f` started.
Measured run_forked(const std::function<void()>& f, double limit_mb);

/// Starts `argv` (argv[0] a path) with stdout and stderr into the file `log`; returns the pid.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log);
/// Polls `pred` every 50 ms for at most `seconds`; whether it became true.
template <class Pred>
bool wait_for(Pred pred, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}
/// Exit status of `pid` (128 + signal when killed), waiting at most `seconds` (then kills it
/// and returns -1).
int wait_exit(pid_t pid, int seconds);
/// `count` RGB PNG images in `dir` (created), 8×8, or 10..12 × 9..10 with `varied_sizes` (the
/// loader resizes them); each a different smooth pattern. Returns `dir`.
std::string make_image_folder(const std::string& dir, int count = 16, bool varied_sizes = false);
/// configs/tiny.toml of the source tree.
std::string tiny_toml();
/// The message of the exception `f` throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
}  // namespace ddpm::test
