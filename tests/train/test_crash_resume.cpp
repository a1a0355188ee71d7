// kill -9 at random moments of a training that saves every step: `--resume` always finishes
// the run, and its final checkpoint equals an uninterrupted run's, record by record.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/data/image.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace {

std::vector<std::string> train_args(const std::string& images, const std::string& run) {
  const std::string config = ddpm::test::source_dir() + "/configs/tiny.toml";
  return {ddpm::test::tool_path("ddpm-train"), "--config", config, "--data", images, "--run-dir", run, "--threads", "1",
          "--steps", "12", "--save-every", "1", "--keep-last", "2", "--log-every", "1"};
}

// Runs argv; kills it with SIGKILL after `delay` unless it ended. Returns true if it was killed.
bool run_and_kill(const std::vector<std::string>& argv, std::chrono::milliseconds delay) {
  const pid_t pid = ddpm::test::spawn(argv, "/dev/null");
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + delay;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status);
}

}  // namespace

TEST(CrashResume, KillNineAtRandomMomentsThenResumeGivesTheUninterruptedResult) {
  auto dir = ddpm::test::make_temp_dir("ddpm-kill9");
  const std::string images = ddpm::test::make_image_folder(dir + "/images");
  std::string cmd;
  for (const auto& a : train_args(images, dir + "/reference")) cmd += a + " ";
  const auto start = std::chrono::steady_clock::now();
  auto ref = ddpm::test::run_command(cmd);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  const auto expected = ddpm::test::tensor_multiset(ddpm::checkpoint_path(dir + "/reference", 12));
  ASSERT_FALSE(expected.empty());

  std::mt19937 rng(18);
  std::uniform_int_distribution<int64_t> when(0, took.count());
  int killed = 0;
  const int rounds = 10;
  for (int i = 0; i < rounds; ++i) {
    const std::string run = dir + "/run" + std::to_string(i);
    const auto delay = std::chrono::milliseconds(when(rng));
    killed += run_and_kill(train_args(images, run), delay);
    // A second kill in the first resume, half the time: crashes during recovery count too.
    const std::string resume = ddpm::test::tool_path("ddpm-train") + " --run-dir " + run + " --resume --threads 1";
    if (fs::exists(run) && i % 2 == 1)
      killed +=
          run_and_kill({ddpm::test::tool_path("ddpm-train"), "--run-dir", run, "--resume", "--threads", "1"}, delay / 2);
    if (!fs::exists(run + "/config.toml")) {
      // Killed before it wrote anything: there is no run to resume yet; start it.
      std::string fresh;
      for (const auto& a : train_args(images, run)) fresh += a + " ";
      auto r = ddpm::test::run_command(fresh);
      ASSERT_EQ(r.exit_code, 0) << "round " << i << ": " << r.output;
    } else {
      auto r = ddpm::test::run_command(resume);
      ASSERT_EQ(r.exit_code, 0) << "round " << i << " (killed after " << delay.count() << " ms): " << r.output;
    }
    ASSERT_EQ(ddpm::latest_checkpoint(run), ddpm::checkpoint_path(run, 12)) << "round " << i;
    EXPECT_TRUE(ddpm::test::tensor_multiset(ddpm::checkpoint_path(run, 12)) == expected)
        << "round " << i << " (killed after " << delay.count() << " ms) ended with another final checkpoint";
    fs::remove_all(run);
  }
  // Most kills must land inside a run, or the test proves nothing.
  EXPECT_GE(killed, rounds / 2) << "only " << killed << " kills hit a running process (reference run took "
                                << took.count() << " ms)";
  fs::remove_all(dir);
}
