#pragma once
// What every tool shares: --device, --threads, --log-level, --version, and the
// mapping of exceptions to one-line errors and exit codes.
#include <CLI/CLI.hpp>
#include <c10/core/Device.h>

#include <functional>
#include <stdexcept>
#include <string>

namespace ddpm::cli {

struct RuntimeOptions {
  std::string device = "auto";
  int threads = 0;  // 0 = all cores
  std::string log_level = "info";
  int64_t max_params = 1000000000;  ///< ModelLimits::max_params: networks built from files are checked against it
};

/// The largest --threads accepted: max(64, 4 × std::thread::hardware_concurrency()).
int max_threads();

/// Adds --device, --threads, --log-level, --max-params and --version to `app`.
void add_runtime_options(CLI::App& app, RuntimeOptions& options);

/// Sets the log level, the thread count (LibTorch's and OpenBLAS's), the model size limit
/// (ddpm::model_limits()) and the allocator's trimming policy, and resolves the device.
/// Throws std::invalid_argument for a bad --device or --log-level.
c10::Device apply_runtime(const RuntimeOptions& options);

/// Ends a tool with this exit code and one line on stderr (e.g. a failed local rank's code).
struct ExitError : std::runtime_error {
  ExitError(int exit_code, const std::string& what) : std::runtime_error(what), code(exit_code) {}
  int code;
};

/// Parses argv into `app` and runs `body`. Exit codes: what body returns;
/// 2 for a CLI11 parse error or std::invalid_argument (bad input, one line on stderr), an output
/// path that cannot be created (io::UnwritableOutput) and an allocation that fails (a size from
/// the config or options too large for the machine); ExitError's code; 1 for any other
/// exception (one line). SIGPIPE is ignored: writing to a closed pipe fails with EPIPE instead of
/// killing the tool.
int run_app(CLI::App& app, int argc, char** argv, const std::function<int()>& body);

}  // namespace ddpm::cli
