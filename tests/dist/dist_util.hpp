#pragma once
// Real processes for the data-parallel tests: a free loopback port, forked ranks.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <thread>
#include <vector>

#include "ddpm/dist/launch.hpp"

namespace ddpm::test {

inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Runs body(rank) in `world` forked processes; returns their exit codes (-1: killed after
// `limit`). body returns the exit code.
template <class Body>
std::vector<int> run_ranks(int world, Body body, std::chrono::seconds limit = std::chrono::seconds(60)) {
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      int code = 99;
      try {
        code = body(r);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
        code = 98;
      }
      std::fflush(nullptr);
      ::_exit(code);
    }
    pids.push_back(pid);
  }
  std::vector<int> codes(world, -1);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (int r = 0; r < world; ++r) {
    int status = 0;
    while (true) {
      const pid_t done = ::waitpid(pids[r], &status, WNOHANG);
      if (done == pids[r]) {
        codes[r] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pids[r], SIGKILL);
        ::waitpid(pids[r], &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  return codes;
}

inline ddpm::dist::LaunchInfo local_rank_info(int rank, int world, int port) {
  ddpm::dist::LaunchInfo info;
  info.launcher = ddpm::dist::Launcher::Torchrun;
  info.rank = info.local_rank = rank;
  info.world_size = info.local_world_size = world;
  info.master_addr = "127.0.0.1";
  info.master_port = port;
  return info;
}

}  // namespace ddpm::test
