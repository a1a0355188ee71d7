// ddpm-eval end to end: fit-classifier on a tiny IDX set, compare folders / IDX / grids /
// statistics files / a checkpoint, and bad input as one line with exit code 2.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ddpm/data/image.hpp"
#include "test_util.hpp"

using ddpm::test::bin_dir;
using ddpm::test::run_command;

namespace {

std::string eval(const std::string& args) { return bin_dir() + "ddpm-eval " + args + " --device cpu --threads 1"; }

double number_after(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  if (at == std::string::npos) return NAN;
  return std::atof(text.c_str() + at + key.size());
}

class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(ddpm::test::make_temp_dir("ddpm-eval-cli"));
    ddpm::test::write_idx_pair(*dir_ + "/train.idx", *dir_ + "/train-labels.idx", 400, 1);
    ddpm::test::write_idx_pair(*dir_ + "/test.idx", *dir_ + "/test-labels.idx", 200, 2);
    auto r = run_command(eval("fit-classifier --data idx:" + *dir_ + "/train.idx --labels idx:" + *dir_ +
                              "/train-labels.idx --test-data idx:" + *dir_ + "/test.idx --test-labels idx:" + *dir_ +
                              "/test-labels.idx --epochs 2 --batch-size 32 --hidden 16 --out " + *dir_ + "/clf.pt"));
    fit_output_ = new std::string(r.output);
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete fit_output_;
  }
  static std::string* dir_;
  static std::string* fit_output_;
};
std::string* EvalCli::dir_ = nullptr;
std::string* EvalCli::fit_output_ = nullptr;

}  // namespace

TEST_F(EvalCli, FitClassifierReportsTestAccuracy) {
  EXPECT_GT(number_after(*fit_output_, "test accuracy "), 0.95) << *fit_output_;
  EXPECT_NE(fit_output_->find("on 200 images"), std::string::npos) << *fit_output_;
}

TEST_F(EvalCli, CompareReportsEveryMetricAndWhatWasUsed) {
  const std::string d = *dir_;
  auto same = run_command(eval("compare --real idx:" + d + "/test.idx --fake idx:" + d + "/test.idx --features " + d +
                               "/clf.pt --kid-subset-size 50 --kid-subsets 10 --json " + d + "/same.json"));
  ASSERT_EQ(same.exit_code, 0) << same.output;
  EXPECT_NE(same.output.find("features: classifier '" + d + "/clf.pt' (penultimate layer, 16-d"), std::string::npos)
      << same.output;
  EXPECT_NE(same.output.find("real: IDX '" + d + "/test.idx': 200 images, 1×8×8"), std::string::npos) << same.output;
  EXPECT_NEAR(number_after(same.output, "FID "), 0.0, 1e-6) << same.output;
  EXPECT_NEAR(number_after(same.output, "precision "), 1.0, 1e-12);
  EXPECT_NEAR(number_after(same.output, "recall "), 1.0, 1e-12);
  EXPECT_NE(same.output.find("(10 subsets of 50)"), std::string::npos) << same.output;
  const std::string json = ddpm::test::read_string(d + "/same.json");
  EXPECT_NE(json.find("\"n_real\": 200, \"n_fake\": 200"), std::string::npos) << json;
  EXPECT_NE(json.find("\"fid\": "), std::string::npos) << json;

  // Train vs test split: a positive FID; the same through saved statistics.
  auto split = run_command(eval("compare --real idx:" + d + "/test.idx --fake idx:" + d + "/train.idx --features " + d +
                                "/clf.pt --save-real-stats " + d + "/ref.npz"));
  ASSERT_EQ(split.exit_code, 0) << split.output;
  const double fid = number_after(split.output, "FID ");
  EXPECT_GT(fid, 0.0);
  auto via_stats = run_command(eval("compare --real " + d + "/ref.npz --fake idx:" + d + "/train.idx --features " + d +
                                    "/clf.pt"));
  ASSERT_EQ(via_stats.exit_code, 0) << via_stats.output;
  EXPECT_NEAR(number_after(via_stats.output, "FID "), fid, 1e-3 * fid + 1e-4) << via_stats.output;
  EXPECT_NE(via_stats.output.find("(200 images, features: classifier"), std::string::npos) << via_stats.output;
  EXPECT_EQ(via_stats.output.find("subsets of"), std::string::npos) << "KID needs features, not statistics";

  // The `stats` subcommand writes the same statistics.
  auto st = run_command(eval("stats --data idx:" + d + "/test.idx --features " + d + "/clf.pt --out " + d + "/ref2.npz"));
  ASSERT_EQ(st.exit_code, 0) << st.output;
  auto via_stats2 = run_command(eval("compare --real " + d + "/ref2.npz --fake idx:" + d + "/train.idx --features " +
                                     d + "/clf.pt"));
  EXPECT_NEAR(number_after(via_stats2.output, "FID "), fid, 1e-3 * fid + 1e-4) << via_stats2.output;
}

TEST_F(EvalCli, GridsAndFoldersAreImageSets) {
  const std::string d = *dir_ + "/grid";
  // 12 of the test images as a folder and as a 4-column grid: identical features, FID 0.
  at::Tensor all = at::empty({12, 1, 8, 8}, at::kByte);
  std::filesystem::create_directories(d);
  auto bytes = ddpm::test::read_bytes(*dir_ + "/test.idx");
  std::memcpy(all.data_ptr<uint8_t>(), bytes.data() + 16, 12 * 64);
  for (int k = 0; k < 12; ++k) ddpm::save_png(d + "/img" + std::to_string(k + 10) + ".png", ddpm::image_from_tensor(all[k]));
  ddpm::save_png(*dir_ + "/grid.png", ddpm::make_grid(all.to(at::kFloat) / 127.5 - 1.0, 4, 2));
  auto r = run_command(eval("compare --real " + d + " --fake grid:" + *dir_ + "/grid.png --grid-cols 4 --features " +
                            *dir_ + "/clf.pt --no-kid --no-pr"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NEAR(number_after(r.output, "FID "), 0.0, 1e-6) << r.output;
}

TEST_F(EvalCli, SamplesFromACheckpoint) {
  const std::string data = ddpm::test::make_temp_dir("ddpm-eval-ckpt-data");
  for (int k = 0; k < 16; ++k) {
    ddpm::Image im;
    im.width = im.height = 8;
    im.channels = 1;
    for (int i = 0; i < 64; ++i) im.pixels.push_back(static_cast<uint8_t>((i * 7 + k * 31) % 256));
    ddpm::save_png(data + "/img" + std::to_string(k) + ".png", im);
  }
  const std::string run = ddpm::test::make_temp_dir("ddpm-eval-run");
  auto t = run_command(bin_dir() + "ddpm-train --config " + ddpm::test::source_dir() + "/configs/tiny.toml --data " +
                       data + " --run-dir " + run +
                       " --steps 2 --batch-size 8 --image-size 8 --timesteps 40 --sample-every 0 --threads 1"
                       " --device cpu --log-level warn");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  auto r = run_command(eval("compare --real idx:" + *dir_ + "/test.idx --checkpoint " + run + " --n 10 --sample-batch 4 "
                            "--sampler ddim --steps 3 --features " + *dir_ + "/clf.pt --kid-subset-size 10"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("10 samples, ddim 3 steps"), std::string::npos) << r.output;
  EXPECT_GT(number_after(r.output, "FID "), 0.0) << r.output;

  // ddpm-train --eval-every: FID, KID, precision/recall lines in metrics.jsonl.
  const std::string run2 = ddpm::test::make_temp_dir("ddpm-eval-train");
  const std::string train = bin_dir() + "ddpm-train --config " + ddpm::test::source_dir() + "/configs/tiny.toml --data " +
                            data + " --steps 4 --batch-size 8 --image-size 8 --timesteps 40 --sample-every 0 "
                            "--threads 1 --device cpu --log-level info --sampler ddim --sample-steps 3 "
                            "--eval-every 2 --eval-n 12 --eval-features " + *dir_ + "/clf.pt";
  auto e = run_command(train + " --run-dir " + run2 + " --eval-ref idx:" + *dir_ + "/test.idx");
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_NE(e.output.find("eval step 2: FID "), std::string::npos) << e.output;
  const std::string metrics = ddpm::test::read_string(run2 + "/metrics.jsonl");
  EXPECT_NE(metrics.find("{\"step\":2,\"fid\":"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("{\"step\":4,\"fid\":"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"precision\":"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"eval_n\":12"), std::string::npos) << metrics;
  // A bad reference fails before training, as one line with exit code 2.
  auto bad = run_command(train + " --run-dir " + run2 + "-bad --eval-ref idx:" + *dir_ + "/missing.idx");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("missing.idx"), std::string::npos) << bad.output;
  auto unset = run_command(train + " --run-dir " + run2 + "-unset");
  EXPECT_EQ(unset.exit_code, 2) << unset.output;
  EXPECT_NE(unset.output.find("eval-every: needs --eval-features and --eval-ref"), std::string::npos) << unset.output;
}

TEST_F(EvalCli, ClassConditionalCheckpointDrawsEveryClassWithGuidance) {
  const std::string d = *dir_;
  const std::string run = ddpm::test::make_temp_dir("ddpm-eval-cond");
  const std::string train = bin_dir() + "ddpm-train --config " + ddpm::test::source_dir() + "/configs/tiny.toml --data idx:" +
                            d + "/train.idx --labels idx:" + d + "/train-labels.idx --steps 2 --batch-size 8 "
                            "--timesteps 40 --sample-every 0 --threads 1 --device cpu --log-level info --sampler ddim "
                            "--sample-steps 3 --eval-every 2 --eval-n 12 --eval-guidance 1.5 --eval-features " +
                            d + "/clf.pt --eval-ref idx:" + d + "/test.idx";
  auto t = run_command(train + " --eval-guidance-interval 0.28,5.42 --run-dir " + run);
  ASSERT_EQ(t.exit_code, 0) << t.output;
  const std::string metrics = ddpm::test::read_string(run + "/metrics.jsonl");
  EXPECT_NE(metrics.find("\"eval_guidance\":1.5,\"eval_guidance_interval\":[0.28,5.42]"), std::string::npos) << metrics;
  // The interval is kept in the run's config (a resume evaluates the same way) and checked.
  EXPECT_NE(ddpm::test::read_string(run + "/config.toml").find("eval-guidance-interval = \"0.28,5.42\""),
            std::string::npos);
  for (const std::string bad_interval : {"5.42,0.28", "-1,2", "0.28", "x,1"}) {
    auto b = run_command(train + " --run-dir " + run + "-bad --eval-guidance-interval " + bad_interval);
    EXPECT_EQ(b.exit_code, 2) << bad_interval << ": " << b.output;
    const bool order = bad_interval == "5.42,0.28" || bad_interval == "-1,2";
    EXPECT_NE(b.output.find(order ? "eval-guidance-interval: must be LOW,HIGH with 0 <= LOW < HIGH"
                                  : bad_interval == "0.28" ? "eval-guidance-interval: must be LOW,HIGH (got '0.28')"
                                                           : "eval-guidance-interval: must be a number (got 'x')"),
              std::string::npos)
        << b.output;
  }
  auto r = run_command(eval("compare --real idx:" + d + "/test.idx --checkpoint " + run + " --n 10 --sample-batch 4 "
                            "--sampler ddim --steps 3 --guidance 2 --features " + d + "/clf.pt --kid-subset-size 10"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("10 samples, ddim 3 steps"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 classes equally, guidance 2"), std::string::npos) << r.output;
  EXPECT_GT(number_after(r.output, "FID "), 0.0) << r.output;
  // --nproc-per-node: 3 ranks (slices of 3, 3, 4 images: other batches than 4 + 4 + 2) and 16 > 10
  // ranks (10 of one image) give the metrics of one process, to the last digit.
  const std::string out = ddpm::test::make_temp_dir("ddpm-eval-ranks");
  const std::string compare = "compare --real idx:" + d + "/test.idx --checkpoint " + run + " --n 10 --sample-batch 4 "
                              "--sampler ddim --steps 3 --guidance 2 --features " + d + "/clf.pt --kid-subset-size 10";
  for (const std::string n : {"1", "3", "16"}) {
    auto ranks = run_command(eval(compare + " --json " + out + "/n" + n + ".json --nproc-per-node " + n));
    ASSERT_EQ(ranks.exit_code, 0) << ranks.output;
    if (n != "1") EXPECT_NE(ranks.output.find(n == "3" ? "on 3 local ranks" : "on 10 local ranks"), std::string::npos);
  }
  const std::string one = ddpm::test::read_string(out + "/n1.json");
  EXPECT_NE(one.find("\"fid\": "), std::string::npos) << one;
  EXPECT_EQ(one, ddpm::test::read_string(out + "/n3.json"));
  EXPECT_EQ(one, ddpm::test::read_string(out + "/n16.json"));
  auto neg = run_command(eval("compare --real idx:" + d + "/test.idx --checkpoint " + run + " --n 10 --guidance -1 "
                              "--features " + d + "/clf.pt"));
  EXPECT_EQ(neg.exit_code, 2) << neg.output;
  EXPECT_NE(neg.output.find("--guidance: must be in [0, 1000]"), std::string::npos) << neg.output;
}

TEST_F(EvalCli, BadInputIsOneLineAndExitCode2) {
  const std::string d = *dir_;
  const std::string bad = ddpm::test::make_temp_dir("ddpm-eval-bad");
  auto expect_bad = [](const std::string& args, const std::string& part) {
    auto r = run_command(eval(args));
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(part), std::string::npos) << args << "\n" << r.output;
    // One line (a progress bar may precede it on stderr; the error is the last line).
    const std::string last = r.output.substr(r.output.rfind("ddpm-eval: error"));
    EXPECT_EQ(last.find('\n'), last.size() - 1) << r.output;
  };
  const std::string empty = bad + "/empty";
  std::filesystem::create_directories(empty);
  expect_bad("compare --real " + empty + " --fake idx:" + d + "/test.idx --features " + d + "/clf.pt", empty);
  // Mismatched channels: 3-channel folder vs 1-channel IDX.
  ddpm::Image rgb;
  rgb.width = rgb.height = 8;
  rgb.channels = 3;
  rgb.pixels.assign(8 * 8 * 3, 100);
  std::filesystem::create_directories(bad + "/rgb");
  for (int k = 0; k < 4; ++k) ddpm::save_png(bad + "/rgb/" + std::to_string(k) + ".png", rgb);
  expect_bad("compare --real " + bad + "/rgb --fake idx:" + d + "/test.idx --features " + d + "/clf.pt",
             "real images are 3×8×8 but fake images are 1×8×8");
  // A TorchScript that returns feature maps, not [N, D].
  torch::jit::Module m("Maps");
  m.define("def forward(self, x):\n    return x.float()\n");
  m.save(bad + "/maps.pt");
  expect_bad("compare --real idx:" + d + "/test.idx --fake idx:" + d + "/train.idx --features " + bad + "/maps.pt",
             "expected floating features [N, D]");
  // Corrupt .npz.
  run_command(eval("stats --data idx:" + d + "/test.idx --features " + d + "/clf.pt --out " + bad + "/ref.npz"));
  auto npz = ddpm::test::read_bytes(bad + "/ref.npz");
  npz.resize(npz.size() / 2);
  ddpm::test::write_bytes(bad + "/cut.npz", npz);
  expect_bad("compare --real " + bad + "/cut.npz --fake idx:" + d + "/test.idx --features " + d + "/clf.pt", "cut.npz");
  expect_bad("compare --real idx:" + d + "/test.idx --features " + d + "/clf.pt", "exactly one of --fake and --checkpoint");
  expect_bad("compare --real idx:" + d + "/test.idx --fake idx:" + d + "/train.idx --guidance 1 --features " + d +
                 "/clf.pt",
             "--guidance: needs --checkpoint");
  // Guidance on an unconditional checkpoint.
  const std::string uncond = bad + "/uncond-run";
  auto t = run_command(bin_dir() + "ddpm-train --config " + ddpm::test::source_dir() + "/configs/tiny.toml --data idx:" +
                       d + "/train.idx --run-dir " + uncond + " --steps 1 --batch-size 8 --timesteps 40 "
                       "--sample-every 0 --threads 1 --device cpu --log-level warn");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  expect_bad("compare --real idx:" + d + "/test.idx --checkpoint " + uncond + " --n 4 --guidance 1 --features " + d +
                 "/clf.pt",
             "--guidance: the checkpoint's model is unconditional");
  for (const std::string n : {"0", "-1", "10000"})
    expect_bad("compare --real idx:" + d + "/test.idx --checkpoint " + uncond + " --n 4 --features " + d +
                   "/clf.pt --nproc-per-node " + n,
               "--nproc-per-node");
  expect_bad("compare --real idx:" + d + "/test.idx --fake idx:" + d + "/train.idx --nproc-per-node 2 --features " + d +
                 "/clf.pt",
             "--nproc-per-node: needs --checkpoint");
  expect_bad("fit-classifier --data idx:" + d + "/train.idx --labels idx:" + d + "/test-labels.idx",
             "200 labels for 400 images");
}
