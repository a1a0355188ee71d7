#include "test_util.hpp"

#include <sys/resource.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <unistd.h>

#include <new>
#include <sstream>
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
std::string tool_path(const std::string& tool) { return bin_dir() + tool; }
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
namespace {
// A field of /proc/self/status ("VmRSS", "VmSize") in MB.
double proc_status_mb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  return 0;
}
}  // namespace

Measured run_measured(const std::string& command_line) {
  const std::string log = make_temp_dir("ddpm-measured") + "/out.txt";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string full = "exec " + command_line + " > '" + log + "' 2>&1";
    ::execl("/bin/sh", "sh", "-c", full.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  struct rusage usage {};
  ::wait4(pid, &status, 0, &usage);
  Measured m;
  m.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  m.output = read_string(log);
  m.peak_rss_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;
  std::filesystem::remove_all(std::filesystem::path(log).parent_path());
  return m;
}

Measured run_forked(const std::function<void()>& f, double limit_mb) {
  const double size_mb = proc_status_mb("VmSize");
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const auto limit = static_cast<rlim_t>((size_mb + limit_mb) * 1024 * 1024);
    struct rlimit rl {limit, limit};
    ::setrlimit(RLIMIT_AS, &rl);
    // The child's own peak, from here: reset its high-water mark to what it holds now (pages
    // shared with the parent after fork count only once touched, so the parent's RSS is no baseline).
    const double start_mb = proc_status_mb("VmRSS");
    { std::ofstream("/proc/self/clear_refs") << "5"; }
    int code = 1;
    std::string what;
    try {
      f();
    } catch (const std::bad_alloc& e) {
      code = 2;
      what = e.what();
    } catch (const std::exception& e) {
      code = 0;
      what = e.what();
    }
    const std::string report = std::to_string(proc_status_mb("VmHWM") - start_mb) + "\n" + what;
    if (::write(fds[1], report.data(), report.size()) < 0) code = 3;
    ::_exit(code);
  }
  ::close(fds[1]);
  Measured m;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) m.output.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  m.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (const size_t nl = m.output.find('\n'); nl != std::string::npos) {
    m.peak_rss_mb = std::stod(m.output.substr(0, nl));
    m.output.erase(0, nl + 1);
  } else {
    m.peak_rss_mb = 1e9;  // killed before it could report: no bound holds
  }
  return m;
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

std::vector<ddpm::io::ZipEntry> zip_entries(const std::string& path) {
  const std::string bytes = read_string(path);
  return ddpm::io::ZipReader(bytes).entries();
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

void write_idx_pair(const std::string& images_path, const std::string& labels_path, int n, int seed) {
  std::vector<uint8_t> im = {0, 0, 8, 3, 0, 0, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n), 0, 0, 0, 8, 0, 0, 0, 8};
  std::vector<uint8_t> lb = {0, 0, 8, 1, 0, 0, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
  uint32_t state = static_cast<uint32_t>(seed) * 2654435761u + 1;
  for (int k = 0; k < n; ++k) {
    const int label = k % 2;
    lb.push_back(static_cast<uint8_t>(label));
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        state = state * 1664525u + 1013904223u;
        const bool bright = label == 0 ? y < 4 : x < 4;
        im.push_back(static_cast<uint8_t>((bright ? 180 : 0) + (state >> 26)));
      }
  }
  write_bytes(images_path, im);
  if (!labels_path.empty()) write_bytes(labels_path, lb);
}

std::vector<std::string> tensor_multiset(const std::string& path) {
  const auto bytes = read_bytes(path);
  std::vector<std::string> out;
  for (const auto& r : zip_entries(path))
    if (r.name.find("/data/") != std::string::npos)
      out.emplace_back(bytes.begin() + r.offset, bytes.begin() + r.offset + r.size);
  std::sort(out.begin(), out.end());
  return out;
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

std::string make_image_folder(const std::string& dir, int count, bool varied_sizes) {
  std::filesystem::create_directories(dir);
  for (int n = 0; n < count; ++n) {
    ddpm::Image im;
    im.width = varied_sizes ? 10 + n % 3 : 8;
    im.height = varied_sizes ? 9 + n % 2 : 8;
    im.channels = 3;
    im.pixels.resize(static_cast<size_t>(im.width * im.height * 3));
    for (int y = 0; y < im.height; ++y)
      for (int x = 0; x < im.width; ++x)
        for (int ch = 0; ch < 3; ++ch)
          im.pixels[(y * im.width + x) * 3 + ch] = static_cast<uint8_t>((x * 20 + y * 7 * (ch + 1) + n * 13) % 256);
    ddpm::save_png(dir + "/img" + std::to_string(n) + ".png", im);
  }
  return dir;
}

std::string tiny_toml() { return source_dir() + "/configs/tiny.toml"; }

}  // namespace ddpm::test
