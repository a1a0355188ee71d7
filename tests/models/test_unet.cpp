// The time-embedded U-Net: shapes, the original's parameter count, the time path,
// gradients, overfitting one batch, size errors, memory formats, bf16 autocast,
// the sinusoidal embedding, FLOP counting and the CLI/TOML binding.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

#include "tools/options.hpp"
#include "ddpm/pipeline/config.hpp"
#include "models/unet_layers.hpp"
#include "ddpm/models/unet.hpp"
#include "test_device.hpp"
#include "test_util.hpp"

namespace {

using ddpm::UNet;
using ddpm::UNetConfig;

UNetConfig tiny(int64_t channels = 1, int64_t h = 8, int64_t w = 8) {
  UNetConfig c;
  c.image_channels = channels;
  c.image_height = h;
  c.image_width = w;
  c.base_channels = 8;
  c.channel_mult = {1, 2};
  c.num_res_blocks = 1;
  c.attention_resolutions = {h / 2};
  c.groups = 4;
  c.dropout = 0.0;
  return c;
}

/// Replaces the near-zero initialisation by generic random weights, so that the
/// output depends on every path (the original init makes the output ≈ 0).
void perturb(UNet& model, uint64_t seed) {
  at::manual_seed(seed);
  at::NoGradGuard no_grad;
  for (auto& p : model->parameters()) {
    if (p.dim() >= 2) {
      const double fan_in = static_cast<double>(p.numel() / p.size(0));
      p.normal_(0.0, 1.0 / std::sqrt(fan_in));
    } else {
      p.add_(at::randn_like(p) * 0.1);
    }
  }
}

at::Tensor steps(std::vector<int64_t> v) { return at::tensor(v, at::kLong); }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

// Honest capability check: a bf16 convolution either runs on this CPU or throws. "" when it
// runs, else why the bf16 tests skip.
std::string bf16_conv_unsupported() {
  try {
    at::conv2d(at::ones({1, 4, 4, 4}, at::kBFloat16), at::ones({4, 4, 3, 3}, at::kBFloat16));
    return "";
  } catch (const std::exception& e) {
    return "bf16 convolution not supported by this CPU with LibTorch " TORCH_VERSION
           " (the test needs at::conv2d in bf16; it threw: " + std::string(e.what()).substr(0, 200) + ")";
  }
}

void set_cpu_autocast(bool enabled) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCPU, enabled);
#else
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::set_cpu_enabled(enabled);
#endif
  if (!enabled) at::autocast::clear_cache();
}

}  // namespace

// ------------------------------------------------------------------ embedding

TEST(TimestepEmbedding, MatchesClosedForm) {
  for (int64_t d : {2, 8, 128}) {
    const std::vector<int64_t> ts{0, 1, 7, 500, 999};
    const at::Tensor e = ddpm::timestep_embedding(steps(ts), d);
    ASSERT_EQ(e.sizes(), at::IntArrayRef({5, d}));
    ASSERT_EQ(e.scalar_type(), at::kFloat);
    for (size_t b = 0; b < ts.size(); ++b)
      for (int64_t i = 0; i < d / 2; ++i) {
        const double arg = static_cast<double>(ts[b]) / std::pow(10000.0, 2.0 * i / d);
        EXPECT_NEAR(e[b][2 * i].item<double>(), std::sin(arg), 1e-6) << "t=" << ts[b] << " i=" << i;
        EXPECT_NEAR(e[b][2 * i + 1].item<double>(), std::cos(arg), 1e-6) << "t=" << ts[b] << " i=" << i;
      }
  }
  // Float timesteps give the same as integer ones; other max_period follows the formula.
  EXPECT_TRUE(ddpm::timestep_embedding(at::tensor({3.0f, 40.0f}), 16).equal(ddpm::timestep_embedding(steps({3, 40}), 16)));
  const at::Tensor e = ddpm::timestep_embedding(at::tensor({2.5}), 4, 100.0);
  EXPECT_NEAR(e[0][2].item<double>(), std::sin(2.5 / 10.0), 1e-6);
  EXPECT_THROW(ddpm::timestep_embedding(steps({1}), 7), std::invalid_argument);
  EXPECT_THROW(ddpm::timestep_embedding(steps({1}), 0), std::invalid_argument);
}

// ------------------------------------------------------------------ shapes

TEST(UNet, OutputShapeEqualsInputShape) {
  std::vector<std::pair<std::string, UNetConfig>> configs;
  configs.push_back({"1ch square, attention", tiny(1, 8, 8)});
  {
    UNetConfig c = tiny(3, 8, 12);  // non-square, 3 levels, attention at height 4, two heads
    c.channel_mult = {1, 2, 2};
    c.attention_resolutions = {4};
    c.num_heads = 2;
    configs.push_back({"3ch 8x12, 2 heads", c});
  }
  {
    UNetConfig c = tiny(4, 16, 8);  // avgpool, learned variance, no attention
    c.resample = "avgpool";
    c.attention_resolutions = {};
    c.learned_variance = true;
    configs.push_back({"4ch avgpool learned variance", c});
  }
  {
    UNetConfig c = tiny(3, 12, 4);  // one level: no resampling at all
    c.channel_mult = {2};
    c.num_res_blocks = 2;
    c.attention_resolutions = {12};
    c.dropout = 0.1;
    configs.push_back({"single level", c});
  }
  {
    UNetConfig c = tiny(1, 8, 16);
    c.channels_last = true;
    c.num_heads = 4;
    configs.push_back({"channels_last 4 heads", c});
  }
  for (auto& [name, c] : configs) {
    SCOPED_TRACE(name);
    UNet model(c);
    EXPECT_EQ(ddpm::count_parameters(*model), ddpm::parameter_count(c));
    const at::Tensor x = at::randn({2, c.image_channels, c.image_height, c.image_width});
    for (bool train : {true, false}) {
      model->train(train);
      const at::Tensor y = model->forward(x, steps({3, 900}));
      EXPECT_EQ(y.sizes(), at::IntArrayRef({2, c.out_channels(), c.image_height, c.image_width}));
      EXPECT_TRUE(at::isfinite(y).all().item<bool>());
    }
    if (c.learned_variance) EXPECT_EQ(c.out_channels(), 2 * c.image_channels);
  }
}

TEST(UNet, AcceptsOtherSizesThatDivide) {
  UNet model(tiny(1, 8, 8));
  model->eval();
  EXPECT_EQ(model->forward(at::randn({1, 1, 6, 10}), steps({5})).sizes(), at::IntArrayRef({1, 1, 6, 10}));
  // A single timestep broadcasts over the batch.
  EXPECT_EQ(model->forward(at::randn({3, 1, 4, 4}), steps({5})).size(0), 3);
}

TEST(UNet, Cifar10ConfigHasTheOriginalParameterCount) {
  const UNetConfig c;  // the defaults are the DDPM CIFAR-10 model
  EXPECT_EQ(ddpm::parameter_count(c), 35746307);
  UNet model(c);
  EXPECT_EQ(ddpm::count_parameters(*model), 35746307);
  // Initialised as the original: each block's output conv, the attention output
  // projections and the final conv start near zero (variance scaling with scale 1e-10).
  int zero_init = 0;
  for (const auto& p : model->named_parameters()) {
    const std::string& key = p.key();
    const bool near_zero = key.find("conv2.weight") != std::string::npos ||
                           key.find("proj_out.weight") != std::string::npos || key == "conv_out.weight";
    const double amax = p.value().abs().max().item<double>();
    if (near_zero) {
      ++zero_init;
      EXPECT_LT(amax, 1e-5) << key;
    } else if (key.find(".weight") != std::string::npos && key.find("norm") == std::string::npos) {
      EXPECT_GT(amax, 1e-3) << key;
    }
  }
  EXPECT_EQ(zero_init, 22 + 6 + 1);  // conv2 of 22 ResBlocks, 6 attention proj_out, conv_out
  // One image at 32×32 in eval mode: the near-zero output of a fresh model.
  model->eval();
  at::NoGradGuard no_grad;
  const at::Tensor y = model->forward(at::randn({1, 3, 32, 32}), steps({10}));
  EXPECT_EQ(y.sizes(), at::IntArrayRef({1, 3, 32, 32}));
  EXPECT_LT(y.abs().max().item<double>(), 1e-3);
}

TEST(UNet, SummaryHasParameterCountAndLevelSizes) {
  const std::string s = ddpm::summary(UNetConfig{});
  EXPECT_NE(s.find("\nparameters: 35746307\n"), std::string::npos) << s;
  for (const char* level : {"128x32x32", "256x16x16 + attention", "256x8x8", "256x4x4"})
    EXPECT_NE(s.find(level), std::string::npos) << level << "\n" << s;
  const auto levels = ddpm::level_info(tiny(1, 8, 12));
  ASSERT_EQ(levels.size(), 2u);
  EXPECT_EQ(levels[1].channels, 16);
  EXPECT_EQ(levels[1].height, 4);
  EXPECT_EQ(levels[1].width, 6);
  EXPECT_TRUE(levels[1].attention);
  EXPECT_FALSE(levels[0].attention);
}

// ------------------------------------------------------------------ the time path

TEST(UNet, DifferentTimestepsGiveDifferentOutputs) {
  UNet model(tiny(1, 8, 8));
  perturb(model, 1);
  model->eval();
  at::NoGradGuard no_grad;
  const at::Tensor x = at::randn({1, 1, 8, 8}).expand({3, 1, 8, 8}).contiguous();
  const at::Tensor y = model->forward(x, steps({0, 0, 999}));
  EXPECT_LT(max_abs_diff(y[0], y[1]), 1e-6);  // same x, same t: same output
  EXPECT_GT(max_abs_diff(y[0], y[2]), 1e-2);  // same x, other t: different output
  EXPECT_GT(max_abs_diff(model->forward(x.narrow(0, 0, 1), steps({1})), y[0].unsqueeze(0)), 1e-4);
  // Float timesteps are accepted and equal integer ones.
  EXPECT_LT(max_abs_diff(model->forward(x, at::tensor({0.0f, 0.0f, 999.0f})), y), 1e-6);
}

TEST(UNet, EveryParameterGetsAGradient) {
  UNetConfig c = tiny(3, 8, 8);
  c.dropout = 0.1;
  UNet model(c);  // the original initialisation, not perturbed
  model->train();
  const at::Tensor x = at::randn({2, 3, 8, 8});
  const at::Tensor loss = (model->forward(x, steps({10, 700})) - at::randn_like(x)).pow(2).mean();
  loss.backward();
  int64_t n = 0;
  for (const auto& p : model->named_parameters()) {
    const at::Tensor& g = p.value().grad();
    ASSERT_TRUE(g.defined()) << p.key();
    EXPECT_EQ(g.sizes(), p.value().sizes()) << p.key();
    EXPECT_TRUE(at::isfinite(g).all().item<bool>()) << p.key();
    EXPECT_GT(g.abs().sum().item<double>(), 0.0) << p.key();
    ++n;
  }
  EXPECT_EQ(n, static_cast<int64_t>(model->parameters().size()));
  EXPECT_GT(n, 40);
}

TEST(UNet, OverfitsOneBatch) {
  at::manual_seed(0);
  UNetConfig c = tiny(1, 8, 8);
  c.base_channels = 16;
  UNet model(c);
  model->train();
  const at::Tensor x = at::randn({4, 1, 8, 8});
  const at::Tensor t = steps({1, 50, 300, 999});
  const at::Tensor target = at::randn({4, 1, 8, 8});
  // Adam (Kingma & Ba 2015), written out to keep the test's includes light.
  auto params = model->parameters();
  std::vector<at::Tensor> m, v;
  for (auto& p : params) m.push_back(at::zeros_like(p)), v.push_back(at::zeros_like(p));
  const double lr = 3e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  double first = 0, last = 0;
  int step = 1;
  for (; step <= 200; ++step) {
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    const at::Tensor loss = (model->forward(x, t) - target).pow(2).mean();
    loss.backward();
    last = loss.item<double>();
    if (step == 1) first = last;
    if (last < first / 20) break;
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor& g = params[i].grad();
      m[i].mul_(b1).add_(g, 1 - b1);
      v[i].mul_(b2).addcmul_(g, g, 1 - b2);
      const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
      params[i].addcdiv_(m[i], (v[i] / bc2).sqrt_().add_(eps), -lr / bc1);
    }
  }
  EXPECT_LT(last, first / 10) << "loss " << first << " -> " << last << " after " << step << " steps";
}

// ------------------------------------------------------------------ errors

TEST(UNet, SizeThatDoesNotDivideIsAClearError) {
  UNetConfig c = tiny(1, 8, 8);
  c.channel_mult = {1, 2, 2};  // divisor 4
  c.attention_resolutions = {};
  c.image_width = 10;
  try {
    UNet model(c);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("width 10"), std::string::npos) << msg;
    EXPECT_NE(msg.find("divisible by 4"), std::string::npos) << msg;
  }
  c.image_width = 8;
  UNet model(c);
  try {
    model->forward(at::randn({1, 1, 6, 8}), steps({1}));
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("height 6"), std::string::npos) << msg;
    EXPECT_NE(msg.find("divisible by 4"), std::string::npos) << msg;
  }
  EXPECT_THROW(model->forward(at::randn({1, 3, 8, 8}), steps({1})), std::invalid_argument);  // channels
  EXPECT_THROW(model->forward(at::randn({2, 1, 8, 8}), steps({1, 2, 3})), std::invalid_argument);  // timesteps
}

TEST(UNet, BadConfigNamesTheKey) {
  auto message = [](const UNetConfig& c) {
    try {
      c.validate();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  UNetConfig c = tiny();
  c.groups = 3;
  EXPECT_NE(message(c).find("groups"), std::string::npos);
  c = tiny();
  c.attention_resolutions = {5};
  EXPECT_NE(message(c).find("attention-resolutions: 5"), std::string::npos) << message(c);
  c = tiny();
  c.num_heads = 3;
  EXPECT_NE(message(c).find("num-heads"), std::string::npos);
  c = tiny();
  c.image_channels = 2;
  EXPECT_NE(message(c).find("channels"), std::string::npos);
  c = tiny();
  c.resample = "pool";
  EXPECT_NE(message(c).find("resample"), std::string::npos);
  c = tiny();
  c.channel_mult = {};
  EXPECT_NE(message(c).find("channel-mult"), std::string::npos);
  c = tiny();
  c.dropout = 1.0;
  EXPECT_NE(message(c).find("dropout"), std::string::npos);
}

// ------------------------------------------------------------------ formats and precision

TEST(UNet, ChannelsLastMatchesContiguous) {
  for (int64_t heads : {1, 2}) {
    UNetConfig c = tiny(3, 8, 12);
    c.num_heads = heads;
    UNet dense(c);
    perturb(dense, 2);
    c.channels_last = true;
    UNet last(c);
    {
      at::NoGradGuard no_grad;
      auto src = dense->named_parameters();
      for (auto& p : last->named_parameters()) p.value().copy_(src[p.key()]);
    }
    for (auto& p : last->parameters())
      if (p.dim() == 4) EXPECT_TRUE(p.is_contiguous(at::MemoryFormat::ChannelsLast));
    dense->eval();
    last->eval();
    const at::Tensor x = at::randn({2, 3, 8, 12});
    const at::Tensor t = steps({4, 400});
    at::Tensor a, b;
    {
      at::NoGradGuard no_grad;
      a = dense->forward(x, t);
      b = last->forward(x, t);
    }
    EXPECT_TRUE(b.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_LT(max_abs_diff(a, b), 1e-4 * (1 + a.abs().max().item<double>())) << "heads " << heads;
    // And with autograd on (the out-of-place path).
    EXPECT_LT(max_abs_diff(dense->forward(x, t), last->forward(x, t)), 1e-4 * (1 + a.abs().max().item<double>()));
  }
}

TEST(UNet, CloneIsAnIndependentCopy) {
  UNet model(tiny(1, 8, 8));
  perturb(model, 3);
  model->eval();
  auto copy = std::dynamic_pointer_cast<ddpm::UNetImpl>(model->clone());
  ASSERT_TRUE(copy);
  const at::Tensor x = at::randn({1, 1, 8, 8});
  at::NoGradGuard no_grad;
  EXPECT_TRUE(copy->forward(x, steps({7})).equal(model->forward(x, steps({7}))));
  for (auto& p : copy->parameters()) p.zero_();
  EXPECT_GT(model->forward(x, steps({7})).abs().max().item<double>(), 0.0);
}

TEST(UNet, Bf16AutocastOnCpuIsCloseToFloat32) {
  if (const std::string why = bf16_conv_unsupported(); !why.empty()) GTEST_SKIP() << why;
  UNetConfig c = tiny(3, 8, 8);
  UNet model(c);
  perturb(model, 4);
  model->eval();
  const at::Tensor x = at::randn({2, 3, 8, 8});
  const at::Tensor t = steps({20, 600});
  at::NoGradGuard no_grad;
  const at::Tensor ref = model->forward(x, t);
  set_cpu_autocast(true);
  at::Tensor y;
  try {
    y = model->forward(x, t);
  } catch (...) {
    set_cpu_autocast(false);
    throw;
  }
  set_cpu_autocast(false);
  EXPECT_EQ(y.sizes(), ref.sizes());
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);  // conv_out ran in bf16
  const double scale = ref.abs().max().item<double>();
  EXPECT_GT(scale, 0.1);
  EXPECT_LT(max_abs_diff(y, ref), 0.05 * scale);
  EXPECT_GT(max_abs_diff(y, ref), 0.0);  // it really ran in lower precision
}

TEST(UNet, Bf16AutocastTrainingStepOnCpu) {
  if (const std::string why = bf16_conv_unsupported(); !why.empty()) GTEST_SKIP() << why;
  UNetConfig c = tiny(3, 8, 8);
  c.dropout = 0.1;
  c.num_heads = 2;
  UNet model(c);
  model->train();
  const at::Tensor x = at::randn({2, 3, 8, 8});
  set_cpu_autocast(true);
  try {
    const at::Tensor loss = (model->forward(x, steps({3, 300})).to(at::kFloat) - x).pow(2).mean();
    loss.backward();
  } catch (...) {
    set_cpu_autocast(false);
    throw;
  }
  set_cpu_autocast(false);
  for (const auto& p : model->named_parameters()) {
    const at::Tensor& g = p.value().grad();
    ASSERT_TRUE(g.defined()) << p.key();
    EXPECT_EQ(g.scalar_type(), at::kFloat) << p.key();  // master weights stay float32
    EXPECT_TRUE(at::isfinite(g).all().item<bool>()) << p.key();
  }
}

// ------------------------------------------------------------------ CUDA (skipped without one)

// The same perturbed model on CUDA and on the CPU: outputs and every gradient agree
// (TF32 off, so CUDA computes in float32 like the CPU).
TEST(UNet, ForwardBackwardOnCudaMatchesCpu) {
  DDPM_SKIP_WITHOUT_CUDA();
  auto& ctx = at::globalContext();
  const bool tf32 = ctx.allowTF32CuDNN(), tf32_mm = ctx.allowTF32CuBLAS();
  ctx.setAllowTF32CuDNN(false);
  ctx.setAllowTF32CuBLAS(false);
  UNetConfig c = tiny(3, 8, 8);
  c.num_heads = 2;
  UNet cpu(c);
  perturb(cpu, 6);
  auto gpu = std::dynamic_pointer_cast<ddpm::UNetImpl>(cpu->clone(c10::Device(c10::kCUDA, 0)));
  ASSERT_TRUE(gpu);
  const at::Tensor x = at::randn({2, 3, 8, 8}), target = at::randn({2, 3, 8, 8});
  const at::Tensor t = steps({5, 900});
  const at::Tensor y_cpu = cpu->forward(x, t);
  const at::Tensor y_gpu = gpu->forward(x.cuda(), t.cuda());
  (y_cpu - target).pow(2).mean().backward();
  (y_gpu - target.cuda()).pow(2).mean().backward();
  ctx.setAllowTF32CuDNN(tf32);
  ctx.setAllowTF32CuBLAS(tf32_mm);
  EXPECT_TRUE(y_gpu.is_cuda());
  const double scale = 1 + y_cpu.abs().max().item<double>();
  EXPECT_LT(max_abs_diff(y_gpu.cpu(), y_cpu), 1e-4 * scale);
  auto pc = cpu->named_parameters();
  for (const auto& p : gpu->named_parameters()) {
    const at::Tensor gc = pc[p.key()].grad(), gg = p.value().grad();
    ASSERT_TRUE(gg.defined()) << p.key();
    EXPECT_LT(max_abs_diff(gg.cpu(), gc), 1e-4 * (1 + gc.abs().max().item<double>())) << p.key();
  }
}

// bf16 autocast with channels_last on CUDA (the GPU training configuration) stays close to
// float32, and its backward gives float32 gradients.
TEST(UNet, Bf16ChannelsLastOnCudaIsCloseToFloat32) {
  DDPM_SKIP_WITHOUT_CUDA();
  UNetConfig c = tiny(3, 8, 8);
  c.channels_last = true;
  UNet model(c);
  perturb(model, 7);
  model->to(c10::Device(c10::kCUDA, 0));
  const at::Tensor x = at::randn({2, 3, 8, 8}).cuda().contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor t = steps({20, 600}).cuda();
  const at::Tensor ref = model->forward(x, t).detach();
  at::Tensor y;
  {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    y = model->forward(x, t);
    at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
    y = model->forward(x, t);
    at::autocast::set_enabled(false);
#endif
    at::autocast::clear_cache();
  }
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  const double scale = ref.abs().max().item<double>();
  EXPECT_LT(max_abs_diff(y, ref), 0.05 * scale);
  y.to(at::kFloat).pow(2).mean().backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_EQ(p.value().grad().scalar_type(), at::kFloat) << p.key();
    EXPECT_TRUE(at::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
}

// ------------------------------------------------------------------ FLOPs

TEST(UNet, ForwardFlopsMatchHandCount) {
  // 1×4×4 image, ch 4, mult 1,2, one ResBlock per level, attention at height 2,
  // time embedding width 16. MACs per layer, counted by hand from the architecture:
  UNetConfig c = tiny(1, 4, 4);
  c.base_channels = 4;
  c.groups = 2;
  c.attention_resolutions = {2};
  const double temb_mlp = 4 * 16 + 16 * 16;
  const double conv_in = 1 * 4 * 9 * 16;
  const double level0 = 4 * 4 * 9 * 16 + 16 * 4 + 4 * 4 * 9 * 16;                            // res 4→4 @4×4
  const double down = 4 * 4 * 9 * 4;                                                            // 3×3 s2 → 2×2
  const double attn8 = 4 * (8 * 8 * 4) + 2 * (4 * 4 * 8);                                       // q,k,v,out + 2 products
  const double level1 = 4 * 8 * 9 * 4 + 16 * 8 + 8 * 8 * 9 * 4 + 4 * 8 * 4 + attn8;            // res 4→8 @2×2 + attn
  const double mid = 2 * (8 * 8 * 9 * 4 + 16 * 8 + 8 * 8 * 9 * 4) + attn8;
  const double up1 = (16 * 8 * 9 * 4 + 16 * 8 + 8 * 8 * 9 * 4 + 16 * 8 * 4) + attn8 +          // cat 8+8 → 8
                     (12 * 8 * 9 * 4 + 16 * 8 + 8 * 8 * 9 * 4 + 12 * 8 * 4) + attn8;           // cat 8+4 → 8
  const double upsample = 8 * 8 * 9 * 16;                                                       // 3×3 @4×4
  const double up0 = (12 * 4 * 9 * 16 + 16 * 4 + 4 * 4 * 9 * 16 + 12 * 4 * 16) +              // cat 8+4 → 4
                     (8 * 4 * 9 * 16 + 16 * 4 + 4 * 4 * 9 * 16 + 8 * 4 * 16);                 // cat 4+4 → 4
  const double conv_out = 4 * 1 * 9 * 16;
  const double macs = temb_mlp + conv_in + level0 + down + level1 + mid + up1 + upsample + up0 + conv_out;
  EXPECT_DOUBLE_EQ(ddpm::forward_flops(c), 2 * macs);
  // Parameters of the same model, by hand: weights + biases + GroupNorm scale/shift.
  UNet model(c);
  EXPECT_EQ(ddpm::count_parameters(*model), ddpm::parameter_count(c));
  // Avg-pool downsampling has no weights: one 3×3 conv fewer.
  c.resample = "avgpool";
  EXPECT_DOUBLE_EQ(ddpm::forward_flops(c), 2 * (macs - down));
  // FLOPs scale with the image area for convolutions (no attention, no time MLP term changes).
  UNetConfig a = tiny(1, 8, 8), b = tiny(1, 16, 16);
  a.attention_resolutions = b.attention_resolutions = {};
  a.base_channels = b.base_channels = 8;
  const double mlp = 2.0 * (8 * 32 + 32 * 32);
  const double temb_proj = 2.0 * 32 * (8 + 16 + 16 * 2 + 16 + 16 + 8 + 8);  // every ResBlock's projection
  auto mid_products = [](double n) { return 2.0 * 2.0 * n * n * 16; };     // middle attention, N² terms
  EXPECT_NEAR(ddpm::forward_flops(b) - mlp - temb_proj - mid_products(64),
              4 * (ddpm::forward_flops(a) - mlp - temb_proj - mid_products(16)), 1e-6);
}

// ------------------------------------------------------------------ CLI / TOML

TEST(ModelOptions, ParsesCommandLine) {
  UNetConfig c;
  CLI::App app;
  ddpm::cli::add_model_options(app, c);
  std::vector<std::string> args{"--base-channels", "32", "--channel-mult", "1,2,2", "--num-res-blocks", "1",
                                "--attention-resolutions", "", "--num-heads", "2", "--dropout", "0",
                                "--groups", "8", "--norm-eps", "1e-5", "--resample", "avgpool",
                                "--learned-variance", "--channels-last"};
  std::reverse(args.begin(), args.end());
  app.parse(args);
  EXPECT_EQ(c.base_channels, 32);
  EXPECT_EQ(c.channel_mult, (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(c.num_res_blocks, 1);
  EXPECT_TRUE(c.attention_resolutions.empty());
  EXPECT_EQ(c.num_heads, 2);
  EXPECT_EQ(c.dropout, 0.0);
  EXPECT_EQ(c.groups, 8);
  EXPECT_EQ(c.norm_eps, 1e-5);
  EXPECT_EQ(c.resample, "avgpool");
  EXPECT_TRUE(c.learned_variance);
  EXPECT_TRUE(c.channels_last);
  UNetConfig d;
  CLI::App app2;
  ddpm::cli::add_model_options(app2, d);
  EXPECT_THROW(app2.parse(std::vector<std::string>{"1,x", "--channel-mult"}), CLI::ParseError);
  EXPECT_THROW(app2.parse(std::vector<std::string>{"bilinear", "--resample"}), CLI::ParseError);
}

TEST(ModelOptions, Cifar10TomlIsTheOriginalModel) {
  UNetConfig c;
  c.base_channels = 1;  // everything must come from the file
  c.channel_mult = {9};
  c.attention_resolutions = {};
  c.dropout = 0.5;
  c.groups = 1;
  c.norm_eps = 1e-3;
  ddpm::Config base;
  base.model = c;
  const std::string file = ddpm::test::source_dir() + "/configs/cifar10-32.toml";
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  c = ddpm::config_from_toml(text.str(), base).model;
  EXPECT_EQ(c.base_channels, 128);
  EXPECT_EQ(c.channel_mult, (std::vector<int64_t>{1, 2, 2, 2}));
  EXPECT_EQ(c.num_res_blocks, 2);
  EXPECT_EQ(c.attention_resolutions, (std::vector<int64_t>{16}));
  EXPECT_EQ(c.num_heads, 1);
  EXPECT_EQ(c.dropout, 0.1);
  EXPECT_EQ(c.groups, 32);
  EXPECT_EQ(c.norm_eps, 1e-6);
  EXPECT_EQ(c.resample, "conv");
  EXPECT_FALSE(c.learned_variance);
  EXPECT_FALSE(c.channels_last);
  c.image_channels = 3;
  c.image_height = c.image_width = 32;
  EXPECT_EQ(ddpm::parameter_count(c), 35746307);
}

TEST(ModelOptions, TomlListsAndFlags) {
  const std::string dir = ddpm::test::make_temp_dir("unet-toml");
  const std::string file = dir + "/m.toml";
  {
    FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_TRUE(f);
    std::fputs("channel-mult = \"1,2\"\nattention-resolutions = \"\"\nlearned-variance = true\nchannels-last = true\n", f);
    std::fclose(f);
  }
  UNetConfig c;
  CLI::App app;
  ddpm::cli::add_model_options(app, c);
  app.set_config("--config");
  app.parse(std::vector<std::string>{file, "--config"});
  EXPECT_EQ(c.channel_mult, (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(c.attention_resolutions.empty());
  EXPECT_TRUE(c.learned_variance);
  EXPECT_TRUE(c.channels_last);
}

// ------------------------------------------------------------------ blocks against references

TEST(UNetBlocks, AttentionMatchesNaiveLoops) {
  for (int64_t heads : {1, 2}) {
    UNetConfig c = tiny();
    c.num_heads = heads;
    c.groups = 2;
    const int64_t B = 2, C = 4, H = 2, W = 3, N = H * W, d = C / heads;
    auto block = std::make_shared<ddpm::unet_detail::AttentionBlockImpl>(C, c);
    at::manual_seed(5);
    {
      at::NoGradGuard no_grad;
      for (auto& p : block->parameters()) p.normal_(0.0, 0.7);
    }
    const at::Tensor x = at::randn({B, C, H, W}, at::kDouble).to(at::kFloat);
    using Kernel = ddpm::unet_detail::AttentionBlockImpl::Kernel;
    at::Tensor y, y_fused;  // the 1.13 path and (2.x) at::scaled_dot_product_attention
    {
      at::NoGradGuard no_grad;
      y = block->forward(x, Kernel::Explicit);
      y_fused = block->forward(x, Kernel::Fused);
    }
    // Reference in float64 with explicit loops: GroupNorm (2 groups), 1×1 projections,
    // per-head softmax(q·k/√d), output projection, residual.
    auto xd = x.to(at::kDouble);
    auto P = [&](const std::string& name) { return block->named_parameters()[name].to(at::kDouble); };
    at::Tensor hn = at::empty_like(xd);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t g = 0; g < 2; ++g) {
        const at::Tensor part = xd[b].narrow(0, g * 2, 2);
        const double mean = part.mean().item<double>();
        const double var = (part - mean).pow(2).mean().item<double>();
        hn[b].narrow(0, g * 2, 2).copy_((part - mean) / std::sqrt(var + c.norm_eps));
      }
    hn = hn * P("norm.weight").view({1, C, 1, 1}) + P("norm.bias").view({1, C, 1, 1});
    auto proj = [&](const std::string& n, const at::Tensor& in) {  // in: [C, N] → [C, N]
      return at::matmul(P(n + ".weight").view({C, C}), in) + P(n + ".bias").view({C, 1});
    };
    for (int64_t b = 0; b < B; ++b) {
      const at::Tensor hb = hn[b].reshape({C, N});
      const at::Tensor q = proj("q", hb), k = proj("k", hb), v = proj("v", hb);
      at::Tensor out = at::zeros({C, N}, at::kDouble);
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < N; ++i) {
          std::vector<double> s(N);
          double mx = -1e300, sum = 0;
          for (int64_t j = 0; j < N; ++j) {
            double dot = 0;
            for (int64_t cc = h * d; cc < (h + 1) * d; ++cc) dot += q[cc][i].item<double>() * k[cc][j].item<double>();
            s[j] = dot / std::sqrt(static_cast<double>(d));
            mx = std::max(mx, s[j]);
          }
          for (auto& e : s) sum += (e = std::exp(e - mx));
          for (int64_t cc = h * d; cc < (h + 1) * d; ++cc) {
            double acc = 0;
            for (int64_t j = 0; j < N; ++j) acc += s[j] / sum * v[cc][j].item<double>();
            out[cc][i] = acc;
          }
        }
      const at::Tensor ref = xd[b] + proj("proj_out", out).view({C, H, W});
      EXPECT_LT(max_abs_diff(y[b], ref), 1e-4) << "heads " << heads << " batch " << b;
      EXPECT_LT(max_abs_diff(y_fused[b], ref), 1e-4) << "fused, heads " << heads << " batch " << b;
    }
  }
}

// The fused kernel (LibTorch 2.x) against the explicit softmax path: outputs and every
// gradient, both memory formats, on each available device (CPU, and CUDA when present).
TEST(UNetBlocks, FusedAttentionMatchesExplicitSoftmax) {
#if TORCH_VERSION_MAJOR < 2
  GTEST_SKIP() << "LibTorch 1.13 has no at::scaled_dot_product_attention (the explicit path is the only one)";
#else
  using Kernel = ddpm::unet_detail::AttentionBlockImpl::Kernel;
  for (const auto& device : ddpm::test::test_devices()) {
    for (int64_t heads : {1, 4}) {
      for (bool channels_last : {false, true}) {
        UNetConfig c = tiny();
        c.num_heads = heads;
        c.groups = 4;
        const int64_t B = 3, C = 16, H = 8, W = 6;
        auto block = std::make_shared<ddpm::unet_detail::AttentionBlockImpl>(C, c);
        at::manual_seed(11);
        {
          at::NoGradGuard no_grad;
          for (auto& p : block->parameters()) p.normal_(0.0, 0.5);
        }
        block->to(device);
        at::Tensor x = at::randn({B, C, H, W}).to(device);
        if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
        const at::Tensor g = at::randn({B, C, H, W}).to(device);
        std::map<Kernel, std::vector<at::Tensor>> results;
        for (Kernel kernel : {Kernel::Explicit, Kernel::Fused}) {
          const at::Tensor xi = x.detach().clone().requires_grad_(true);
          block->zero_grad();
          const at::Tensor y = block->forward(xi, kernel);
          (y * g).sum().backward();
          results[kernel].push_back(y.detach());
          results[kernel].push_back(xi.grad());
          for (const auto& p : block->parameters()) results[kernel].push_back(p.grad().clone());
        }
        const auto& e = results[Kernel::Explicit];
        const auto& f = results[Kernel::Fused];
        ASSERT_EQ(e.size(), f.size());
        for (size_t i = 0; i < e.size(); ++i) {
          const double scale = 1.0 + e[i].abs().max().item<double>();
          EXPECT_LT(max_abs_diff(f[i], e[i]), 2e-5 * scale)
              << device << " heads " << heads << (channels_last ? " channels_last" : " contiguous")
              << (i == 0 ? " output" : i == 1 ? " input gradient" : " parameter gradient");
        }
      }
    }
  }
#endif
}

// act() may run SiLU in place only on a tensor nobody else holds: a caller's tensor stays
// intact (it used to be const_cast and overwritten), a temporary is still reused.
TEST(UNetBlocks, ActivationNeverOverwritesTheCallersTensor) {
  c10::InferenceMode inference;
  const at::Tensor x = at::linspace(-3, 3, 64).reshape({1, 4, 4, 4});
  const at::Tensor before = x.clone();
  const at::Tensor y = ddpm::unet_detail::act(x);
  EXPECT_TRUE(at::equal(x, before)) << "act() overwrote its argument";
  EXPECT_TRUE(at::allclose(y, before * at::sigmoid(before)));  // SiLU(x) = x σ(x)
  at::Tensor temp = before.clone();
  const void* storage = temp.data_ptr();
  const at::Tensor z = ddpm::unet_detail::act(std::move(temp));
  EXPECT_EQ(z.data_ptr(), storage) << "a temporary is activated in place";
  EXPECT_TRUE(at::allclose(z, y));
}

TEST(UNetBlocks, DownsamplePadsRightAndBottom) {
  // The original pads (0,1) in H and W before a stride-2 valid 3×3 conv, so output (i, j)
  // sees inputs 2i..2i+2 × 2j..2j+2, the last row/column being zero padding.
  UNetConfig c = tiny();
  auto down = std::make_shared<ddpm::unet_detail::DownsampleImpl>(1, true);
  at::manual_seed(6);
  const at::Tensor x = at::randn({1, 1, 4, 6});
  at::Tensor y;
  {
    at::NoGradGuard no_grad;
    down->conv->bias.fill_(0.25);
    y = down->forward(x);
  }
  ASSERT_EQ(y.sizes(), at::IntArrayRef({1, 1, 2, 3}));
  const at::Tensor w = down->conv->weight[0][0];
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      double acc = 0.25;
      for (int64_t a = 0; a < 3; ++a)
        for (int64_t b = 0; b < 3; ++b)
          if (2 * i + a < 4 && 2 * j + b < 6) acc += w[a][b].item<double>() * x[0][0][2 * i + a][2 * j + b].item<double>();
      EXPECT_NEAR(y[0][0][i][j].item<double>(), acc, 1e-5) << i << "," << j;
    }
  auto pool = std::make_shared<ddpm::unet_detail::DownsampleImpl>(1, false);
  EXPECT_NEAR(pool->forward(x)[0][0][1][2].item<double>(), x[0][0].narrow(0, 2, 2).narrow(1, 4, 2).mean().item<double>(), 1e-6);
}
