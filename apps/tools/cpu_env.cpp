#include "tools/cpu_env.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace ddpm::cli {
namespace {

std::set<std::string> cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::string word;
    while (words >> word) flags.insert(word);
    break;
  }
  return flags;
}

template <typename F>
F openblas_function(const char* name) {
  return reinterpret_cast<F>(::dlsym(RTLD_DEFAULT, name));
}

}  // namespace

std::string blas_core_name() {
  auto corename = openblas_function<char* (*)()>("openblas_get_corename");
  const char* name = corename ? corename() : nullptr;
  return name ? name : "";
}

void match_blas_threads(int threads) {
  if (auto set = openblas_function<void (*)(int)>("openblas_set_num_threads"); set && threads > 0) set(threads);
}

void tune_cpu_environment(char** argv) {
  if (std::getenv("DDPM_NO_ENV_TUNING") || std::getenv("DDPM_ENV_TUNED")) return;
  bool changed = false;
  if (!std::getenv("OMP_WAIT_POLICY")) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    changed = true;
  }
  const std::string core = blas_core_name();
  if (!std::getenv("OPENBLAS_CORETYPE") && (core == "Haswell" || core == "Zen" || core == "Sandybridge")) {
    const auto flags = cpu_flags();
    bool avx512 = true;
    for (const char* f : {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}) avx512 = avx512 && flags.count(f);
    if (avx512) {
      ::setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1);
      changed = true;
    }
  }
  if (!changed) return;
  ::setenv("DDPM_ENV_TUNED", "1", 1);  // once: the new image must not exec again
  ::execv("/proc/self/exe", argv);
  // exec failed (no /proc?): carry on with the environment as it was loaded.
}

}  // namespace ddpm::cli
