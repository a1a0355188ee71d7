#pragma once
// --nproc-per-node N: starts N local ranks of this program. The ranks are fresh images of
// /proc/self/exe started by posix_spawn, never fork()ed copies: the caller may already have run
// LibTorch (OpenMP's thread pool does not survive a fork).
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace ddpm::cli {

/// The most local ranks --nproc-per-node accepts.
constexpr int kMaxLocalRanks = 1024;

/// Adds --nproc-per-node (1 .. kMaxLocalRanks, not a config key) with this help.
CLI::Option* add_nproc_option(CLI::App& app, int& nproc, const std::string& help);

/// argv without the --nproc-per-node option: what each rank runs.
std::vector<std::string> args_without_nproc(int argc, char** argv);

/// How a rank ended: its exit code, or 128 + the signal that ended it.
struct RankExit {
  int rank = 0;
  int code = 0;
  bool signaled = false;
  /// "rank 1 exited with code 3" / "rank 1 was killed by signal 9".
  std::string describe() const;
};

/// Starts `nproc` ranks of this program running `args`, rank r with env(r) ("NAME=value"
/// entries) added to this environment; forwards SIGINT/SIGTERM to them and waits for all.
/// stop_on_failure: the first rank that fails gets the others a SIGTERM. Returns the first
/// failure (code 0 if none). Throws std::runtime_error if a rank cannot be started.
RankExit spawn_local_ranks(int nproc, const std::vector<std::string>& args,
                           const std::function<std::vector<std::string>(int rank)>& env, bool stop_on_failure);

/// ddpm-train: the ranks get torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
/// LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, a free MASTER_PORT). Returns the first failing
/// exit code (logged with its rank).
int run_local_ranks(int nproc, int argc, char** argv);

}  // namespace ddpm::cli
