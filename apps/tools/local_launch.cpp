#include "tools/local_launch.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

namespace ddpm::cli {
namespace {

std::vector<pid_t> g_children;

extern "C" void forward_signal(int sig) {
  for (pid_t pid : g_children) ::kill(pid, sig);
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

}  // namespace

int run_local_ranks(int nproc, int argc, char** argv) {
  for (const char* v : {"RANK", "WORLD_SIZE", "SLURM_PROCID"})
    if (std::getenv(v))
      throw std::invalid_argument(std::string("--nproc-per-node: this process is already a rank (") + v +
                                  " is set); drop --nproc-per-node under torchrun or srun");
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
  std::vector<char*> child_argv;
  for (auto& a : args) child_argv.push_back(a.data());
  child_argv.push_back(nullptr);
  const std::string port = std::to_string(free_loopback_port());
  spdlog::info("--nproc-per-node {}: starting {} local ranks, rendezvous at 127.0.0.1:{}", nproc, nproc, port);

  ::signal(SIGINT, forward_signal);
  ::signal(SIGTERM, forward_signal);
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      forward_signal(SIGTERM);
      throw std::runtime_error(std::string("--nproc-per-node: cannot start rank ") + std::to_string(r) + ": " +
                               std::strerror(errno));
    }
    if (pid == 0) {
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      const std::string rank = std::to_string(r), world = std::to_string(nproc);
      ::setenv("RANK", rank.c_str(), 1);
      ::setenv("LOCAL_RANK", rank.c_str(), 1);
      ::setenv("WORLD_SIZE", world.c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", world.c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", port.c_str(), 1);
      ::execv("/proc/self/exe", child_argv.data());
      std::fprintf(stderr, "ddpm-train: --nproc-per-node: cannot run %s: %s\n", argv[0], std::strerror(errno));
      ::_exit(127);
    }
    g_children.push_back(pid);
  }
  int result = 0;
  for (size_t left = g_children.size(); left > 0;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (size_t r = 0; r < g_children.size(); ++r) {
      if (g_children[r] != pid) continue;
      --left;
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (code != 0) {
        spdlog::error("--nproc-per-node: rank {} exited with {}", r, code);
        if (result == 0) result = code;
      }
    }
  }
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  return result;
}

}  // namespace ddpm::cli
