// ddpm-convert end to end: reference weights in, a checkpoint ddpm-sample uses, diffusers out;
// hostile inputs give exit code 2 and one line.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>

#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/io/safetensors.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace ddpm;
using ddpm::test::bin_dir;
using ddpm::test::run_command;

namespace {
std::string ref_path(const std::string& name) { return test::data_dir() + "/ddpm_ref/" + name; }
std::string convert(const std::string& args) { return bin_dir() + "ddpm-convert " + args + " --threads 1 --log-level warn"; }

void expect_bad_input(const test::CommandResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  std::string out = r.output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  EXPECT_EQ(out.find('\n'), std::string::npos) << "not one line: " << r.output;
}
}  // namespace

TEST(ConvertCli, DiffusersFolderToCheckpointThatDdpmSampleUses) {
  const std::string dir = test::make_temp_dir("conv");
  auto r = run_command(convert(ref_path("diffusers") + " --out " + dir + "/m.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("702499 parameters"), std::string::npos) << r.output;
  const LoadedModel m = load_model_for_sampling(dir + "/m.pt");
  EXPECT_EQ(m.config.sample.variance, Variance::FixedLarge);
  EXPECT_TRUE(m.config.sample.clip_x0);
  EXPECT_EQ(m.config.model.time_embedding, TimeEmbedding::SinCos);
  r = run_command(bin_dir() + "ddpm-sample --checkpoint " + dir + "/m.pt --n 1 --sampler ddim --steps 2 --out " + dir +
                  "/s.png --threads 1 --device cpu --log-level warn");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir + "/s.png"));
  // Back to diffusers: the weights file holds the same tensors as the original folder's.
  r = run_command(convert(dir + "/m.pt --to diffusers --out " + dir + "/hf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto a = safetensors::read_file(ref_path("diffusers/diffusion_pytorch_model.safetensors")).tensors;
  const auto b = safetensors::read_file(dir + "/hf/diffusion_pytorch_model.safetensors").tensors;
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, t] : a) EXPECT_TRUE(b.count(k) && at::equal(b.at(k), t)) << k;
  EXPECT_TRUE(fs::exists(dir + "/hf/config.json"));
  EXPECT_TRUE(fs::exists(dir + "/hf/scheduler/scheduler_config.json"));
}

TEST(ConvertCli, OriginalLayoutNeedsTheImageSizeForTwoLevels) {
  const std::string dir = test::make_temp_dir("conv");
  expect_bad_input(run_command(convert(ref_path("original/model.ckpt") + " --out " + dir + "/m.pt")), "--image-size");
  auto r = run_command(convert(ref_path("original/model.ckpt") + " --image-size 16 --out " + dir + "/m.pt"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(ConvertCli, HostileInputsExitTwoWithOneLine) {
  const std::string dir = test::make_temp_dir("conv");
  const std::string good = test::read_string(ref_path("original/model.ckpt"));
  test::write_bytes(dir + "/trunc.ckpt", good.substr(0, good.size() / 2));
  expect_bad_input(run_command(convert(dir + "/trunc.ckpt --image-size 16 --out " + dir + "/o.pt")), "trunc.ckpt");
  // A wrong key and a wrong shape in a safetensors file of the original layout.
  auto sd = safetensors::read_file(ref_path("diffusers/diffusion_pytorch_model.safetensors")).tensors;
  test::write_bytes(dir + "/bad.safetensors", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10));
  expect_bad_input(run_command(convert(dir + "/bad.safetensors --out " + dir + "/o.pt")), "bad.safetensors");
  sd.erase("conv_in.weight");
  fs::create_directories(dir + "/hf");
  fs::copy_file(ref_path("diffusers/config.json"), dir + "/hf/config.json");
  safetensors::write_file(dir + "/hf/diffusion_pytorch_model.safetensors", sd);
  expect_bad_input(run_command(convert(dir + "/hf --out " + dir + "/o.pt")), "missing tensor 'conv_in.weight'");
  sd["conv_in.weight"] = at::zeros({32, 3, 3, 1});
  safetensors::write_file(dir + "/hf/diffusion_pytorch_model.safetensors", sd);
  expect_bad_input(run_command(convert(dir + "/hf --out " + dir + "/o.pt")), "'conv_in.weight' has shape");
  expect_bad_input(run_command(convert(dir + "/nothing-here --out " + dir + "/o.pt")), "nothing-here");
  expect_bad_input(run_command(convert(ref_path("diffusers") + " --to onnx --out " + dir + "/o")), "--to");
}
