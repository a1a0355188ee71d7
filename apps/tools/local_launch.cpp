#include "tools/local_launch.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <spdlog/spdlog.h>

extern char** environ;

namespace ddpm::cli {
namespace {

// The running ranks' pids (0 once reaped), for the signal handler.
std::vector<pid_t> g_children;

extern "C" void forward_signal(int sig) {
  for (pid_t pid : g_children)
    if (pid > 0) ::kill(pid, sig);
}

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("--nproc-per-node: no socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("--nproc-per-node: no free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// This environment with `extra` ("NAME=value") replacing any entries of the same names.
std::vector<std::string> environment_with(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry = *e;
    bool replaced = false;
    for (const std::string& x : extra) {
      const size_t eq = x.find('=');
      if (entry.compare(0, eq + 1, x, 0, eq + 1) == 0) replaced = true;
    }
    if (!replaced) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

CLI::Option* add_nproc_option(CLI::App& app, int& nproc, const std::string& help) {
  return app.add_option("--nproc-per-node", nproc, help)->check(CLI::Range(1, kMaxLocalRanks))->configurable(false);
}

std::vector<std::string> args_without_nproc(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--nproc-per-node") {
      ++i;  // and its value
      continue;
    }
    if (a.rfind("--nproc-per-node=", 0) == 0) continue;
    args.push_back(a);
  }
  return args;
}

std::string RankExit::describe() const {
  return "rank " + std::to_string(rank) +
         (signaled ? " was killed by signal " + std::to_string(code - 128) : " exited with code " + std::to_string(code));
}

RankExit spawn_local_ranks(int nproc, const std::vector<std::string>& args,
                           const std::function<std::vector<std::string>(int rank)>& env, bool stop_on_failure) {
  std::vector<std::string> argv_strings = args;
  std::vector<char*> child_argv = c_strings(argv_strings);
  g_children.assign(static_cast<size_t>(nproc), 0);
  ::signal(SIGINT, forward_signal);
  ::signal(SIGTERM, forward_signal);
  auto restore_signals = [] {
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
  };
  // The ranks start with the default dispositions, whatever this process has set.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  int started = 0;
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env_strings = environment_with(env(r));
    std::vector<char*> child_env = c_strings(env_strings);
    pid_t pid = 0;
    const int err = ::posix_spawn(&pid, "/proc/self/exe", nullptr, &attr, child_argv.data(), child_env.data());
    if (err != 0) {
      forward_signal(SIGTERM);
      for (int k = 0; k < started; ++k) ::waitpid(g_children[static_cast<size_t>(k)], nullptr, 0);
      g_children.clear();
      posix_spawnattr_destroy(&attr);
      restore_signals();
      throw std::runtime_error("--nproc-per-node: cannot start rank " + std::to_string(r) + " (" + args[0] +
                               "): " + std::strerror(err));
    }
    g_children[static_cast<size_t>(r)] = pid;
    ++started;
  }
  posix_spawnattr_destroy(&attr);
  RankExit first;
  for (int left = nproc; left > 0;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (size_t r = 0; r < g_children.size(); ++r) {
      if (g_children[r] != pid) continue;
      g_children[r] = 0;
      --left;
      const RankExit e{static_cast<int>(r), WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                       !WIFEXITED(status)};
      if (e.code == 0 || first.code != 0) continue;
      first = e;
      if (stop_on_failure) forward_signal(SIGTERM);
    }
  }
  g_children.clear();
  restore_signals();
  return first;
}

int run_local_ranks(int nproc, int argc, char** argv) {
  for (const char* v : {"RANK", "WORLD_SIZE", "SLURM_PROCID"})
    if (std::getenv(v))
      throw std::invalid_argument(std::string("--nproc-per-node: this process is already a rank (") + v +
                                  " is set); drop --nproc-per-node under torchrun or srun");
  const std::string port = std::to_string(free_loopback_port());
  spdlog::info("--nproc-per-node {}: starting {} local ranks, rendezvous at 127.0.0.1:{}", nproc, nproc, port);
  const std::string world = std::to_string(nproc);
  const RankExit failed = spawn_local_ranks(nproc, args_without_nproc(argc, argv), [&](int r) {
    const std::string rank = std::to_string(r);
    return std::vector<std::string>{"RANK=" + rank, "LOCAL_RANK=" + rank, "WORLD_SIZE=" + world,
                                    "LOCAL_WORLD_SIZE=" + world, "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port};
  }, /*stop_on_failure=*/false);
  if (failed.code != 0) spdlog::error("--nproc-per-node: {}", failed.describe());
  return failed.code;
}

}  // namespace ddpm::cli
