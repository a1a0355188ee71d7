// ddpm-train end to end: --help, --dry-run, a run directory, --resume, errors, SIGINT.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/pipeline/config.hpp"
#include "ddpm/data/image.hpp"
#include "test_util.hpp"
#include "train_fixtures.hpp"

namespace fs = std::filesystem;
using ddpm::test::run_command;

// 16 small RGB PNGs of different sizes (the loader resizes them to image-size 8).
constexpr bool kVariedSizes = true;

namespace {

std::string tiny_toml() { return ddpm::test::source_dir() + "/configs/tiny.toml"; }

std::vector<std::string> lines_of(const fs::path& path) { return ddpm::test::lines_of(path.string()); }

}  // namespace

TEST(TrainCli, HelpDocumentsEveryArea) {
  auto r = run_command(ddpm::test::tool_path("ddpm-train") + " --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* opt : {"--config", "--resume", "--dry-run", "--run-dir", "--data", "--image-size", "--channels",
                          "--base-channels", "--channel-mult", "--schedule", "--timesteps", "--steps", "--batch-size",
                          "--lr", "--warmup-steps", "--grad-clip", "--grad-accum", "--ema-decay", "--ema-warmup",
                          "--prediction", "--loss-weighting", "--bf16", "--channels-last", "--sample-every",
                          "--sampler", "--sample-steps", "--sample-seed", "--save-every", "--keep-last",
                          "--log-every", "--device", "--threads"})
    EXPECT_NE(r.output.find(opt), std::string::npos) << opt;
}

TEST(TrainCli, DryRunPrintsTheCifarModelSummary) {
  auto r = run_command(ddpm::test::tool_path("ddpm-train") + " --config " + ddpm::test::source_dir() + "/configs/cifar10-32.toml --dry-run");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("parameters: 35746307"), std::string::npos) << r.output;
  auto tiny = run_command(ddpm::test::tool_path("ddpm-train") + " --config " + tiny_toml() + " --dry-run --image-size 8x16 --channels 4");
  EXPECT_EQ(tiny.exit_code, 0) << tiny.output;
  auto bad = run_command(ddpm::test::tool_path("ddpm-train") + " --config " + tiny_toml() + " --dry-run --image-size 10");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
}

TEST(TrainCli, RunDirectoryAndExactResume) {
  auto dir = ddpm::test::make_temp_dir("ddpm-train-cli");
  auto images = ddpm::test::make_image_folder(dir + "/images", 16, kVariedSizes);
  const std::string run = dir + "/run";
  const std::string common = ddpm::test::tool_path("ddpm-train") + " --config " + tiny_toml() + " --data " + images + " --run-dir " + run +
                             " --threads 1 --log-every 1 --save-every 2 --sample-n 4 --sample-steps 2";
  auto r = run_command(common + " --steps 4 --sample-every 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(run + "/config.toml"));
  EXPECT_TRUE(fs::exists(run + "/samples/step-00000004.png"));
  EXPECT_EQ(ddpm::list_checkpoints(run).size(), 2u);
  auto metrics = lines_of(run + "/metrics.jsonl");
  ASSERT_EQ(metrics.size(), 4u);
  ddpm::Config saved = ddpm::config_from_file(run + "/config.toml");
  EXPECT_EQ(saved.channels, 3);
  EXPECT_EQ(saved.image_size, "8");
  EXPECT_EQ(saved.train.steps, 4);

  // Without --resume an existing run is not overwritten.
  auto again = run_command(common + " --steps 4");
  EXPECT_EQ(again.exit_code, 2) << again.output;
  EXPECT_NE(again.output.find("--resume"), std::string::npos) << again.output;

  // Resume from step 2 (drop the step-4 checkpoint) to step 4: the same losses as the first run.
  fs::remove(ddpm::checkpoint_path(run, 4));
  auto resumed = run_command(ddpm::test::tool_path("ddpm-train") + " --run-dir " + run + " --resume --threads 1");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  // Lines of steps 3 and 4 are written again: the same loss (bitwise), lr and grad norm; images/s differs.
  auto metrics2 = lines_of(run + "/metrics.jsonl");
  ASSERT_EQ(metrics2.size(), 4u);
  auto without_speed = [](const std::string& line) { return line.substr(0, line.find(",\"images_per_s\"")); };
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(without_speed(metrics2[i]), without_speed(metrics[i])) << i;

  // Longer: --steps on the command line overrides the stored config.
  auto longer = run_command(ddpm::test::tool_path("ddpm-train") + " --run-dir " + run + " --resume --threads 1 --steps 6");
  ASSERT_EQ(longer.exit_code, 0) << longer.output;
  EXPECT_EQ(ddpm::latest_checkpoint(run), ddpm::checkpoint_path(run, 6));
  EXPECT_EQ(lines_of(run + "/metrics.jsonl").size(), 6u);
  fs::remove_all(dir);
}

// --resume auto (what torchrun --max-restarts and requeued jobs repeat): starts a run that has
// no checkpoint, resumes one that has, accepts the run's own options and refuses changes.
TEST(TrainCli, ResumeAutoStartsOrResumes) {
  auto dir = ddpm::test::make_temp_dir("ddpm-train-auto");
  auto images = ddpm::test::make_image_folder(dir + "/images", 16, kVariedSizes);
  const std::string run = dir + "/run";
  const std::string common = ddpm::test::tool_path("ddpm-train") + " --config " + tiny_toml() + " --data " + images + " --run-dir " + run +
                             " --threads 1 --log-every 1 --save-every 2 --resume auto";
  auto first = run_command(common + " --steps 2");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("no checkpoint; starting the run"), std::string::npos) << first.output;
  EXPECT_EQ(ddpm::latest_checkpoint(run), ddpm::checkpoint_path(run, 2));
  // The same command line (with --config and the run's own lr) continues it, to --steps 4.
  auto second = run_command(common + " --steps 4 --lr 1e-3");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("resumed from"), std::string::npos) << second.output;
  EXPECT_EQ(ddpm::latest_checkpoint(run), ddpm::checkpoint_path(run, 4));
  EXPECT_EQ(lines_of(run + "/metrics.jsonl").size(), 4u);
  // A change to the run is refused, naming the option; a bad mode too.
  auto changed = run_command(common + " --steps 6 --lr 5e-4");
  EXPECT_EQ(changed.exit_code, 2) << changed.output;
  EXPECT_NE(changed.output.find("--lr"), std::string::npos) << changed.output;
  EXPECT_EQ(ddpm::latest_checkpoint(run), ddpm::checkpoint_path(run, 4));
  auto bad = run_command(ddpm::test::tool_path("ddpm-train") + " --run-dir " + run + " --resume sometimes");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--resume"), std::string::npos) << bad.output;
  fs::remove_all(dir);
}

TEST(TrainCli, ErrorsAreOneLine) {
  auto dir = ddpm::test::make_temp_dir("ddpm-train-err");
  auto images = ddpm::test::make_image_folder(dir + "/images", 16, kVariedSizes);
  auto no_ckpt = run_command(ddpm::test::tool_path("ddpm-train") + " --run-dir " + dir + "/none --resume");
  EXPECT_EQ(no_ckpt.exit_code, 2) << no_ckpt.output;
  auto missing = run_command(ddpm::test::tool_path("ddpm-train") + " --config " + tiny_toml() + " --data " + dir + "/nothing --run-dir " + dir +
                             "/r1");
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  auto typo = run_command(ddpm::test::tool_path("ddpm-train") + " --config " + tiny_toml() + " --learning-rate 3");
  EXPECT_EQ(typo.exit_code, 2) << typo.output;
  // A diverging run stops with a clear message and exit 1; the checkpoint before stays.
  auto nan = run_command(ddpm::test::tool_path("ddpm-train") + " --config " + tiny_toml() + " --data " + images + " --run-dir " + dir +
                         "/nan --lr 1e30 --grad-clip 0 --save-every 1 --steps 20 --threads 1");
  EXPECT_EQ(nan.exit_code, 1) << nan.output;
  EXPECT_TRUE(nan.output.find("loss is") != std::string::npos || nan.output.find("gradient norm is") != std::string::npos)
      << nan.output;
  EXPECT_EQ(nan.output.find("Exception raised from"), std::string::npos) << nan.output;
  const std::string latest = ddpm::latest_checkpoint(dir + "/nan");
  ASSERT_FALSE(latest.empty()) << nan.output;
  EXPECT_NO_THROW(ddpm::CheckpointReader{latest});
  fs::remove_all(dir);
}

TEST(TrainCli, SigintFinishesTheStepSavesAndExitsZero) {
  auto dir = ddpm::test::make_temp_dir("ddpm-train-sigint");
  auto images = ddpm::test::make_image_folder(dir + "/images", 16, kVariedSizes);
  const std::string run = dir + "/run";
  const std::string bin = ddpm::test::tool_path("ddpm-train"), config = tiny_toml(), log = dir + "/log.txt";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    FILE* out = std::freopen(log.c_str(), "w", stdout);
    (void)out;
    ::dup2(::fileno(stdout), 2);
    ::execl(bin.c_str(), bin.c_str(), "--config", config.c_str(), "--data", images.c_str(), "--run-dir", run.c_str(),
            "--steps", "1000000", "--log-every", "1", "--save-every", "1000000", "--threads", "1",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait until it is training (metrics appear), then interrupt it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (lines_of(run + "/metrics.jsonl").size() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_GE(lines_of(run + "/metrics.jsonl").size(), 2u);
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  std::ifstream in(log);
  std::string output((std::istreambuf_iterator<char>(in)), {});
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 0) << output;
  const std::string latest = ddpm::latest_checkpoint(run);
  ASSERT_FALSE(latest.empty()) << output;
  ddpm::CheckpointReader reader(latest);
  EXPECT_GE(reader.step(), 2);
  EXPECT_LT(reader.step(), 1000000);
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- progress reporting
#include "tools/progress.hpp"

namespace {
std::string run_progress(int tty) {
  std::FILE* f = std::tmpfile();
  {
    ddpm::cli::Progress p("train", 10, 0, 64, 5, f, tty);
    for (int s = 1; s <= 10; ++s) p.update(s, {{"loss", 0.5}});
  }
  std::rewind(f);
  std::string text;
  for (int ch; (ch = std::fgetc(f)) != EOF;) text.push_back(static_cast<char>(ch));
  std::fclose(f);
  return text;
}
}  // namespace

TEST(Progress, PlainLinesWhenNotATerminal) {
  const std::string text = run_progress(0);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;  // steps 5 and 10
  EXPECT_NE(text.find("train 5/10"), std::string::npos) << text;
  EXPECT_NE(text.find("train 10/10"), std::string::npos) << text;
  for (const char* part : {"loss 0.5", "it/s", "img/s", "ETA"}) EXPECT_NE(text.find(part), std::string::npos) << part;
  EXPECT_EQ(text.find('\r'), std::string::npos);
}

TEST(Progress, BarRedrawnInPlaceOnATerminal) {
  const std::string text = run_progress(1);
  EXPECT_NE(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("########################"), std::string::npos) << text;  // full bar at the end
  EXPECT_NE(text.find("10/10"), std::string::npos);
  EXPECT_EQ(text.back(), '\n');
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(ddpm::cli::Progress::format_duration(65), "01:05");
  EXPECT_EQ(ddpm::cli::Progress::format_duration(3725), "1:02:05");
  EXPECT_EQ(ddpm::cli::Progress::format_duration(NAN), "--:--");
}
