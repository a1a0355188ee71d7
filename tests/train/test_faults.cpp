// Faults and hostile input (issue 18): bit flips, full disks, locks, resume rules, signals,
// write errors, unbounded sizes. Every case here failed (crashed, hung or lied) before its fix.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/output-archive.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <algorithm>
#include <cstring>
#include <thread>

#include "ddpm/io/torch_file.hpp"
#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/data/dataset.hpp"
#include "ddpm/data/image.hpp"
#include "io/crc32.hpp"
#include "ddpm/io/safetensors.hpp"
#include "ddpm/io/torch_file.hpp"
#include "ddpm/pipeline/config.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace ddpm::test;  // the shared helpers of test_util.hpp

namespace {


size_t lines_in(const std::string& path) {
  std::ifstream in(path);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

// The last line of a command's output, and whether the output is free of backtraces/aborts.
void expect_clean_error(const ddpm::test::CommandResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, 134) << r.output;  // abort
  EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Exception raised from"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
}

struct TinyModel {
  std::shared_ptr<torch::nn::LinearImpl> model = std::make_shared<torch::nn::LinearImpl>(64, 32);
  torch::optim::AdamW optimizer{model->parameters(), torch::optim::AdamWOptions(0.01)};
  ddpm::CheckpointContents contents(int64_t step) const {
    ddpm::CheckpointContents c;
    c.config_toml = "lr=0.01\n";
    c.step = step;
    c.model = model.get();
    c.optimizer = &optimizer;
    return c;
  }
};

}  // namespace

// ---------------------------------------------------------------- checksums

TEST(Crc32, CheckValueOfTheStandard) {
  // The CRC-32/ISO-HDLC check value (the zip/gzip CRC) of "123456789".
  EXPECT_EQ(ddpm::crc32_update(0, "123456789", 9), 0xCBF43926u);
  // Split anywhere, the same result.
  EXPECT_EQ(ddpm::crc32_update(ddpm::crc32_update(0, "1234", 4), "56789", 5), 0xCBF43926u);
  EXPECT_EQ(ddpm::crc32_update(0, "", 0), 0u);
}

TEST(CheckpointIntegrity, EveryBitFlipInATensorIsReported) {
  auto dir = ddpm::test::make_temp_dir("ddpm-flip");
  TinyModel m;
  const std::string path = dir + "/ckpt.pt";
  ddpm::save_checkpoint(path, m.contents(5));
  ASSERT_NO_THROW(ddpm::CheckpointReader{path});
  const std::vector<uint8_t> good = read_bytes(path);
  // Flip one bit in each tensor record (the model's weight is 64×32 floats).
  int flipped = 0;
  for (const auto& r : ddpm::test::zip_entries(path)) {
    if (r.size < 64 || r.name.find("/data/") == std::string::npos) continue;
    for (uint64_t at : {r.offset, r.offset + r.size / 2, r.offset + r.size - 1}) {
      std::vector<uint8_t> bad = good;
      bad[at] ^= 0x10;
      write_bytes(path, bad);
      try {
        ddpm::CheckpointReader reader(path);
        ADD_FAILURE() << "a flipped bit at " << at << " in " << r.name << " loaded silently";
      } catch (const ddpm::CorruptCheckpointError& e) {
        EXPECT_NE(std::string(e.what()).find("CRC-32"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      }
      ++flipped;
    }
  }
  EXPECT_GE(flipped, 6);  // weight, bias, optimizer moments at least
  fs::remove_all(dir);
}

TEST(CheckpointIntegrity, FilesOfTheOldWriterStillLoad) {
  // Format-1 files written by LibTorch's own file writer (before checksums were verified).
  auto dir = ddpm::test::make_temp_dir("ddpm-old");
  TinyModel m;
  torch::serialize::OutputArchive archive;
  archive.write("libddpm", c10::IValue(std::string("libddpm-checkpoint")));
  archive.write("format_version", c10::IValue(int64_t{1}));
  archive.write("config", c10::IValue(std::string("lr=0.01\n")));
  archive.write("step", c10::IValue(int64_t{3}));
  torch::serialize::OutputArchive sub(archive.compilation_unit());
  m.model->save(sub);
  archive.write("model", sub);
  archive.save_to(dir + "/old.pt");
  ddpm::CheckpointReader reader(dir + "/old.pt");
  EXPECT_EQ(reader.step(), 3);
  TinyModel other;
  reader.load_model(*other.model);
  EXPECT_TRUE(other.model->weight.equal(m.model->weight));
  fs::remove_all(dir);
}

TEST(CheckpointIntegrity, ARunDirectoryWithACorruptLatestNamesThePreviousOne) {
  auto dir = ddpm::test::make_temp_dir("ddpm-flip-run");
  TinyModel m;
  ddpm::save_checkpoint(ddpm::checkpoint_path(dir, 1), m.contents(1));
  ddpm::save_checkpoint(ddpm::checkpoint_path(dir, 2), m.contents(2));
  auto bytes = read_bytes(ddpm::checkpoint_path(dir, 2));
  const auto records = ddpm::test::zip_entries(ddpm::checkpoint_path(dir, 2));
  for (const auto& r : records)
    if (r.name.find("/data/") != std::string::npos) bytes[r.offset + r.size / 2] ^= 1;
  write_bytes(ddpm::checkpoint_path(dir, 2), bytes);
  const std::string msg = ddpm::test::error_of([&] { ddpm::CheckpointReader{dir}; });
  EXPECT_NE(msg.find("corrupt"), std::string::npos) << msg;
  EXPECT_NE(msg.find(ddpm::checkpoint_path(dir, 1)), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(CheckpointIntegrity, HostileZipDirectoriesAreErrorsNotCrashes) {
  auto dir = ddpm::test::make_temp_dir("ddpm-zip");
  TinyModel m;
  const std::string path = dir + "/ckpt.pt";
  ddpm::save_checkpoint(path, m.contents(1));
  const auto good = read_bytes(path);
  // Every byte of the last 200 (the central directory and its end record) set to 0xFF in turn.
  for (size_t k = good.size() - 200; k < good.size(); k += 3) {
    auto bad = good;
    bad[k] = 0xFF;
    write_bytes(path, bad);
    (void)ddpm::test::error_of([&] { ddpm::io::ZipReader(ddpm::test::read_string(path)).check_crcs(); });  // must return
    EXPECT_THROW(
        {
          try {
            ddpm::CheckpointReader reader(path);
            reader.step();
            throw std::invalid_argument("loaded");  // some header bytes are not covered: fine
          } catch (const std::invalid_argument&) {
            throw;
          }
        },
        std::invalid_argument);
  }
  fs::remove_all(dir);
}

TEST(CheckpointIntegrity, AFifoIsRefusedNotReadForever) {
  auto dir = ddpm::test::make_temp_dir("ddpm-fifo");
  const std::string fifo = dir + "/ckpt.pt";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  auto r = run_command("timeout 60 " + tool_path("ddpm-sample") + " --checkpoint " + fifo + " --out " + dir + "/x.png");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("not a regular file"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- full disk

class FullDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ddpm::test::make_temp_dir("ddpm-fulldisk");
    mnt_ = root_ + "/mnt";
    fs::create_directories(mnt_);
    images_ = make_image_folder(root_ + "/images");
    // One checkpoint of the tiny model, to size the file system.
    auto r = run_command(tool_path("ddpm-train") + " --config " + tiny_toml() + " --data " + images_ + " --run-dir " +
                         root_ + "/probe --steps 1 --threads 1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ckpt_size_ = fs::file_size(ddpm::checkpoint_path(root_ + "/probe", 1));
  }
  void TearDown() override {
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
    fs::remove_all(root_);
  }
  // A tmpfs of `bytes` at mnt_; false (and the test skips, saying why) where mounting is not allowed.
  bool mount_tmpfs(uint64_t bytes) {
    const std::string opts = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", mnt_.c_str(), "tmpfs", 0, opts.c_str()) != 0) return false;
    mounted_ = true;
    return true;
  }
  std::string train(const std::string& run, const std::string& extra) const {
    return tool_path("ddpm-train") + " --config " + tiny_toml() + " --data " + images_ + " --run-dir " + run +
           " --threads 1 " + extra;
  }
  std::string root_, mnt_, images_;
  uint64_t ckpt_size_ = 0;
  bool mounted_ = false;
};

TEST_F(FullDisk, ASaveThatDoesNotFitIsOneLineAndThePreviousCheckpointStays) {
  // Room for one checkpoint and a half: the second save runs out of space.
  if (!mount_tmpfs(ckpt_size_ * 3 / 2 + 64 * 1024))
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "): needs root / CAP_SYS_ADMIN";
  const std::string run = mnt_ + "/run";
  auto r = run_command(train(run, "--steps 4 --save-every 1 --keep-last 3"));
  expect_clean_error(r, "No space left on device");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("is intact"), std::string::npos) << r.output;
  ASSERT_EQ(ddpm::list_checkpoints(run).size(), 1u) << r.output;
  ddpm::CheckpointReader reader(ddpm::latest_checkpoint(run));
  EXPECT_EQ(reader.step(), 1);
  for (const auto& e : fs::recursive_directory_iterator(run)) EXPECT_NE(e.path().extension(), ".tmp") << e.path();
}

TEST_F(FullDisk, SigintOnAFullDiskIsOneLineAndLeftoverTmpFilesNeverBlockResume) {
  if (!mount_tmpfs(ckpt_size_ * 3 + 64 * 1024))
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "): needs root / CAP_SYS_ADMIN";
  const std::string run = mnt_ + "/run";
  ASSERT_EQ(run_command(train(run, "--steps 2 --save-every 2")).exit_code, 0);
  // Fill the disk up to half a checkpoint; metrics lines still fit, a checkpoint does not.
  {
    std::ofstream filler(mnt_ + "/filler", std::ios::binary);
    const std::string block(4096, 'x');
    for (uint64_t left = fs::space(mnt_).available; left > ckpt_size_ / 2; left = fs::space(mnt_).available) {
      filler.write(block.data(), block.size());
      filler.flush();
      if (!filler) break;
    }
  }
  const std::string log = root_ + "/log.txt";
  pid_t pid = spawn({tool_path("ddpm-train"), "--run-dir", run, "--resume", "--threads", "1", "--steps", "1000000",
                     "--save-every", "1000000", "--log-every", "1"},
                    log);
  ASSERT_TRUE(wait_for([&] { return lines_in(run + "/metrics.jsonl") >= 4; }, 120));
  ::kill(pid, SIGINT);
  const int code = wait_exit(pid, 120);
  ddpm::test::CommandResult r{code, ddpm::test::read_string(log)};
  expect_clean_error(r, "No space left on device");
  EXPECT_EQ(code, 1) << r.output;
  EXPECT_EQ(ddpm::latest_checkpoint(run), ddpm::checkpoint_path(run, 2));
  EXPECT_NO_THROW(ddpm::CheckpointReader{ddpm::latest_checkpoint(run)});
  for (const auto& e : fs::recursive_directory_iterator(run)) EXPECT_NE(e.path().extension(), ".tmp") << e.path();

  // Leftovers of a save killed midway (kill -9 leaves them) must not block a resume.
  fs::remove(mnt_ + "/filler");
  write_bytes(run + "/config.toml.tmp", std::string(1000, 'x'));
  write_bytes(run + "/checkpoints/ckpt-00000003.pt.tmp", std::string(1000, 'x'));
  auto resumed = run_command(tool_path("ddpm-train") + " --run-dir " + run + " --resume --threads 1 --steps 3");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(ddpm::latest_checkpoint(run), ddpm::checkpoint_path(run, 3));
  EXPECT_FALSE(fs::exists(run + "/config.toml.tmp"));
  EXPECT_FALSE(fs::exists(run + "/checkpoints/ckpt-00000003.pt.tmp"));
}

TEST_F(FullDisk, MetricsThatCannotBeWrittenStopTheRun) {
  if (!mount_tmpfs(ckpt_size_ * 2 + 64 * 1024))
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "): needs root / CAP_SYS_ADMIN";
  const std::string run = mnt_ + "/run";
  ASSERT_EQ(run_command(train(run, "--steps 1")).exit_code, 0);
  {  // leave ~12 KB: config.toml is rewritten, then about a hundred metrics lines fit
    std::ofstream filler(mnt_ + "/filler", std::ios::binary);
    const std::string block(4096, 'x');
    while (fs::space(mnt_).available > 12 * 1024 && filler.write(block.data(), block.size()) && filler.flush()) {
    }
  }
  // (Without the TensorBoard file, which would compete for the last bytes: either log's failure
  // stops the run, and this test is about metrics.jsonl's.)
  auto r = run_command(tool_path("ddpm-train") + " --run-dir " + run +
                       " --resume --threads 1 --steps 1000000 --log-every 1 --save-every 1000000 --no-tensorboard");
  expect_clean_error(r, "metrics.jsonl");
  EXPECT_NE(r.output.find("cannot be written"), std::string::npos) << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(ddpm::latest_checkpoint(run), ddpm::checkpoint_path(run, 1)) << r.output;
}

// ---------------------------------------------------------------- run directory rules

class RunDir : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ddpm::test::make_temp_dir("ddpm-rundir");
    images_ = make_image_folder(root_ + "/images");
    run_ = root_ + "/run";
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string train(const std::string& extra) const {
    return tool_path("ddpm-train") + " --config " + tiny_toml() + " --data " + images_ + " --run-dir " + run_ +
           " --threads 1 " + extra;
  }
  std::string resume(const std::string& extra) const {
    return tool_path("ddpm-train") + " --run-dir " + run_ + " --resume --threads 1 " + extra;
  }
  std::string root_, images_, run_;
};

TEST_F(RunDir, ResumeChangesOnlyOperationalKeys) {
  ASSERT_EQ(run_command(train("--steps 2")).exit_code, 0);
  for (const std::string& bad : {"--timesteps 50", "--base-channels 32", "--prediction v", "--lr 1", "--seed 3"}) {
    auto r = run_command(resume(bad + " --steps 3"));
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.output;
    EXPECT_NE(r.output.find(bad.substr(0, bad.find(' '))), std::string::npos) << r.output;
  }
  auto config = run_command(resume("--config " + tiny_toml() + " --steps 3"));
  EXPECT_EQ(config.exit_code, 2) << config.output;
  EXPECT_NE(config.output.find("--config"), std::string::npos) << config.output;
  EXPECT_EQ(ddpm::latest_checkpoint(run_), ddpm::checkpoint_path(run_, 2));
  // Fewer steps than done: an error that says so, not "done".
  auto shorter = run_command(resume("--steps 1"));
  EXPECT_EQ(shorter.exit_code, 2) << shorter.output;
  EXPECT_NE(shorter.output.find("already at step 2"), std::string::npos) << shorter.output;
  // Operational keys are fine.
  auto ok = run_command(resume("--steps 3 --log-every 1 --save-every 5 --keep-last 2 --sample-every 3 --sample-n 1 "
                               "--sample-steps 2 --workers 1 --device cpu"));
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_EQ(ddpm::latest_checkpoint(run_), ddpm::checkpoint_path(run_, 3));
}

TEST_F(RunDir, ResumingFromAnOlderCheckpointMovesTheNewerOnesAside) {
  ASSERT_EQ(run_command(train("--steps 4 --save-every 1 --keep-last 0")).exit_code, 0);
  const auto ckpt4 = tensor_multiset(ddpm::checkpoint_path(run_, 4));
  auto r = run_command(tool_path("ddpm-train") + " --run-dir " + run_ + " --resume-from " + ddpm::checkpoint_path(run_, 2) +
                       " --threads 1 --steps 3 --keep-last 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("abandoned-"), std::string::npos) << r.output;
  // Only this trajectory's checkpoints are in checkpoints/ (keep-last 1: step 3); 3 and 4 of the
  // abandoned run are kept in checkpoints/abandoned-<time>/.
  EXPECT_EQ(ddpm::list_checkpoints(run_), std::vector<std::string>{ddpm::checkpoint_path(run_, 3)});
  std::vector<std::string> aside;
  for (const auto& e : fs::recursive_directory_iterator(run_ + "/checkpoints"))
    if (e.path().parent_path().filename().string().rfind("abandoned-", 0) == 0) aside.push_back(e.path().filename());
  std::sort(aside.begin(), aside.end());
  EXPECT_EQ(aside, (std::vector<std::string>{"ckpt-00000003.pt", "ckpt-00000004.pt"}));
  // Continuing to step 4 gives the abandoned run's step 4 again (deterministic on the CPU).
  ASSERT_EQ(run_command(resume("--steps 4")).exit_code, 0);
  EXPECT_TRUE(tensor_multiset(ddpm::checkpoint_path(run_, 4)) == ckpt4);  // the weights, EMA, moments, RNG
}

TEST_F(RunDir, ACorruptLatestCheckpointIsSkippedLoudly) {
  ASSERT_EQ(run_command(train("--steps 3 --save-every 1 --keep-last 0")).exit_code, 0);
  const std::string latest = ddpm::checkpoint_path(run_, 3);
  auto bytes = read_bytes(latest);
  for (const auto& r : ddpm::test::zip_entries(latest))
    if (r.name.find("/data/") != std::string::npos && r.size > 1000) bytes[r.offset + 7] ^= 0x40;
  write_bytes(latest, bytes);
  auto sample = run_command(tool_path("ddpm-sample") + " --checkpoint " + run_ + " --n 1 --steps 2 --out " + root_ + "/s.png");
  EXPECT_EQ(sample.exit_code, 2) << sample.output;
  EXPECT_NE(sample.output.find("corrupt"), std::string::npos) << sample.output;
  EXPECT_NE(sample.output.find(ddpm::checkpoint_path(run_, 2)), std::string::npos) << sample.output;
  auto r = run_command(resume("--steps 3"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("falling back to " + ddpm::checkpoint_path(run_, 2)), std::string::npos) << r.output;
  EXPECT_NO_THROW(ddpm::CheckpointReader{ddpm::checkpoint_path(run_, 3)});
}

TEST_F(RunDir, ASecondWriterIsRefusedAndAStaleLockIsTakenOver) {
  const std::string log = root_ + "/log.txt";
  pid_t pid = spawn({tool_path("ddpm-train"), "--config", tiny_toml(), "--data", images_, "--run-dir", run_, "--threads",
                     "1", "--steps", "1000000", "--save-every", "2", "--log-every", "1"},
                    log);
  ASSERT_TRUE(wait_for([&] { return !ddpm::latest_checkpoint(run_).empty(); }, 120)) << ddpm::test::read_string(log);
  auto second = run_command(resume("--steps 2000000"));
  EXPECT_EQ(second.exit_code, 2) << second.output;
  EXPECT_NE(second.output.find("in use"), std::string::npos) << second.output;
  EXPECT_NE(second.output.find(std::to_string(pid)), std::string::npos) << second.output;
  EXPECT_EQ(std::count(second.output.begin(), second.output.end(), '\n'), 1) << second.output;
  auto fresh = run_command(train("--steps 5"));
  EXPECT_EQ(fresh.exit_code, 2) << fresh.output;
  // kill -9 leaves the lock file with its pid; the next run takes it over.
  ::kill(pid, SIGKILL);
  wait_exit(pid, 60);
  const int64_t at = ddpm::CheckpointReader(ddpm::latest_checkpoint(run_)).step();
  auto after = run_command(resume("--steps " + std::to_string(at)));
  EXPECT_EQ(after.exit_code, 0) << after.output;
  EXPECT_NE(after.output.find("stale lock of pid " + std::to_string(pid)), std::string::npos) << after.output;
}

TEST_F(RunDir, SigtermIsSeenBetweenMicroBatches) {
  const std::string log = root_ + "/log.txt";
  pid_t pid = spawn({tool_path("ddpm-train"), "--config", tiny_toml(), "--data", images_, "--run-dir", run_, "--threads",
                     "1", "--grad-accum", "65536", "--steps", "2"},
                    log);
  ASSERT_TRUE(wait_for([&] { return fs::exists(run_ + "/metrics.jsonl"); }, 120)) << ddpm::test::read_string(log);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // well inside the first step's micro-batches
  ::kill(pid, SIGTERM);
  const int code = wait_exit(pid, 60);
  EXPECT_EQ(code, 0) << ddpm::test::read_string(log);
  EXPECT_NE(ddpm::test::read_string(log).find("interrupted"), std::string::npos) << ddpm::test::read_string(log);
}

// ---------------------------------------------------------------- write errors and bounds

TEST(WriteErrors, PngToAFullDeviceFails) {
  ddpm::Image im;
  im.width = im.height = 4;
  im.channels = 1;
  im.pixels.assign(16, 7);
  EXPECT_THROW(ddpm::save_png("/dev/full", im), std::runtime_error);
  auto dir = ddpm::test::make_temp_dir("ddpm-devfull");
  ddpm::save_png(dir + "/a.png", im);
  auto strip = run_command(tool_path("ddpm-schedule") + " --timesteps 10 --strip " + dir + "/a.png --frames 2 --out /dev/full");
  expect_clean_error(strip, "/dev/full");
  // In a sub-shell, so that only its stdout goes to /dev/full and the error reaches us.
  auto table = run_command("sh -c '" + tool_path("ddpm-schedule") + " --timesteps 10 > /dev/full'");
  expect_clean_error(table, "standard output");
  fs::remove_all(dir);
}

TEST(WriteErrors, SampleToAFullDeviceFails) {
  auto dir = ddpm::test::make_temp_dir("ddpm-sample-full");
  auto images = make_image_folder(dir + "/images");
  ASSERT_EQ(run_command(tool_path("ddpm-train") + " --config " + tiny_toml() + " --data " + images + " --run-dir " + dir +
                        "/run --steps 1 --threads 1")
                .exit_code,
            0);
  auto r = run_command(tool_path("ddpm-sample") + " --checkpoint " + dir + "/run --n 2 --steps 2 --threads 1 --out /dev/full");
  expect_clean_error(r, "/dev/full");
  EXPECT_EQ(r.output.find("wrote"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

TEST(Bounds, WorkersAreBounded) {
  auto dir = ddpm::test::make_temp_dir("ddpm-workers");
  auto images = make_image_folder(dir + "/images");
  auto r = run_command(tool_path("ddpm-train") + " --config " + tiny_toml() + " --data " + images + " --run-dir " + dir +
                       "/run --steps 1 --threads 1 --workers 100000");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--workers"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

TEST(Bounds, IdxDimensionsWhoseProductOverflowsAreRefused) {
  auto dir = ddpm::test::make_temp_dir("ddpm-idx-overflow");
  // 2^22 × 2^21 × 2^21 = 2^64 ≡ 0 (mod 2^64): an unchecked product says "16 bytes expected".
  const std::vector<uint8_t> header = {0, 0, 8, 3, 0, 0x40, 0, 0, 0, 0x20, 0, 0, 0, 0x20, 0, 0};
  write_bytes(dir + "/bomb.idx", header);
  const std::string msg = ddpm::test::error_of([&] { ddpm::read_idx_images(dir + "/bomb.idx"); });
  EXPECT_NE(msg.find(dir + "/bomb.idx"), std::string::npos) << msg;
  EXPECT_NE(msg.find("too large"), std::string::npos) << msg;
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- fuzz corpus

// tests/data/fuzz/<reader>/*: hostile inputs found by hand and by scripts/fuzz.sh. Each must be
// refused with an exception naming the file; a crash, a hang or an allocation without bound
// fails this test (the process dies).
TEST(FuzzCorpus, HostileFilesAreErrorsNamingTheFile) {
  const std::string root = ddpm::test::data_dir() + "/fuzz";
  int files = 0;
  auto check = [&](const std::string& reader, const std::function<void(const std::string&)>& read) {
    for (const auto& e : fs::directory_iterator(root + "/" + reader)) {
      const std::string path = e.path().string();
      const std::string msg = ddpm::test::error_of([&] { read(path); });
      EXPECT_FALSE(msg.empty()) << path << " was accepted by the " << reader << " reader";
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      ++files;
    }
  };
  check("idx", [](const std::string& p) { ddpm::read_idx_images(p); });
  check("image", [](const std::string& p) { ddpm::load_image(p); });
  check("checkpoint", [](const std::string& p) { ddpm::CheckpointReader{p}; });
  check("torch_file", [](const std::string& p) { ddpm::torch_file::read_state_dict(p); });
  check("toml", [](const std::string& p) { ddpm::config_from_file(p); });
  check("json", [](const std::string& p) { ddpm::safetensors::read_file(p); });  // hostile headers
  check("pickle", [](const std::string& p) { ddpm::torch_file::read_state_dict(p); });
  EXPECT_GE(files, 40);
}
