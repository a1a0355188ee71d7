#include "test_util.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <unistd.h>

#include "ddpm/data/image.hpp"

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
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_bytes(const std::string& path, const std::string& bytes) {
  write_bytes(path, std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

std::string read_string(const std::string& path) {
  const auto bytes = read_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A 2×2 GIF89a with two frames, written by hand. Global colour table of 4 entries
// (red, green, blue, white). LZW minimum code size 2: clear = 4, end = 5, codes start
// 3 bits wide and grow to 4 bits once the table reaches 8 entries. Frame 1 holds the
// indices 0 1 2 3: codes 4,0,1,2 (3 bits) 3,5 (4 bits), packed LSB-first → 44 34 05.
// Frame 2 holds 3 2 1 0 → 9C 02 05.
std::vector<uint8_t> tiny_gif() {
  std::vector<uint8_t> b = {'G', 'I', 'F', '8', '9', 'a', 2, 0, 2, 0, 0x91, 0, 0,
                            255, 0,   0,   0,   255, 0,   0, 0, 255, 255, 255, 255};
  auto frame = [&b](std::vector<uint8_t> lzw) {
    const std::vector<uint8_t> descriptor = {0x2C, 0, 0, 0, 0, 2, 0, 2, 0, 0, /*min code size*/ 2,
                                             static_cast<uint8_t>(lzw.size())};
    b.insert(b.end(), descriptor.begin(), descriptor.end());
    b.insert(b.end(), lzw.begin(), lzw.end());
    b.push_back(0);  // block terminator
  };
  frame({0x44, 0x34, 0x05});
  frame({0x9C, 0x02, 0x05});
  b.push_back(0x3B);  // trailer
  return b;
}
pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    FILE* out = std::freopen(log.c_str(), "w", stdout);
    (void)out;
    ::dup2(::fileno(stdout), 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid, int seconds) {
  int status = 0;
  const bool done = wait_for([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, seconds);
  if (!done) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string make_image_folder(const std::string& dir) {
  std::filesystem::create_directories(dir);
  for (int n = 0; n < 16; ++n) {
    ddpm::Image im;
    im.width = im.height = 8;
    im.channels = 3;
    im.pixels.resize(8 * 8 * 3);
    for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = static_cast<uint8_t>((i * 37 + n * 11) % 256);
    ddpm::save_png(dir + "/img" + std::to_string(n) + ".png", im);
  }
  return dir;
}

std::string tiny_toml() { return source_dir() + "/configs/tiny.toml"; }

}  // namespace ddpm::test
