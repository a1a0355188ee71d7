#include "test_util.hpp"

#include <sys/wait.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <unistd.h>

namespace ddpm::test {
namespace {
std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}
}  // namespace

#ifndef DDPM_DEFAULT_BIN_DIR
#define DDPM_DEFAULT_BIN_DIR "./"
#endif
#ifndef DDPM_DEFAULT_SOURCE_DIR
#define DDPM_DEFAULT_SOURCE_DIR "."
#endif
#ifndef DDPM_DEFAULT_TEST_DATA
#define DDPM_DEFAULT_TEST_DATA DDPM_DEFAULT_SOURCE_DIR "/tests/data"
#endif

std::string bin_dir() { return env_or("DDPM_BIN_DIR", DDPM_DEFAULT_BIN_DIR); }
std::string source_dir() { return env_or("DDPM_SOURCE_DIR", DDPM_DEFAULT_SOURCE_DIR); }
std::string data_dir() { return env_or("DDPM_TEST_DATA", DDPM_DEFAULT_TEST_DATA); }

std::string make_temp_dir(const std::string& prefix) {
  static std::atomic<int> counter{0};
  auto dir = std::filesystem::temp_directory_path() /
             (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

CommandResult run_command(const std::string& command_line) {
  std::string full = command_line + " 2>&1";
  FILE* pipe = ::popen(full.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command_line);
  std::string output;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) output.append(buf.data(), n);
  int status = ::pclose(pipe);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {code, output};
}
}  // namespace ddpm::test
