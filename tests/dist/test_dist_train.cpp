// Data-parallel training is world-size invariant: 2 forked ranks × half the batch train exactly
// as 1 process × the whole batch (up to float summation order), and a run saved at world size 2
// resumes at world size 1.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ddpm/data/dataset.hpp"
#include "ddpm/dist/process_group.hpp"
#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/pipeline/config.hpp"
#include "ddpm/train/data_parallel.hpp"
#include "ddpm/train/trainer.hpp"
#include "dist_util.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace {

// 32 distinct 8×8 images (discs at different places and brightness).
std::shared_ptr<ddpm::Dataset> images() {
  at::Tensor x = at::zeros({32, 1, 8, 8}, at::kByte);
  auto a = x.accessor<uint8_t, 4>();
  for (int n = 0; n < 32; ++n) {
    const double cy = 1.5 + (n / 4 % 4) * 1.5, cx = 1.5 + (n % 4) * 1.5, peak = n < 16 ? 255.0 : 160.0;
    for (int y = 0; y < 8; ++y)
      for (int xx = 0; xx < 8; ++xx)
        a[n][0][y][xx] = static_cast<uint8_t>(std::lround(peak * std::exp(-((y - cy) * (y - cy) + (xx - cx) * (xx - cx)) / 3.0)));
  }
  return ddpm::make_tensor_dataset(x, "discs");
}

ddpm::Config config(const std::string& run_dir, int64_t steps) {
  ddpm::Config c = ddpm::config_from_file(ddpm::test::source_dir() + "/configs/tiny.toml");
  c.set_shape(1, 8, 8);
  c.train.run_dir = run_dir;
  c.train.steps = steps;
  c.train.batch_size = 8;  // global
  c.train.grad_accum = 2;  // only the second micro-batch reduces
  c.train.log_every = 1;
  c.train.save_every = 10;
  c.train.keep_last = 5;
  c.model.dropout = 0.0;
  c.data.workers = 0;
  c.data.hflip = true;
  return c;
}

void write_losses(const std::string& path, const std::vector<double>& losses) {
  std::ofstream out(path);
  out.precision(17);
  for (double l : losses) out << l << "\n";
}

std::vector<double> read_losses(const std::string& path) {
  std::ifstream in(path);
  std::vector<double> v;
  for (double l; in >> l;) v.push_back(l);
  return v;
}

// Trains `steps` steps as rank `rank` of `world` (world 1: no group), from `resume` if given;
// rank 0 writes its per-step losses to `losses_path`.
int train_rank(int rank, int world, int port, const std::string& run_dir, int64_t steps, const std::string& resume,
               const std::string& losses_path) {
  at::set_num_threads(1);
  ddpm::dist::ProcessGroup group = world == 1 ? ddpm::dist::ProcessGroup()
                                              : ddpm::dist::ProcessGroup(ddpm::test::local_rank_info(rank, world, port),
                                                                         std::chrono::seconds(60));
  ddpm::DataParallel dp(group);
  ddpm::TrainerOptions options;
  dp.configure(options);
  std::vector<double> losses;
  options.on_step = [&](const ddpm::StepStats& s) { losses.push_back(s.loss); };
  options.on_event = [](const std::string&) {};
  ddpm::Trainer trainer(config(run_dir, steps), images(), c10::kCPU, options);
  if (!resume.empty()) trainer.resume(resume);
  dp.attach(trainer);
  trainer.fit();
  if (world > 1 && dp.bucket_count() < 1) return 3;
  if (rank == 0) write_losses(losses_path, losses);
  return 0;
}

double relative_error(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-12); }

TEST(DataParallelTrainer, TwoRanksOfHalfTheBatchTrainAsOneProcessAndResumeAtWorldSizeOne) {
  if (!ddpm::dist::gloo_available()) GTEST_SKIP() << "skipped: this build has no c10d/Gloo (no Gloo headers)";
  const std::string dir = ddpm::test::make_temp_dir("ddpm-dp");
  // Every trainer runs in a forked child: the parent keeps no ATen thread pool across fork().
  auto one = ddpm::test::run_ranks(1, [&](int) { return train_rank(0, 1, 0, dir + "/one", 20, "", dir + "/one.txt"); },
                                   std::chrono::seconds(300));
  ASSERT_EQ(one, std::vector<int>{0});
  const int port = ddpm::test::free_port();
  auto two = ddpm::test::run_ranks(
      2, [&](int rank) { return train_rank(rank, 2, port, dir + "/two", 20, "", dir + "/two.txt"); },
      std::chrono::seconds(300));
  ASSERT_EQ(two, (std::vector<int>{0, 0}));
  const auto a = read_losses(dir + "/one.txt"), b = read_losses(dir + "/two.txt");
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_LE(relative_error(b[i], a[i]), 1e-5) << "step " << i + 1 << ": " << b[i] << " vs " << a[i];
    worst = std::max(worst, relative_error(b[i], a[i]));
  }
  std::printf("world 2 vs world 1, 20 steps: largest relative loss difference %.3g\n", worst);
  // One run directory, written by rank 0 alone; its loader state is the global one.
  EXPECT_TRUE(fs::exists(dir + "/two/checkpoints"));
  const ddpm::CheckpointReader at10(ddpm::checkpoint_path(dir + "/two", 10));
  const ddpm::CheckpointReader ref10(ddpm::checkpoint_path(dir + "/one", 10));
  EXPECT_EQ(at10.data_state().epoch, ref10.data_state().epoch);
  EXPECT_EQ(at10.data_state().position, ref10.data_state().position);
  // Rank 0's metrics (and TensorBoard scalars, from the same numbers) say how much of each
  // window's all-reduce was hidden behind backward: a fraction, and only when there is one.
  auto hidden_fractions = [](const std::string& metrics) {
    std::vector<double> v;
    std::ifstream in(metrics);
    for (std::string line; std::getline(in, line);)
      if (const auto at = line.find("\"allreduce_hidden\":"); at != std::string::npos)
        v.push_back(std::atof(line.c_str() + at + 19));
    return v;
  };
  const auto hidden = hidden_fractions(dir + "/two/metrics.jsonl");
  EXPECT_EQ(hidden.size(), 20u);
  for (double h : hidden) {
    EXPECT_GE(h, 0.0);
    EXPECT_LE(h, 1.0);
  }
  EXPECT_TRUE(hidden_fractions(dir + "/one/metrics.jsonl").empty());

  // The world-size-2 checkpoint of step 10, resumed by one process: steps 11..20 as the
  // uninterrupted one-process run.
  fs::create_directories(dir + "/resumed/checkpoints");
  fs::copy_file(ddpm::checkpoint_path(dir + "/two", 10), ddpm::checkpoint_path(dir + "/resumed", 10));
  auto resumed = ddpm::test::run_ranks(
      1,
      [&](int) {
        return train_rank(0, 1, 0, dir + "/resumed", 20, ddpm::checkpoint_path(dir + "/resumed", 10),
                          dir + "/resumed.txt");
      },
      std::chrono::seconds(300));
  ASSERT_EQ(resumed, std::vector<int>{0});
  const auto c = read_losses(dir + "/resumed.txt");
  ASSERT_EQ(c.size(), 10u);
  for (size_t i = 0; i < c.size(); ++i)
    EXPECT_LE(relative_error(c[i], a[10 + i]), 1e-5) << "step " << 11 + i << ": " << c[i] << " vs " << a[10 + i];
  fs::remove_all(dir);
}

TEST(DataParallelTrainer, TheGlobalBatchMustSplitEvenly) {
  ddpm::TrainerOptions options;
  options.rank = 0;
  options.world_size = 3;
  options.reduce_gradients = [](torch::nn::Module&) {};
  options.all_reduce_sum = [](at::Tensor&) {};
  options.barrier = [] {};
  const std::string message = ddpm::test::error_of(
      [&] { ddpm::Trainer(config("/nonexistent", 1), images(), c10::kCPU, options); });
  EXPECT_NE(message.find("batch-size: 8"), std::string::npos) << message;
  EXPECT_NE(message.find("world size 3"), std::string::npos) << message;
}

TEST(DataParallelTrainer, PerImageDrawsDoNotDependOnTheSplit) {
  const std::vector<int64_t> shape{1, 4, 4};
  const ddpm::TrainingDraws whole = ddpm::training_draws(5, 7, 1, 8, 0, 8, shape, 1000);
  const ddpm::TrainingDraws right = ddpm::training_draws(5, 7, 1, 8, 4, 4, shape, 1000);
  EXPECT_TRUE(at::equal(whole.timesteps.narrow(0, 4, 4), right.timesteps));
  EXPECT_TRUE(at::equal(whole.drop_u.narrow(0, 4, 4), right.drop_u));
  EXPECT_TRUE(at::equal(whole.noise.narrow(0, 4, 4), right.noise));
  // Another step or micro-batch: other numbers.
  EXPECT_FALSE(at::equal(ddpm::training_draws(5, 8, 1, 8, 0, 8, shape, 1000).noise, whole.noise));
  EXPECT_FALSE(at::equal(ddpm::training_draws(5, 7, 0, 8, 0, 8, shape, 1000).noise, whole.noise));
  // t is uniform on {0, …, T−1}: 4000 draws of T = 4 land near 1000 each.
  const at::Tensor t = ddpm::training_draws(1, 0, 0, 4000, 0, 4000, {1}, 4).timesteps;
  EXPECT_EQ(t.min().item<int64_t>(), 0);
  EXPECT_EQ(t.max().item<int64_t>(), 3);
  for (int64_t v = 0; v < 4; ++v) EXPECT_NEAR((t == v).sum().item<int64_t>(), 1000, 120) << v;  // ±4.4σ
}

TEST(DataParallelLoader, RankSlicesTileTheGlobalBatches) {
  ddpm::DataConfig dc;
  dc.workers = 0;
  dc.hflip = true;
  ddpm::DataLoader whole(images(), 8, 3, dc);
  ddpm::DataLoader left(images(), 8, 3, dc, {}, {0, 4}), right(images(), 8, 3, dc, {}, {4, 4});
  for (int k = 0; k < 9; ++k) {  // across an epoch boundary (32 images = 4 batches)
    const ddpm::Batch w = whole.next_batch(), l = left.next_batch(), r = right.next_batch();
    EXPECT_TRUE(at::equal(at::cat({l.images, r.images}), w.images)) << k;
    EXPECT_TRUE(at::equal(at::cat({l.indices, r.indices}), w.indices)) << k;
    EXPECT_EQ(left.state().position, whole.state().position);
    EXPECT_EQ(right.state().epoch, whole.state().epoch);
  }
  EXPECT_NE(ddpm::test::error_of([&] { ddpm::DataLoader(images(), 8, 3, dc, {}, {6, 4}); }).find("slice"),
            std::string::npos);
}

}  // namespace
