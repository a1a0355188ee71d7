#pragma once
// Helpers shared by the tests: paths given by CTest's environment, temp dirs, running tools.
#include <string>

namespace ddpm::test {
std::string bin_dir();      ///< where ddpm-train etc. are (ends in '/')
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
}  // namespace ddpm::test
