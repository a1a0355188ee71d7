// ddpm::dist: the launch environment (torchrun, SLURM) and c10d/Gloo collectives between
// real processes on this machine.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>

#include "ddpm/dist/gradient_reducer.hpp"
#include "ddpm/dist/launch.hpp"
#include "ddpm/dist/process_group.hpp"
#include "dist_util.hpp"

namespace {

using ddpm::dist::LaunchInfo;
using ddpm::dist::Launcher;
using ddpm::test::free_port;
using ddpm::test::local_rank_info;
using ddpm::test::run_ranks;

LaunchInfo launch(const std::map<std::string, std::string>& vars) {
  return ddpm::dist::launch_from_environment([&vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

std::string error_of(const std::map<std::string, std::string>& vars) {
  try {
    launch(vars);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(Launch, PlainProcessIsWorldSizeOne) {
  const LaunchInfo info = launch({});
  EXPECT_EQ(info.launcher, Launcher::Single);
  EXPECT_EQ(info.world_size, 1);
  EXPECT_FALSE(info.distributed());
}

TEST(Launch, TorchrunEnvironment) {
  const LaunchInfo info = launch({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                                  {"MASTER_ADDR", "10.1.2.3"}, {"MASTER_PORT", "29511"},
                                  {"TORCHELASTIC_RESTART_COUNT", "2"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
  EXPECT_EQ(info.launcher, Launcher::Torchrun);
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.world_size, 8);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.local_world_size, 2);
  EXPECT_EQ(info.master_addr, "10.1.2.3");
  EXPECT_EQ(info.master_port, 29511);
  EXPECT_EQ(info.restart_count, 2);
  EXPECT_TRUE(info.agent_store);
}

TEST(Launch, SlurmEnvironmentAndItsMaster) {
  LaunchInfo info = launch({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "6"}, {"SLURM_LOCALID", "2"},
                            {"SLURM_NTASKS_PER_NODE", "3(x2)"}, {"SLURM_JOB_NODELIST", "gpu[07-09,12],cpu3"},
                            {"SLURM_JOB_ID", "123456"}});
  EXPECT_EQ(info.launcher, Launcher::Slurm);
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.world_size, 6);
  EXPECT_EQ(info.local_rank, 2);
  EXPECT_EQ(info.local_world_size, 3);
  EXPECT_EQ(info.master_addr, "gpu07");
  EXPECT_EQ(info.master_port, 20000 + 123456 % 20000);
  // MASTER_ADDR / MASTER_PORT win when set.
  info = launch({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_NODELIST", "a,b"},
                 {"MASTER_ADDR", "head"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(info.master_addr, "head");
  EXPECT_EQ(info.master_port, 1234);
}

TEST(Launch, NodeLists) {
  EXPECT_EQ(ddpm::dist::first_host_of_nodelist("node1"), "node1");
  EXPECT_EQ(ddpm::dist::first_host_of_nodelist("a,b,c"), "a");
  EXPECT_EQ(ddpm::dist::first_host_of_nodelist("n[001-004]"), "n001");
  EXPECT_EQ(ddpm::dist::first_host_of_nodelist("n[3,5-9],m[1-2]"), "n3");
  for (const char* bad : {"", "n[1-2", "n[x]", "[1-2]", "n[]"})
    EXPECT_THROW(ddpm::dist::first_host_of_nodelist(bad), std::invalid_argument) << bad;
}

TEST(Launch, MalformedValuesNameTheVariable) {
  EXPECT_NE(error_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}}).find("RANK"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "1"}}).find("RANK"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}}).find("WORLD_SIZE"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}).find("MASTER_ADDR"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "70000"}})
                .find("MASTER_PORT"),
            std::string::npos);
  EXPECT_NE(error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}).find("SLURM_JOB_NODELIST"), std::string::npos);
}

// ---------------------------------------------------------------- real processes

TEST(ProcessGroup, CollectivesBetweenTwoProcesses) {
  if (!ddpm::dist::gloo_available()) GTEST_SKIP() << "skipped: this build has no c10d/Gloo (no Gloo headers)";
  const int port = free_port();
  const auto codes = run_ranks(2, [port](int rank) {
    ddpm::dist::ProcessGroup pg(local_rank_info(rank, 2, port), std::chrono::seconds(30));
    if (pg.rank() != rank || pg.world_size() != 2) return 1;
    at::Tensor t = at::full({5}, static_cast<float>(rank + 1));
    pg.all_reduce_sum(t);  // 1 + 2
    if (!at::equal(t, at::full({5}, 3.0f))) return 2;
    at::Tensor b = at::arange(4, at::kFloat) * static_cast<float>(rank + 7);
    pg.broadcast(b, 1);  // rank 1's values: 8·[0, 1, 2, 3]
    if (!at::equal(b, at::arange(4, at::kFloat) * 8.0f)) return 3;
    if (pg.any(false)) return 4;
    if (!pg.any(rank == 1)) return 5;
    at::Tensor big = at::ones({1 << 16}) * static_cast<float>(rank);
    auto pending = pg.all_reduce_sum_async(big);
    pending->wait();
    if (big.sum().item<double>() != static_cast<double>(1 << 16)) return 6;
    pg.barrier();
    return 0;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
}

TEST(ProcessGroup, ALostRankEndsTheOthersCollectiveWithAnErrorNotAHang) {
  if (!ddpm::dist::gloo_available()) GTEST_SKIP() << "skipped: this build has no c10d/Gloo (no Gloo headers)";
  const int port = free_port();
  const auto start = std::chrono::steady_clock::now();
  const auto codes = run_ranks(2, [port](int rank) {
    ddpm::dist::ProcessGroup pg(local_rank_info(rank, 2, port), std::chrono::seconds(5));
    pg.barrier();
    if (rank == 1) ::_exit(0);  // dies without a word
    at::Tensor t = at::ones({8});
    try {
      for (int i = 0; i < 3; ++i) pg.all_reduce_sum(t);
    } catch (const std::runtime_error& e) {
      std::fprintf(stderr, "rank 0 got: %s\n", e.what());
      // The expected end: an error that names the lost rank (from the heartbeats).
      return std::string(e.what()).find("lost: rank 1") != std::string::npos ? 7 : 8;
    }
    return 0;
  });
  EXPECT_EQ(codes[0], 7);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(40));
}

// A write to a socket whose peer is gone raises SIGPIPE, whose default action ends the process
// without a word; a group of several ranks must turn that into an EPIPE error (CI once saw a
// survivor die silently instead of naming the lost rank).
TEST(ProcessGroup, AGroupTurnsSigpipeIntoAnError) {
  if (!ddpm::dist::gloo_available()) GTEST_SKIP() << "skipped: this build has no c10d/Gloo (no Gloo headers)";
  const int port = free_port();
  const auto codes = run_ranks(2, [port](int rank) {
    std::signal(SIGPIPE, SIG_DFL);  // whatever the test runner inherited
    ddpm::dist::ProcessGroup pg(local_rank_info(rank, 2, port), std::chrono::seconds(30));
    pg.barrier();
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return 2;
    ::close(fds[1]);
    const char byte = 0;
    // Under SIGPIPE's default this process would end here, killed by the signal.
    const ssize_t n = ::write(fds[0], &byte, 1);
    const int err = errno;
    ::close(fds[0]);
    return n == -1 && err == EPIPE ? 0 : 3;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
}

TEST(ProcessGroup, SingleProcessGroupIsTheIdentity) {
  ddpm::dist::ProcessGroup pg;
  at::Tensor t = at::full({3}, 2.0f);
  pg.all_reduce_sum(t);
  pg.broadcast(t, 0);
  pg.barrier();
  EXPECT_TRUE(at::equal(t, at::full({3}, 2.0f)));
  EXPECT_TRUE(pg.any(true));
  EXPECT_FALSE(pg.any(false));
  // World size 1 from a launcher: no sockets are opened (port 1 would fail).
  EXPECT_NO_THROW(ddpm::dist::ProcessGroup(local_rank_info(0, 1, 1), std::chrono::seconds(1)).barrier());
}

}  // namespace

namespace {

// A small model's gradient: 2 ranks each take half of a batch, scale the loss by 1/global B,
// reduce; the result must equal one process's gradient over the whole batch.
struct TinyNet {
  std::vector<at::Tensor> params;
  explicit TinyNet(int seed) {
    at::manual_seed(seed);
    for (auto shape : std::vector<std::vector<int64_t>>{{64, 16}, {64}, {300, 64}, {300}, {3, 300}, {3}})
      params.push_back(at::randn(shape).requires_grad_(true));
  }
  at::Tensor loss_sum(const at::Tensor& x) const {
    at::Tensor h = at::tanh(at::linear(x, params[0], params[1]));
    h = at::tanh(at::linear(h, params[2], params[3]));
    return at::linear(h, params[4], params[5]).square().sum();
  }
};

TEST(GradientReducer, TwoRanksWithHalfBatchesGiveTheWholeBatchGradient) {
  if (!ddpm::dist::gloo_available()) GTEST_SKIP() << "skipped: this build has no c10d/Gloo (no Gloo headers)";
  const int port = free_port();
  const auto codes = run_ranks(2, [port](int rank) {
    at::manual_seed(123);
    const at::Tensor batch = at::randn({8, 16});
    TinyNet reference(7);
    (reference.loss_sum(batch) / 8.0).backward();

    ddpm::dist::ProcessGroup pg(local_rank_info(rank, 2, port), std::chrono::seconds(30));
    TinyNet net(rank == 0 ? 7 : 99);  // rank 1 starts elsewhere: the broadcast fixes it
    // Tiny buckets so that several all-reduces are in flight during backward.
    ddpm::dist::GradientReducer reducer(net.params, pg, /*bucket_bytes=*/16 << 10, /*first=*/2 << 10);
    if (reducer.bucket_count() < 3) return 1;
    reducer.broadcast_parameters();
    // Two micro-batches of 2 per rank (grad accumulation): only the second reduces.
    const at::Tensor mine = batch.narrow(0, rank * 4, 4);
    reducer.set_sync(false);
    (net.loss_sum(mine.narrow(0, 0, 2)) / 8.0).backward();
    reducer.set_sync(true);
    (net.loss_sum(mine.narrow(0, 2, 2)) / 8.0).backward();
    reducer.finish();
    for (size_t i = 0; i < net.params.size(); ++i) {
      const double err = (net.params[i].grad() - reference.params[i].grad()).abs().max().item<double>();
      const double scale = reference.params[i].grad().abs().max().item<double>();
      if (!(err <= 1e-5 * scale + 1e-7)) {
        std::fprintf(stderr, "rank %d param %zu: error %g (scale %g)\n", rank, i, err, scale);
        return 2;
      }
    }
    const auto& s = reducer.stats();
    if (s.steps != 1 || !(s.hidden_fraction() <= 1.0)) return 3;
    return 0;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
}

}  // namespace
