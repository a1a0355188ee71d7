// The run configuration: TOML round trip through the CLI11 bindings, overrides, shipped configs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "ddpm/pipeline/config.hpp"
#include "tools/options.hpp"
#include "test_util.hpp"

namespace {

ddpm::Config unusual_config() {
  ddpm::Config c;
  c.image_size = "28x32";
  c.channels = 1;
  c.data.source = "idx:/some where/train-images-idx3-ubyte";
  c.data.hflip = true;
  c.data.cache = false;
  c.data.workers = 3;
  c.model.base_channels = 48;
  c.model.channel_mult = {1, 2, 3};
  c.model.num_res_blocks = 1;
  c.model.attention_resolutions = {7, 14};
  c.model.dropout = 0.123456789;
  c.model.groups = 16;
  c.model.channels_last = true;
  c.schedule.kind = "cosine";
  c.schedule.timesteps = 500;
  c.schedule.beta_start = 1.23456789e-5;
  c.schedule.cosine_s = 0.0081234567;
  c.train.steps = 1234;
  c.train.batch_size = 96;
  c.train.lr = 3.14159265e-4;
  c.train.adam_eps = 1e-12;
  c.train.ema_decay = 0.99995;
  c.train.ema_warmup = "power";
  c.train.ema_power = 0.7123456789;
  c.train.prediction = ddpm::Prediction::V;
  c.train.loss_weighting = ddpm::LossWeighting::MinSNR;
  c.train.min_snr_gamma = 3.5;
  c.train.seed = 123456789012345ull;
  c.train.bf16 = true;
  c.train.sample_every = 250;
  c.train.run_dir = "runs/with space";
  c.sample.kind = ddpm::SamplerKind::Ddim;
  c.sample.steps = 25;
  c.sample.eta = 0.3333333333;
  c.sample.clip_x0 = true;
  c.sample.seed = 77;
  return c;
}

void expect_same(const ddpm::Config& a, const ddpm::Config& b) {
  EXPECT_EQ(a.image_size, b.image_size);
  EXPECT_EQ(a.channels, b.channels);
  EXPECT_EQ(a.data.source, b.data.source);
  EXPECT_EQ(a.data.hflip, b.data.hflip);
  EXPECT_EQ(a.data.cache, b.data.cache);
  EXPECT_EQ(a.data.workers, b.data.workers);
  EXPECT_EQ(a.model.base_channels, b.model.base_channels);
  EXPECT_EQ(a.model.channel_mult, b.model.channel_mult);
  EXPECT_EQ(a.model.num_res_blocks, b.model.num_res_blocks);
  EXPECT_EQ(a.model.attention_resolutions, b.model.attention_resolutions);
  EXPECT_EQ(a.model.dropout, b.model.dropout);
  EXPECT_EQ(a.model.groups, b.model.groups);
  EXPECT_EQ(a.model.channels_last, b.model.channels_last);
  EXPECT_EQ(a.model.image_channels, b.model.image_channels);
  EXPECT_EQ(a.model.image_height, b.model.image_height);
  EXPECT_EQ(a.model.image_width, b.model.image_width);
  EXPECT_EQ(a.schedule.kind, b.schedule.kind);
  EXPECT_EQ(a.schedule.timesteps, b.schedule.timesteps);
  EXPECT_EQ(a.schedule.beta_start, b.schedule.beta_start);
  EXPECT_EQ(a.schedule.cosine_s, b.schedule.cosine_s);
  EXPECT_EQ(a.train.steps, b.train.steps);
  EXPECT_EQ(a.train.batch_size, b.train.batch_size);
  EXPECT_EQ(a.train.lr, b.train.lr);
  EXPECT_EQ(a.train.adam_eps, b.train.adam_eps);
  EXPECT_EQ(a.train.ema_decay, b.train.ema_decay);
  EXPECT_EQ(a.train.ema_warmup, b.train.ema_warmup);
  EXPECT_EQ(a.train.ema_power, b.train.ema_power);
  EXPECT_EQ(a.train.prediction, b.train.prediction);
  EXPECT_EQ(a.train.loss_weighting, b.train.loss_weighting);
  EXPECT_EQ(a.train.min_snr_gamma, b.train.min_snr_gamma);
  EXPECT_EQ(a.train.seed, b.train.seed);
  EXPECT_EQ(a.train.bf16, b.train.bf16);
  EXPECT_EQ(a.train.sample_every, b.train.sample_every);
  EXPECT_EQ(a.train.run_dir, b.train.run_dir);
  EXPECT_EQ(a.sample.kind, b.sample.kind);
  EXPECT_EQ(a.sample.steps, b.sample.steps);
  EXPECT_EQ(a.sample.eta, b.sample.eta);
  EXPECT_EQ(a.sample.clip_x0, b.sample.clip_x0);
  EXPECT_EQ(a.sample.seed, b.sample.seed);
  EXPECT_EQ(a.sample.prediction, b.sample.prediction);
}

std::string write_file(const std::string& dir, const std::string& name, const std::string& text) {
  std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(Config, ParsesImageSize) {
  EXPECT_EQ(ddpm::parse_image_size("32"), (std::pair<int64_t, int64_t>{32, 32}));
  EXPECT_EQ(ddpm::parse_image_size("28x32"), (std::pair<int64_t, int64_t>{28, 32}));
  for (const char* bad : {"", "0", "x", "12x", "a", "-4", "3x3x3"}) {
    try {
      ddpm::parse_image_size(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("image-size"), std::string::npos) << e.what();
    }
  }
}

TEST(Config, ResolveFillsModelAndDataFromImageSizeAndChannels) {
  ddpm::Config c;
  c.image_size = "28x32";
  c.channels = 1;
  c.train.prediction = ddpm::Prediction::X0;
  c.resolve();
  EXPECT_EQ(c.model.image_height, 28);
  EXPECT_EQ(c.model.image_width, 32);
  EXPECT_EQ(c.model.image_channels, 1);
  EXPECT_EQ(c.data.height, 28);
  EXPECT_EQ(c.data.width, 32);
  EXPECT_EQ(c.data.channels, 1);
  EXPECT_EQ(c.sample.prediction, ddpm::Prediction::X0);
  c.set_shape(3, 16, 16);
  EXPECT_EQ(c.image_size, "16");
  EXPECT_EQ(c.model.image_channels, 3);
}

TEST(Config, TomlRoundTripIsExact) {
  const ddpm::Config original = unusual_config();
  const std::string text = ddpm::config_to_toml(original);
  const ddpm::Config back = ddpm::config_from_toml(text);
  ddpm::Config resolved = original;
  resolved.resolve();
  expect_same(resolved, back);
  EXPECT_EQ(ddpm::config_to_toml(back), text);
  // Keys are the option names.
  EXPECT_NE(text.find("\nlr = "), std::string::npos) << text;
  EXPECT_NE(text.find("\nsample-steps = 25"), std::string::npos) << text;
  EXPECT_NE(text.find("\nprediction = \"v\""), std::string::npos) << text;
  EXPECT_NE(text.find("\ncache = false"), std::string::npos) << text;
}

TEST(Config, DefaultsRoundTrip) {
  ddpm::Config defaults;
  defaults.resolve();
  expect_same(defaults, ddpm::config_from_toml(ddpm::config_to_toml(ddpm::Config{})));
}

TEST(Config, CommandLineOverridesFile) {
  auto dir = ddpm::test::make_temp_dir("ddpm-config");
  auto file = write_file(dir, "run.toml", "lr = 0.001\nsteps = 100\nbase-channels = 32\nsample-steps = 7\n");
  ddpm::Config c = ddpm::cli::config_from_args({"--config", file, "--lr", "0.005", "--sample-steps", "9"});
  EXPECT_EQ(c.train.lr, 0.005);
  EXPECT_EQ(c.train.steps, 100);
  EXPECT_EQ(c.model.base_channels, 32);
  EXPECT_EQ(c.sample.steps, 9);
  ddpm::Config file_only = ddpm::cli::config_from_args({"--config", file});
  EXPECT_EQ(file_only.train.lr, 0.001);
  EXPECT_EQ(file_only.sample.steps, 7);
  std::filesystem::remove_all(dir);
}

TEST(Config, UnknownKeysAndBadValuesAreOneLineErrors) {
  for (const char* text : {"no-such-key = 1\n", "steps = -5\n", "prediction = \"noise\"\n", "lr = \"fast\"\n"}) {
    try {
      ddpm::config_from_toml(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const std::invalid_argument& e) {
      std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      EXPECT_FALSE(msg.empty());
    }
  }
  try {
    ddpm::config_from_toml("no-such-key = 1\n");
    ADD_FAILURE() << "accepted an unknown key";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-key"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ddpm::config_from_file("/nonexistent/x.toml"), std::invalid_argument);
}

TEST(Config, ValidateNamesTheKey) {
  ddpm::Config c;
  c.train.grad_accum = 0;
  try {
    c.validate();
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("grad-accum"), std::string::npos) << e.what();
  }
}

// Zero terminal SNR with ε-prediction is refused before any training (it would die at the
// first sample grid: ε carries nothing about x₀ at ᾱ_{T−1} = 0), naming what to use instead.
TEST(Config, ZeroTerminalSnrWithEpsilonIsRefused) {
  ddpm::Config c;
  c.schedule.zero_terminal_snr = true;
  c.train.prediction = ddpm::Prediction::Epsilon;
  try {
    c.validate();
    ADD_FAILURE() << "accepted epsilon prediction with zero-terminal-snr";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("prediction"), std::string::npos) << msg;
    EXPECT_NE(msg.find("zero-terminal-snr"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--prediction v"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  for (ddpm::Prediction p : {ddpm::Prediction::V, ddpm::Prediction::X0}) {
    c.train.prediction = p;
    EXPECT_NO_THROW(c.validate()) << ddpm::to_string(p);
  }
  // From a config file too.
  EXPECT_THROW(ddpm::config_from_toml("zero-terminal-snr = true\n").validate(), std::invalid_argument);
  EXPECT_NO_THROW(ddpm::config_from_toml("zero-terminal-snr = true\nprediction = \"v\"\n").validate());
}

TEST(Config, ShippedConfigsParseAndValidate) {
  for (const char* name : {"tiny.toml", "fashion-mnist-28.toml", "fashion-mnist-28-quality.toml", "cifar10-32.toml"}) {
    const std::string path = ddpm::test::source_dir() + "/configs/" + name;
    if (!std::filesystem::exists(path)) {
      ADD_FAILURE() << "missing " << path;
      continue;
    }
    ddpm::Config c = ddpm::config_from_file(path);
    EXPECT_NO_THROW(c.validate()) << name;
  }
  ddpm::Config tiny = ddpm::config_from_file(ddpm::test::source_dir() + "/configs/tiny.toml");
  EXPECT_EQ(tiny.model.base_channels, 16);
  EXPECT_EQ(tiny.model.channel_mult, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(tiny.schedule.timesteps, 100);
  EXPECT_EQ(tiny.model.image_height, 8);
  // lr-schedule is read from a file and written back into the resolved config.
  ddpm::Config demo = ddpm::config_from_file(ddpm::test::source_dir() + "/configs/fashion-mnist-28.toml");
  EXPECT_EQ(demo.train.lr_schedule, ddpm::LrSchedule::Cosine);
  EXPECT_EQ(ddpm::config_from_toml(ddpm::config_to_toml(demo)).train.lr_schedule, ddpm::LrSchedule::Cosine);
  EXPECT_EQ(ddpm::config_from_toml("lr = 1e-3\n").train.lr_schedule, ddpm::LrSchedule::Constant);
  EXPECT_THROW(ddpm::config_from_toml("lr-schedule = \"step\"\n"), std::invalid_argument);
}
