// Data integrity of runs and outputs (issue 27, items 8-14): another run's checkpoint, finite
// learning rates and weights, atomic outputs on a full disk, a closed log pipe, FIFOs, --threads,
// allocation failures, NaN features, unwritable outputs, messages naming file and key, SIGHUP.
// Every case here failed (exit 0 on bad input, a lost file, a killed run, a hang) before its fix.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "ddpm/data/image.hpp"
#include "ddpm/util/limits.hpp"
#include "ddpm/eval/classifier.hpp"
#include "ddpm/eval/stats.hpp"
#include "ddpm/eval/stats_file.hpp"
#include "ddpm/io/atomic_file.hpp"
#include "ddpm/io/read_file.hpp"
#include "io/toml.hpp"
#include "ddpm/pipeline/checkpoint.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace ddpm::test;  // the shared helpers of test_util.hpp

namespace {


// One line on stderr, no backtrace, the expected exit code and text.
void expect_one_line(const ddpm::test::CommandResult& r, int code, const std::string& needle) {
  EXPECT_EQ(r.exit_code, code) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_EQ(r.output.find("Exception raised from"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
}

bool any_tmp_under(const std::string& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().extension() == ".tmp") return true;
  return false;
}

// The sorted names of the files under `dir`, with their sizes and modification times.
std::vector<std::string> snapshot(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file())
      out.push_back(e.path().string() + " " + std::to_string(e.file_size()) + " " +
                    std::to_string(e.last_write_time().time_since_epoch().count()));
  std::sort(out.begin(), out.end());
  return out;
}

// Runs `f` in a child process whose files may grow to `bytes` at most, with SIGXFSZ ignored, so
// that a write past it fails with EFBIG as on a full disk. Returns the child's exit code:
// 0 when f returned, 1 when it threw.
template <class F>
int with_file_size_limit(rlim_t bytes, F f) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{bytes, bytes};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    try {
      f();
    } catch (...) {
      ::_exit(1);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A shell command line under a 4 KiB file size limit with SIGXFSZ ignored (a full disk).
std::string full_disk(const std::string& command) { return "bash -c 'ulimit -f 4; trap \"\" XFSZ; exec " + command + "'"; }

// One tiny trained run shared by the tests of a suite.
class TrainedRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = ddpm::test::make_temp_dir("ddpm-integrity");
    images_ = make_image_folder(root_ + "/images");
    auto r = run_command(train(root_ + "/run", "--steps 1"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  static std::string train(const std::string& run, const std::string& extra) {
    return tool_path("ddpm-train") + " --config " + tiny_toml() + " --data " + images_ + " --run-dir " + run +
           " --threads 1 " + extra;
  }
  static std::string run() { return root_ + "/run"; }
  static std::string root_, images_;
};
std::string TrainedRun::root_, TrainedRun::images_;

}  // namespace

// ---------------------------------------------------------------- 8: another run's checkpoint

TEST_F(TrainedRun, ResumeFromAnotherRunsCheckpointIsRefusedUnlessAllowedAndNeverPrunesEither) {
  const std::string a = root_ + "/a", b = root_ + "/b";
  ASSERT_EQ(run_command(train(a, "--steps 2 --save-every 1 --keep-last 1 --seed 5")).exit_code, 0);
  ASSERT_EQ(run_command(train(b, "--steps 3 --save-every 1 --keep-last 0")).exit_code, 0);
  const std::vector<std::string> a_before = snapshot(a);
  const std::string b_config = read_string(b + "/config.toml");
  const std::string foreign = ddpm::checkpoint_path(a, 2);

  auto refused = run_command(tool_path("ddpm-train") + " --run-dir " + b + " --resume-from " + foreign +
                             " --threads 1 --steps 4");
  expect_one_line(refused, 2, "--allow-config-change");
  EXPECT_NE(refused.output.find("seed"), std::string::npos) << refused.output;
  EXPECT_EQ(read_string(b + "/config.toml"), b_config);
  EXPECT_EQ(ddpm::list_checkpoints(b).size(), 3u);  // nothing moved aside or pruned

  // Allowed: B continues from A's step 2 with A's config but B's own keep-last 0 (A's keep-last 1
  // would leave one checkpoint); B's step 3 is moved aside, A's directory is not touched.
  auto allowed = run_command(tool_path("ddpm-train") + " --run-dir " + b + " --resume-from " + foreign +
                             " --allow-config-change --threads 1 --steps 4 --save-every 1");
  ASSERT_EQ(allowed.exit_code, 0) << allowed.output;
  EXPECT_EQ(ddpm::list_checkpoints(b).size(), 4u) << allowed.output;  // 1, 2 (B's), 3, 4 (from A's 2)
  EXPECT_EQ(ddpm::CheckpointReader(ddpm::checkpoint_path(b, 4)).config().train.seed, 5u);
  EXPECT_EQ(ddpm::CheckpointReader(ddpm::checkpoint_path(b, 4)).config().train.run_dir, b);
  EXPECT_EQ(snapshot(a), a_before);
}

// ---------------------------------------------------------------- 9: finite lr and weights

TEST_F(TrainedRun, LearningRatesMustBeFiniteAndPositive) {
  for (const std::string& lr : {"inf", "0", "-1e-3", "1e400"}) {
    auto r = run_command(train(root_ + "/lr", "--steps 1 --lr " + lr));
    EXPECT_EQ(r.exit_code, 2) << lr << ": " << r.output;
    EXPECT_NE(r.output.find("lr"), std::string::npos) << r.output;
    EXPECT_TRUE(ddpm::list_checkpoints(root_ + "/lr").empty()) << lr;
  }
  auto eps = run_command(train(root_ + "/lr", "--steps 1 --adam-eps inf"));
  EXPECT_EQ(eps.exit_code, 2) << eps.output;
}

TEST_F(TrainedRun, NoCheckpointIsWrittenFromNonFiniteWeights) {
  // Finite options whose first step overflows float32 weights: the decay factor 1 - lr·wd is
  // -3.4e38, a unit GroupNorm weight times it plus the step lr·sign(g) = 3e37 exceeds 3.4e38. The
  // step's loss was finite; only the weights say the run diverged.
  const std::string dir = root_ + "/diverged";
  auto r = run_command(train(dir, "--steps 3 --save-every 1 --grad-clip 0 --lr 3e37 --weight-decay 11.3"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("NaN or infinite"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no checkpoint was saved"), std::string::npos) << r.output;
  EXPECT_TRUE(ddpm::list_checkpoints(dir).empty());
  EXPECT_FALSE(any_tmp_under(dir));
}

TEST(SaveCheckpoint, RefusesNonFiniteWeightsAndKeepsTheOldFile) {
  const std::string dir = ddpm::test::make_temp_dir("ddpm-nonfinite");
  ddpm::Config config = ddpm::config_from_file(tiny_toml());
  config.set_shape(1, 8, 8);
  ddpm::UNet model(config.model);
  ddpm::CheckpointContents c;
  c.model = model.get();
  c.config_toml = "lr = 0.001\n";
  const std::string path = dir + "/ckpt.pt";
  ASSERT_NO_THROW(ddpm::save_checkpoint(path, c));
  const std::string good = read_string(path);
  model->parameters().back().data().view(-1)[0].fill_(std::numeric_limits<double>::quiet_NaN());
  EXPECT_NE(ddpm::first_non_finite(c).find("model weight"), std::string::npos);
  EXPECT_THROW(ddpm::save_checkpoint(path, c), std::runtime_error);
  EXPECT_EQ(read_string(path), good);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- 10: atomic outputs

TEST_F(TrainedRun, SampleOnAFullDiskKeepsTheOldGrid) {
  const std::string out = root_ + "/grid.png";
  write_bytes(out, std::string("the old grid"));
  auto r = run_command(full_disk(tool_path("ddpm-sample") + " --checkpoint " + run() + " --n 64 --steps 2 --threads 1 --out " +
                                 out));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(out), std::string::npos) << r.output;
  EXPECT_EQ(read_string(out), "the old grid");
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  // The same command with room to write replaces it with a PNG.
  auto ok = run_command(tool_path("ddpm-sample") + " --checkpoint " + run() + " --n 4 --steps 2 --threads 1 --out " + out);
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_GT(ddpm::load_image(out).width, 8);
}

TEST(AtomicOutputs, PngAndNpzOnAFullDiskLeaveTheOldFileAndNoTmp) {
  const std::string dir = ddpm::test::make_temp_dir("ddpm-efbig");
  ddpm::Image im;
  im.width = im.height = 64;
  im.channels = 3;
  im.pixels.resize(64 * 64 * 3);
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  const std::string png = dir + "/a.png", npz = dir + "/s.npz";
  write_bytes(png, std::string("old png"));
  write_bytes(npz, std::string("old npz"));
  EXPECT_EQ(with_file_size_limit(256, [&] { ddpm::save_png(png, im); }), 1);  // the PNG is ~1.5 KB
  ddpm::eval::FeatureStats stats;
  stats.mu = at::zeros({64}, at::kDouble);
  stats.sigma = at::eye(64, at::kDouble);
  EXPECT_EQ(with_file_size_limit(4096, [&] { ddpm::eval::write_stats_npz(npz, stats); }), 1);
  EXPECT_EQ(read_string(png), "old png");
  EXPECT_EQ(read_string(npz), "old npz");
  EXPECT_FALSE(any_tmp_under(dir));
  // With room, both are written (and read back).
  ddpm::save_png(png, im);
  ddpm::eval::write_stats_npz(npz, stats);
  EXPECT_EQ(ddpm::load_image(png).pixels, im.pixels);
  EXPECT_TRUE(ddpm::eval::read_stats_npz(npz).sigma.equal(stats.sigma));
  fs::remove_all(dir);
}

TEST(AtomicOutputs, ADeviceIsWrittenInPlaceNotReplaced) {
  // Renaming a temporary over /dev/null would replace the device with a file.
  ddpm::io::write_file_atomically("/dev/null", "bytes");
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_FALSE(fs::exists("/dev/null.tmp"));
  EXPECT_THROW(ddpm::io::write_file_atomically("/dev/full", "bytes"), std::runtime_error);
}

// ---------------------------------------------------------------- 12: a closed log pipe

TEST_F(TrainedRun, AClosedLogPipeDoesNotEndTheRun) {
  // ddpm-train ... 2>&1 | head: the reader is gone before the first log line.
  const std::string dir = root_ + "/piped";
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    const std::vector<std::string> argv = {tool_path("ddpm-train"), "--config", tiny_toml(), "--data", images_, "--run-dir",
                                           dir, "--threads", "1", "--steps", "3", "--log-every", "1"};
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_EQ(wait_exit(pid, 300), 0);  // not 141 (SIGPIPE)
  EXPECT_EQ(ddpm::latest_checkpoint(dir), ddpm::checkpoint_path(dir, 3));
}

// ---------------------------------------------------------------- 13: FIFOs and --threads

TEST(Bounds, AFifoIsRefusedWithoutBlocking) {
  const std::string dir = ddpm::test::make_temp_dir("ddpm-fifo");
  const std::string fifo = dir + "/weights.pt";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto r = run_command("timeout 60 " + tool_path("ddpm-convert") + " " + fifo + " --out " + dir + "/out.pt");
  expect_one_line(r, 2, "not a regular file");
  EXPECT_NE(r.output.find(fifo), std::string::npos) << r.output;
  const std::string msg = ddpm::test::error_of([&] { ddpm::io::read_regular_file(fifo, "torch file", ddpm::limits::kMaxModelFileBytes); });
  EXPECT_NE(msg.find("torch file '" + fifo + "': is not a regular file"), std::string::npos) << msg;
  EXPECT_NE(ddpm::test::error_of([&] { ddpm::load_image("/dev/zero"); }).find("not a regular file"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(Bounds, ThreadsAreBounded) {
  auto r = run_command("timeout 60 " + tool_path("ddpm-train") + " --config " + tiny_toml() + " --dry-run --threads 100000");
  expect_one_line(r, 2, "--threads");
  auto ok = run_command(tool_path("ddpm-train") + " --config " + tiny_toml() + " --dry-run --threads 2");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

// ---------------------------------------------------------------- 14: exit codes and messages

TEST(ExitCodes, AnAllocationTheConfigAsksForIsExit2) {
  // Under a 3 GB address space an ordinary dry run works, a 65536-channel model cannot be built.
  const std::string limit = "bash -c 'ulimit -v 3000000; exec ";
  auto control = run_command(limit + tool_path("ddpm-train") + " --config " + tiny_toml() + " --dry-run --threads 1'");
  if (control.exit_code != 0) GTEST_SKIP() << "LibTorch does not start under a 3 GB address space: " << control.output;
  auto r = run_command(limit + tool_path("ddpm-train") + " --config " + tiny_toml() +
                       " --dry-run --threads 1 --base-channels 65536'");
  expect_one_line(r, 2, "ddpm-train: error:");
}

TEST_F(TrainedRun, UnwritableOutputsAreExit2) {
  // A regular file where the output's directory should be.
  write_bytes(root_ + "/a-file", std::string("x"));
  auto r = run_command(tool_path("ddpm-sample") + " --checkpoint " + run() + " --n 1 --steps 2 --threads 1 --out " + root_ +
                       "/a-file/grid.png");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("error: cannot write '" + root_ + "/a-file/grid.png'"), std::string::npos) << r.output;
  // ddpm-eval --json the same way (the classifier file is written atomically too).
  ddpm::eval::ClassifierConfig cc;
  cc.channels = 3;
  cc.height = cc.width = 8;
  cc.classes = 2;
  cc.hidden = 8;
  ddpm::eval::save_classifier(root_ + "/features.pt", ddpm::eval::Classifier(cc), 0.5);
  auto json = run_command(tool_path("ddpm-eval") + " compare --threads 1 --features " + root_ + "/features.pt --real " +
                          images_ + " --fake " + images_ + " --kid-subset-size 4 --json " + root_ + "/a-file/m.json");
  EXPECT_EQ(json.exit_code, 2) << json.output;
  EXPECT_NE(json.output.find(root_ + "/a-file/m.json"), std::string::npos) << json.output;
}

TEST_F(TrainedRun, BadOptionValuesAreRefused) {
  auto names = run_command(tool_path("ddpm-train") + " --config " + tiny_toml() + " --dry-run --num-classes 3 --class-names a,a,b");
  expect_one_line(names, 2, "'a' appears twice");
  auto limit = run_command(tool_path("ddpm-eval") + " compare --real " + images_ + " --fake " + images_ + " --limit-real -5");
  expect_one_line(limit, 2, "--limit-real");
  auto cls = run_command(tool_path("ddpm-sample") + " --checkpoint " + run() + " --n 1 --steps 2 --class '' --out " + root_ +
                         "/c.png");
  expect_one_line(cls, 2, "--class");
  EXPECT_FALSE(fs::exists(root_ + "/c.png"));
}

TEST(Messages, ABadValueNamesTheFileAndTheKey) {
  const std::string dir = ddpm::test::make_temp_dir("ddpm-badint");
  // A run directory stopped before its first checkpoint: --resume reads its config.toml.
  write_bytes(dir + "/run/config.toml", std::string("seed = 1\nsteps = 1.5\n"));
  auto r = run_command(tool_path("ddpm-train") + " --run-dir " + dir + "/run --resume --threads 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  const std::string error = r.output.substr(r.output.find("error:"));  // the warning before it names the file too
  EXPECT_NE(error.find("expected an integer"), std::string::npos) << r.output;
  EXPECT_NE(error.find(dir + "/run/config.toml"), std::string::npos) << r.output;
  EXPECT_NE(error.find("steps"), std::string::npos) << r.output;
  // The TOML reader names the key of a malformed value.
  const std::string msg = ddpm::test::error_of([] { ddpm::toml::parse("seed = 1\nsteps = 0x\n"); });
  EXPECT_NE(msg.find("line 2: key 'steps'"), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(Messages, NanFeaturesNameTheFeatureNetworkBeforeTheEigenDecomposition) {
  at::Tensor features = at::randn({8, 4}, at::kDouble);
  features[3][1] = std::numeric_limits<double>::quiet_NaN();
  const std::string msg = ddpm::test::error_of([&] { ddpm::eval::compute_stats(features, "torchscript 'net.pt'"); });
  EXPECT_NE(msg.find("torchscript 'net.pt'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1 of 32"), std::string::npos) << msg;
  ddpm::eval::FeatureStats ok = ddpm::eval::compute_stats(at::randn({8, 4}, at::kDouble));
  at::Tensor nan_sigma = ok.sigma.clone();
  nan_sigma[0][0] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(ddpm::eval::frechet_distance(ok.mu, nan_sigma, ok.mu, ok.sigma), std::invalid_argument);
}

TEST_F(TrainedRun, SighupSavesAndLeavesNoTmp) {
  const std::string dir = root_ + "/hup", log = root_ + "/hup.log";
  const pid_t pid = spawn({tool_path("ddpm-train"), "--config", tiny_toml(), "--data", images_, "--run-dir", dir, "--threads",
                           "1", "--steps", "1000000", "--save-every", "2", "--log-every", "1"},
                          log);
  ASSERT_TRUE(wait_for([&] { return !ddpm::latest_checkpoint(dir).empty(); }, 120)) << read_string(log);
  ::kill(pid, SIGHUP);
  EXPECT_EQ(wait_exit(pid, 120), 0) << read_string(log);
  EXPECT_NE(read_string(log).find("interrupted at step"), std::string::npos) << read_string(log);
  EXPECT_FALSE(any_tmp_under(dir));
  EXPECT_NO_THROW(ddpm::CheckpointReader{ddpm::latest_checkpoint(dir)});
}
