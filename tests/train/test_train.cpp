// The Trainer on tiny generated data: loss decreases, exact resume, NaN handling, samples,
// the gradient hook, rank, stop flag, warm-up.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <vector>

#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/pipeline/config.hpp"
#include "ddpm/data/dataset.hpp"
#include "ddpm/data/image.hpp"
#include "ddpm/train/trainer.hpp"
#include "test_device.hpp"
#include "test_util.hpp"
#include "train_fixtures.hpp"

namespace fs = std::filesystem;

namespace {

std::shared_ptr<ddpm::Dataset> tiny_images() { return ddpm::test::disc_images(); }
ddpm::Config tiny_config(const std::string& run_dir) { return ddpm::test::tiny_train_config(run_dir); }

double mean(const std::vector<double>& v, size_t from, size_t to) {
  return std::accumulate(v.begin() + from, v.begin() + to, 0.0) / static_cast<double>(to - from);
}

}  // namespace

TEST(Trainer, LossGoesDownOn16TinyImages) {
  auto dir = ddpm::test::make_temp_dir("ddpm-train");
  ddpm::Config c = tiny_config(dir);
  c.train.steps = 30;
  c.train.lr = 2e-3;
  std::vector<double> losses;
  ddpm::TrainerOptions o;
  o.write_files = false;
  o.on_step = [&](const ddpm::StepStats& s) { losses.push_back(s.loss); };
  ddpm::Trainer trainer(c, tiny_images(), c10::kCPU, o);
  EXPECT_EQ(trainer.fit(), 30);
  ASSERT_EQ(losses.size(), 30u);
  for (double l : losses) EXPECT_TRUE(std::isfinite(l));
  const double first = mean(losses, 0, 5), last = mean(losses, 25, 30);
  std::printf("loss: first 5 steps %.4f, last 5 steps %.4f\n", first, last);
  EXPECT_LT(last, 0.8 * first) << "first 5 steps " << first << ", last 5 steps " << last;
  EXPECT_FALSE(fs::exists(fs::path(dir) / "checkpoints"));  // write_files = false
  fs::remove_all(dir);
}

// 7 steps straight equal 3 steps, save, resume, 4 steps: losses, weights, EMA, loader.
static void expect_exact_resume(c10::Device device) {
  auto base = ddpm::test::make_temp_dir("ddpm-resume");
  auto configure = [&](const std::string& name, int64_t steps) {
    ddpm::Config c = tiny_config(base + "/" + name);
    c.train.steps = steps;
    c.train.grad_accum = 2;   // two micro-batches per step
    c.train.batch_size = 6;   // 16 images: batches straddle epochs' reshuffles
    c.train.warmup_steps = 4;
    c.train.ema_decay = 0.9;
    c.data.hflip = true;
    c.data.workers = 2;
    c.model.dropout = 0.1;    // uses the global generator (the CUDA one on CUDA)
    return c;
  };
  auto run = [&](ddpm::Config c, const std::string& resume_from) {
    std::vector<double> losses;
    ddpm::TrainerOptions o;
    o.on_step = [&](const ddpm::StepStats& s) { losses.push_back(s.loss); };
    auto trainer = std::make_unique<ddpm::Trainer>(c, tiny_images(), device, o);
    if (!resume_from.empty()) trainer->resume(resume_from);
    trainer->fit();
    return std::make_pair(losses, std::move(trainer));
  };
  auto [whole, a] = run(configure("whole", 7), "");
  auto [part1, b1] = run(configure("split", 3), "");
  auto [part2, b2] = run(configure("split", 7), base + "/split");
  ASSERT_EQ(whole.size(), 7u);
  ASSERT_EQ(part1.size(), 3u);
  ASSERT_EQ(part2.size(), 4u);
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(whole[i], i < 3 ? part1[i] : part2[i - 3]) << "step " << i + 1;
  auto pa = a->model()->parameters(), pb = b2->model()->parameters();
  auto ea = a->ema_model()->parameters(), eb = b2->ema_model()->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(at::equal(pa[i], pb[i])) << "parameter " << i;
    EXPECT_TRUE(at::equal(ea[i], eb[i])) << "EMA parameter " << i;
  }
  EXPECT_EQ(a->ema().num_updates(), b2->ema().num_updates());
  EXPECT_EQ(a->loader_state().epoch, b2->loader_state().epoch);
  EXPECT_EQ(a->loader_state().position, b2->loader_state().position);
  fs::remove_all(base);
}

TEST(Trainer, ResumeReproducesTheUninterruptedRunBitwise) { expect_exact_resume(c10::kCPU); }

// On CUDA: the checkpoint's torch_cuda generator state makes dropout resume exactly;
// deterministic cuDNN so that two runs of the same step give the same bits.
TEST(Trainer, ResumeReproducesTheUninterruptedRunBitwiseOnCuda) {
  DDPM_SKIP_WITHOUT_CUDA();
  auto& ctx = at::globalContext();
  const bool deterministic = ctx.deterministicCuDNN(), benchmark = ctx.benchmarkCuDNN();
  ctx.setDeterministicCuDNN(true);
  ctx.setBenchmarkCuDNN(false);
  expect_exact_resume(c10::Device(c10::kCUDA, 0));
  ctx.setDeterministicCuDNN(deterministic);
  ctx.setBenchmarkCuDNN(benchmark);
}

// One training step on CUDA starts from the same weights and data as on the CPU (the
// trainer draws t and noise on the CPU), so its loss is the CPU's within float error.
TEST(Trainer, OneStepOnCudaMatchesTheCpuStep) {
  DDPM_SKIP_WITHOUT_CUDA();
  auto& ctx = at::globalContext();
  const bool tf32 = ctx.allowTF32CuDNN(), tf32_mm = ctx.allowTF32CuBLAS();
  ctx.setAllowTF32CuDNN(false);
  ctx.setAllowTF32CuBLAS(false);
  std::vector<double> losses;
  for (c10::Device device : {c10::Device(c10::kCPU), c10::Device(c10::kCUDA, 0)}) {
    ddpm::Config c = tiny_config(ddpm::test::make_temp_dir("ddpm-cuda-step"));
    c.train.steps = 2;
    c.model.dropout = 0.0;  // CPU and CUDA dropout masks differ
    ddpm::TrainerOptions o;
    o.write_files = false;
    ddpm::Trainer trainer(c, tiny_images(), device, o);
    for (int i = 0; i < 2; ++i) {
      const ddpm::StepStats s = trainer.train_step();
      EXPECT_TRUE(std::isfinite(s.loss)) << device;
      losses.push_back(s.loss);
    }
    for (const auto& p : trainer.model()->parameters()) EXPECT_EQ(p.device(), device);
  }
  ctx.setAllowTF32CuDNN(tf32);
  ctx.setAllowTF32CuBLAS(tf32_mm);
  ASSERT_EQ(losses.size(), 4u);
  EXPECT_NEAR(losses[2], losses[0], 1e-4 * losses[0]) << "step 1";
  EXPECT_NEAR(losses[3], losses[1], 1e-3 * losses[1]) << "step 2 (after one update)";
}

TEST(Trainer, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  auto dir = ddpm::test::make_temp_dir("ddpm-nan");
  ddpm::Config c = tiny_config(dir);
  c.train.steps = 20;
  c.train.lr = 1e30;
  c.train.grad_clip = 0;
  c.train.save_every = 1;
  c.train.keep_last = 0;
  ddpm::Trainer trainer(c, tiny_images());
  std::string msg;
  try {
    trainer.fit();
    FAIL() << "a loss of lr=1e30 stayed finite";
  } catch (const ddpm::NonFiniteLossError& e) {
    msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_TRUE(msg.find("nan") != std::string::npos || msg.find("inf") != std::string::npos) << msg;
  }
  // The failing step saved nothing; the checkpoint before it loads, and the message names it.
  const std::string latest = ddpm::latest_checkpoint(dir);
  ASSERT_FALSE(latest.empty());
  EXPECT_NE(msg.find("the last good checkpoint is " + latest), std::string::npos) << msg;
  ddpm::CheckpointReader reader(latest);
  EXPECT_EQ(reader.step(), trainer.step());
  EXPECT_FALSE(fs::exists(ddpm::checkpoint_path(dir, trainer.step() + 1)));
  fs::remove_all(dir);
}

TEST(Trainer, WritesSampleGridsMetricsAndCheckpoints) {
  auto dir = ddpm::test::make_temp_dir("ddpm-samples");
  ddpm::Config c = tiny_config(dir);
  c.train.steps = 4;
  c.train.log_every = 2;
  c.train.save_every = 2;
  c.train.keep_last = 1;
  c.train.sample_every = 3;  // step 3, and the end (4)
  c.train.sample_n = 4;
  c.sample.kind = ddpm::SamplerKind::Ddim;
  c.sample.steps = 2;
  ddpm::Trainer trainer(c, tiny_images());
  trainer.fit();
  for (const char* name : {"step-00000003.png", "step-00000004.png"}) {
    const auto path = fs::path(dir) / "samples" / name;
    ASSERT_TRUE(fs::exists(path)) << path;
    ddpm::Image grid = ddpm::load_image(path.string());
    EXPECT_EQ(grid.width, 2 * 8 + 3 * 2);  // 2 per row, padding 2
    EXPECT_EQ(grid.height, 2 * 8 + 3 * 2);
  }
  auto ckpts = ddpm::list_checkpoints(dir);
  ASSERT_EQ(ckpts.size(), 1u);  // keep-last 1
  EXPECT_EQ(ckpts[0], ddpm::checkpoint_path(dir, 4));
  std::ifstream metrics(fs::path(dir) / "metrics.jsonl");
  std::vector<std::string> lines;
  for (std::string line; std::getline(metrics, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].rfind("{\"step\":4,\"loss\":", 0), 0u) << lines[1];
  for (const char* key : {"\"lr\":", "\"grad_norm\":", "\"images_per_s\":"})
    EXPECT_NE(lines[1].find(key), std::string::npos) << lines[1];
  ddpm::Config saved = ddpm::config_from_file((fs::path(dir) / "config.toml").string());
  EXPECT_EQ(saved.model.image_height, 8);
  EXPECT_EQ(saved.train.steps, 4);
  // What ddpm-sample needs: the model from the checkpoint alone.
  ddpm::LoadedModel loaded = ddpm::load_model_for_sampling(dir);
  EXPECT_TRUE(loaded.ema);
  EXPECT_EQ(loaded.step, 4);
  auto e1 = loaded.model->parameters(), e2 = trainer.ema_model()->parameters();
  for (size_t i = 0; i < e1.size(); ++i) EXPECT_TRUE(at::equal(e1[i], e2[i]));
  EXPECT_EQ(loaded.schedule.num_timesteps(), 100);
  fs::remove_all(dir);
}

TEST(Trainer, GradientHookRunsBeforeTheUpdateAndOnlyRankZeroWrites) {
  auto dir = ddpm::test::make_temp_dir("ddpm-rank");
  ddpm::Config c = tiny_config(dir + "/run");
  c.train.steps = 3;
  int calls = 0;
  ddpm::TrainerOptions o;
  o.rank = 1;
  o.world_size = 2;
  o.reduce_gradients = [&](torch::nn::Module& m) {
    ++calls;
    c10::NoGradGuard g;
    for (auto& p : m.parameters())
      if (p.grad().defined()) p.grad().zero_();
  };
  int reductions = 0, barriers = 0;
  o.all_reduce_sum = [&](at::Tensor& control) {
    ++reductions;
    control.mul_(2);  // as if the other rank had the same numbers
  };
  o.barrier = [&] { ++barriers; };
  std::vector<double> norms;
  o.on_step = [&](const ddpm::StepStats& s) { norms.push_back(s.grad_norm); };
  ddpm::Trainer trainer(c, tiny_images(), c10::kCPU, o);
  std::vector<at::Tensor> before;
  for (auto& p : trainer.model()->parameters()) before.push_back(p.detach().clone());
  trainer.fit();
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(reductions, 3);  // one control all-reduce per step
  EXPECT_EQ(barriers, 2);    // around the final save, which rank 1 leaves to rank 0
  for (double n : norms) EXPECT_EQ(n, 0.0);  // the norm is taken after the hook
  auto after = trainer.model()->parameters();
  for (size_t i = 0; i < after.size(); ++i) EXPECT_TRUE(at::equal(before[i], after[i])) << i;
  EXPECT_FALSE(fs::exists(dir + "/run"));  // rank 1 writes nothing
  fs::remove_all(dir);
}

TEST(Trainer, StopFlagEndsAfterTheCurrentStepWithACheckpoint) {
  auto dir = ddpm::test::make_temp_dir("ddpm-stop");
  ddpm::Config c = tiny_config(dir);
  c.train.steps = 50;
  std::atomic<bool> stop{false};
  ddpm::TrainerOptions o;
  o.stop = &stop;
  o.on_step = [&](const ddpm::StepStats& s) {
    if (s.step == 2) stop = true;
  };
  ddpm::Trainer trainer(c, tiny_images(), c10::kCPU, o);
  EXPECT_EQ(trainer.fit(), 2);
  EXPECT_EQ(ddpm::latest_checkpoint(dir), ddpm::checkpoint_path(dir, 2));
  fs::remove_all(dir);
}

TEST(Trainer, LinearWarmupAndShapeChecks) {
  ddpm::Config c = tiny_config("unused");
  c.train.lr = 1e-3;
  c.train.warmup_steps = 4;
  ddpm::TrainerOptions o;
  o.write_files = false;
  ddpm::Trainer trainer(c, tiny_images(), c10::kCPU, o);
  EXPECT_DOUBLE_EQ(trainer.lr_at(0), 0.25e-3);
  EXPECT_DOUBLE_EQ(trainer.lr_at(3), 1e-3);
  EXPECT_DOUBLE_EQ(trainer.lr_at(1000), 1e-3);
  ddpm::Config wrong = c;
  wrong.set_shape(3, 8, 8);
  EXPECT_THROW(ddpm::Trainer(wrong, tiny_images(), c10::kCPU, o), std::invalid_argument);
}

TEST(Trainer, CosineLrDecaysFromThePeakAfterTheWarmupToNearZero) {
  ddpm::Config c = tiny_config("unused");
  c.train.lr = 1e-3;
  c.train.warmup_steps = 4;
  c.train.steps = 104;  // 100 decay steps
  c.train.lr_schedule = ddpm::LrSchedule::Cosine;
  ddpm::TrainerOptions o;
  o.write_files = false;
  ddpm::Trainer trainer(c, tiny_images(), c10::kCPU, o);
  const double pi = std::acos(-1.0);
  EXPECT_DOUBLE_EQ(trainer.lr_at(0), 0.25e-3);  // the warm-up is unchanged
  EXPECT_DOUBLE_EQ(trainer.lr_at(4), 1e-3);     // peak at the first decay step
  EXPECT_NEAR(trainer.lr_at(54), 0.5e-3, 1e-15);  // half way: cos(π/2) = 0
  EXPECT_NEAR(trainer.lr_at(29), 1e-3 * 0.5 * (1 + std::cos(pi * 0.25)), 1e-15);
  EXPECT_NEAR(trainer.lr_at(103), 1e-3 * 0.5 * (1 - std::cos(pi / 100)), 1e-15);  // last step > 0
  EXPECT_GT(trainer.lr_at(103), 0.0);
  EXPECT_EQ(trainer.lr_at(500), 0.0);  // past the end (a resume with more --steps recomputes)
  for (int64_t s = 5; s < 104; ++s) EXPECT_LT(trainer.lr_at(s), trainer.lr_at(s - 1)) << s;
  EXPECT_EQ(ddpm::parse_lr_schedule("cosine"), ddpm::LrSchedule::Cosine);
  EXPECT_EQ(ddpm::to_string(ddpm::LrSchedule::Constant), "constant");
  EXPECT_THROW(ddpm::parse_lr_schedule("step"), std::invalid_argument);
}

TEST(Trainer, ChannelsLastGivesTheSameLossesAndBf16Trains) {
  auto losses_of = [](bool channels_last, bool bf16) {
    ddpm::Config c = tiny_config("unused");
    c.train.steps = 3;
    c.model.channels_last = channels_last;
    c.train.bf16 = bf16;
    std::vector<double> losses;
    ddpm::TrainerOptions o;
    o.write_files = false;
    o.on_step = [&](const ddpm::StepStats& s) { losses.push_back(s.loss); };
    ddpm::Trainer trainer(c, tiny_images(), c10::kCPU, o);
    trainer.fit();
    at::Tensor samples = trainer.sample_images(2);
    EXPECT_TRUE(samples.isfinite().all().item<bool>());
    return losses;
  };
  const auto plain = losses_of(false, false), cl = losses_of(true, false), bf16 = losses_of(false, true);
  ASSERT_EQ(plain.size(), 3u);
  ASSERT_EQ(cl.size(), 3u);
  ASSERT_EQ(bf16.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(cl[i], plain[i], 1e-4 * plain[i]) << i;   // same math, another memory layout
    EXPECT_NEAR(bf16[i], plain[i], 0.05 * plain[i]) << i;  // bf16 keeps ~3 significant digits
  }
  EXPECT_NE(bf16, plain);  // autocast did run the convolutions in bf16
}
