#include "tools/common.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <ATen/Parallel.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <iostream>
#include <new>
#include <stdexcept>
#include <thread>

#include "tools/cpu_env.hpp"
#include "ddpm/models/unet.hpp"
#include "ddpm/io/atomic_file.hpp"
#include "ddpm/runtime.hpp"
#include "ddpm/util/errors.hpp"
#include "ddpm/version.hpp"

namespace ddpm::cli {

int max_threads() {
  // Thousands of threads only cost start-up time and memory; a few times the cores is plenty.
  return static_cast<int>(std::max<unsigned>(64, 4 * std::max(1u, std::thread::hardware_concurrency())));
}

namespace {
// LibTorch's allocators report a size they cannot serve as c10::Error with one of these.
bool is_allocation_failure(const std::string& what) {
  return what.find("not enough memory") != std::string::npos || what.find("can't allocate memory") != std::string::npos ||
         what.find("out of memory") != std::string::npos;
}
}  // namespace

void add_runtime_options(CLI::App& app, RuntimeOptions& options) {
  app.set_version_flag("--version", "libddpm " + ddpm::version());
  app.add_option("--device", options.device, "auto | cpu | cuda | cuda:N (auto = CUDA when available)")
      ->capture_default_str();
  app.add_option("--threads", options.threads,
                 "CPU threads for LibTorch (0 = all cores; at most " + std::to_string(max_threads()) +
                     " = max(64, 4 x the hardware threads))")
      ->capture_default_str()
      ->check(CLI::Range(0, max_threads()));
  app.add_option("--log-level", options.log_level, "trace | debug | info | warn | error | off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--max-params", options.max_params,
                 "largest network (parameters) built from a config or file; activations up to 16 bytes per "
                 "parameter for one image")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
}

c10::Device apply_runtime(const RuntimeOptions& options) {
  spdlog::set_level(spdlog::level::from_str(options.log_level));
  spdlog::set_pattern("[%H:%M:%S] [%^%l%$] %v");
  ddpm::set_threads(options.threads);
  ddpm::model_limits().max_params = options.max_params;
  match_blas_threads(at::get_num_threads());
#if defined(__GLIBC__)
  // Keep freed memory in the process: by default glibc returns large blocks to the OS and
  // every training step pages them back in (measured here: 17-30% of a step's CPU time).
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  return ddpm::parse_device(options.device);
}

int run_app(CLI::App& app, int argc, char** argv, const std::function<int()>& body) {
  // A closed stdout/stderr (ddpm-train ... | head) must not kill the process: with SIGPIPE
  // ignored the write fails with EPIPE, which the logs tolerate and the outputs report.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << app.get_name() << ": error: " << first_line(e.what()) << "\n";
    return 2;
  }
  try {
    return body();
  } catch (const std::invalid_argument& e) {
    std::cerr << app.get_name() << ": error: " << first_line(e.what()) << "\n";
    return 2;
  } catch (const ExitError& e) {
    std::cerr << app.get_name() << ": error: " << first_line(e.what()) << "\n";
    return e.code;
  } catch (const io::UnwritableOutput& e) {  // the output path given is wrong
    std::cerr << app.get_name() << ": error: " << first_line(e.what()) << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << app.get_name() << ": error: out of memory: a size given in the config or options is too large for "
                                   "this machine\n";
    return 2;
  } catch (const std::exception& e) {
    if (is_allocation_failure(e.what())) {  // LibTorch's: a tensor the config asked for does not fit
      std::cerr << app.get_name() << ": error: out of memory (" << first_line(e.what())
                << "): a size given in the config or options is too large for this machine\n";
      return 2;
    }
    // LibTorch errors carry a C++ backtrace after the first line; keep the first.
    std::cerr << app.get_name() << ": error: " << first_line(e.what()) << "\n";
    return 1;
  }
}

}  // namespace ddpm::cli
