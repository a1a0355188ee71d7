// Checkpoint files: round trip, atomic saves, retention, latest, and one-line errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/output-archive.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "ddpm/pipeline/checkpoint.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace {

using ddpm::test::read_string;
using ddpm::test::write_bytes;

struct Fixture {
  std::shared_ptr<torch::nn::LinearImpl> model = std::make_shared<torch::nn::LinearImpl>(3, 2);
  std::shared_ptr<torch::nn::LinearImpl> ema = std::make_shared<torch::nn::LinearImpl>(3, 2);
  torch::optim::AdamW optimizer{model->parameters(), torch::optim::AdamWOptions(0.01)};

  void step(const at::Tensor& x) {
    optimizer.zero_grad();
    model->forward(x).pow(2).sum().backward();
    optimizer.step();
  }
  ddpm::CheckpointContents contents(int64_t step) const {
    ddpm::CheckpointContents c;
    c.config_toml = "lr=0.01\n";
    c.step = step;
    c.model = model.get();
    c.ema = ema.get();
    c.ema_updates = 7;
    c.optimizer = &optimizer;
    c.rng["a"] = at::arange(10, at::kByte);
    c.data_state = {3, 41};
    return c;
  }
};

void expect_one_line_error(const std::string& path, const std::string& needle) {
  try {
    ddpm::CheckpointReader reader(path);
    ADD_FAILURE() << "no exception for " << path;
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

}  // namespace

TEST(Checkpoint, RoundTripsWeightsEmaOptimizerStepRngAndLoader) {
  at::manual_seed(0);
  auto dir = ddpm::test::make_temp_dir("ddpm-ckpt");
  Fixture a;
  const at::Tensor x = at::randn({4, 3});
  a.step(x);
  {
    c10::NoGradGuard g;
    a.ema->weight.fill_(0.5);
  }
  const std::string path = ddpm::checkpoint_path(dir, 12);
  EXPECT_EQ(fs::path(path).filename(), "ckpt-00000012.pt");
  ddpm::save_checkpoint(path, a.contents(12));
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  Fixture b;  // different random init
  ddpm::CheckpointReader reader(path);
  EXPECT_EQ(reader.format_version(), ddpm::kCheckpointFormatVersion);
  EXPECT_EQ(reader.step(), 12);
  EXPECT_EQ(reader.config_toml(), "lr=0.01\n");
  reader.load_model(*b.model);
  ASSERT_TRUE(reader.has_ema());
  reader.load_ema(*b.ema);
  ASSERT_TRUE(reader.has_optimizer());
  reader.load_optimizer(b.optimizer);
  EXPECT_EQ(reader.ema_updates(), 7);
  EXPECT_TRUE(at::equal(reader.rng_state("a"), at::arange(10, at::kByte)));
  EXPECT_FALSE(reader.rng_state("absent").defined());
  EXPECT_EQ(reader.data_state().epoch, 3);
  EXPECT_EQ(reader.data_state().position, 41);
  EXPECT_TRUE(at::equal(a.model->weight, b.model->weight));
  EXPECT_TRUE(at::equal(a.model->bias, b.model->bias));
  EXPECT_TRUE(at::equal(b.ema->weight, at::full_like(b.ema->weight, 0.5)));
  // The optimizer state came along: the next step is the same bitwise.
  a.step(x);
  b.step(x);
  EXPECT_TRUE(at::equal(a.model->weight, b.model->weight));
  EXPECT_TRUE(at::equal(a.model->bias, b.model->bias));
  fs::remove_all(dir);
}

TEST(Checkpoint, LatestListAndPrune) {
  auto dir = ddpm::test::make_temp_dir("ddpm-ckpt");
  EXPECT_EQ(ddpm::latest_checkpoint(dir), "");
  Fixture a;
  for (int64_t step : {5, 100, 20}) ddpm::save_checkpoint(ddpm::checkpoint_path(dir, step), a.contents(step));
  // Names that are not finished checkpoints are ignored.
  const auto ck = fs::path(dir) / "checkpoints";
  write_bytes((ck / "ckpt-00000999.pt.tmp").string(), "partial");
  write_bytes((ck / "ckpt-abc.pt").string(), "x");
  write_bytes((ck / "notes.txt").string(), "x");
  write_bytes((ck / "ckpt-3000.pt").string().substr(0), read_string(ddpm::checkpoint_path(dir, 5)));  // unpadded
  EXPECT_EQ(ddpm::latest_checkpoint(dir), (ck / "ckpt-3000.pt").string());
  auto all = ddpm::list_checkpoints(dir);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(fs::path(all[0]).filename(), "ckpt-00000005.pt");
  EXPECT_EQ(fs::path(all[1]).filename(), "ckpt-00000020.pt");
  EXPECT_EQ(fs::path(all[2]).filename(), "ckpt-00000100.pt");
  ddpm::prune_checkpoints(dir, 2);
  all = ddpm::list_checkpoints(dir);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(fs::path(all[0]).filename(), "ckpt-00000100.pt");
  EXPECT_FALSE(fs::exists(ck / "ckpt-00000999.pt.tmp"));
  EXPECT_TRUE(fs::exists(ck / "notes.txt"));
  ddpm::prune_checkpoints(dir, 0);  // keeps all
  EXPECT_EQ(ddpm::list_checkpoints(dir).size(), 2u);
  fs::remove_all(dir);
}

TEST(Checkpoint, InterruptedSaveLeavesThePreviousOneLoadable) {
  auto dir = ddpm::test::make_temp_dir("ddpm-ckpt");
  Fixture a;
  const std::string good = ddpm::checkpoint_path(dir, 10);
  ddpm::save_checkpoint(good, a.contents(10));
  // A save of step 20 killed half-way leaves a truncated temporary file behind.
  const std::string next = ddpm::checkpoint_path(dir, 20);
  ddpm::save_checkpoint(next, a.contents(20));
  const std::string bytes = read_string(next);
  fs::remove(next);
  write_bytes(next + ".tmp", bytes.substr(0, bytes.size() / 2));

  EXPECT_EQ(ddpm::latest_checkpoint(dir), good);
  ddpm::CheckpointReader reader(dir);  // a run directory resolves to its latest
  EXPECT_EQ(reader.path(), good);
  EXPECT_EQ(reader.step(), 10);
  Fixture b;
  reader.load_model(*b.model);
  EXPECT_TRUE(at::equal(a.model->weight, b.model->weight));

  // A save that fails (the temporary name is taken by a directory) throws, and keeps the old file.
  fs::remove(next + ".tmp");
  fs::create_directories(good + ".tmp");
  EXPECT_THROW(ddpm::save_checkpoint(good, a.contents(11)), std::runtime_error);
  fs::remove_all(good + ".tmp");
  EXPECT_EQ(ddpm::CheckpointReader(good).step(), 10);
  fs::remove_all(dir);
}

TEST(Checkpoint, BadFilesAreOneLineErrorsNamingTheFile) {
  auto dir = ddpm::test::make_temp_dir("ddpm-ckpt");
  Fixture a;
  const std::string good = ddpm::checkpoint_path(dir, 1);
  ddpm::save_checkpoint(good, a.contents(1));
  const std::string bytes = read_string(good);

  expect_one_line_error(dir + "/missing.pt", "no such file");
  auto empty_run = ddpm::test::make_temp_dir("ddpm-ckpt-empty");
  expect_one_line_error(empty_run, "no checkpoints");

  const std::string truncated = dir + "/truncated.pt";
  write_bytes(truncated, bytes.substr(0, bytes.size() * 2 / 3));
  expect_one_line_error(truncated, "truncated");

  const std::string empty = dir + "/empty.pt";
  write_bytes(empty, "");
  expect_one_line_error(empty, "empty");

  const std::string text = dir + "/notes.pt";
  write_bytes(text, "this is not a checkpoint\n");
  expect_one_line_error(text, "not a checkpoint");

  // A valid LibTorch archive from someone else.
  const std::string foreign = dir + "/foreign.pt";
  {
    torch::serialize::OutputArchive archive;
    archive.write("weight", at::ones({2, 2}));
    archive.save_to(foreign);
  }
  expect_one_line_error(foreign, "not a libddpm checkpoint");

  // Ours, from a future format.
  const std::string future = dir + "/future.pt";
  {
    torch::serialize::OutputArchive archive;
    archive.write("libddpm", c10::IValue(std::string("libddpm-checkpoint")));
    archive.write("format_version", c10::IValue(int64_t{99}));
    archive.save_to(future);
  }
  expect_one_line_error(future, "format version 99");

  // Weights of another architecture.
  ddpm::CheckpointReader reader(good);
  auto other = std::make_shared<torch::nn::LinearImpl>(5, 2);
  try {
    reader.load_model(*other);
    ADD_FAILURE() << "loaded mismatched weights";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(good), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
  fs::remove_all(empty_run);
}
