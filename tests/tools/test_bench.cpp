// ddpm-bench end to end on a tiny config: every key present, the counted numbers equal
// the library's own (parameters, FLOPs), the measured ones positive and finite, the
// derived ones consistent with them. No timing assertions.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>

#include "ddpm/models/unet.hpp"
#include "test_util.hpp"

namespace {

using ddpm::test::bin_dir;
using ddpm::test::make_temp_dir;
using ddpm::test::run_command;

// A JSON value of a flat object: what ddpm-bench prints.
struct Value {
  enum Kind { String, Number, Bool, Null } kind = Null;
  std::string text;
  double number = 0;
  bool boolean = false;
};

// Parses one flat JSON object ({"key": scalar, ...}); throws on anything else.
std::map<std::string, Value> parse_flat_json(const std::string& s) {
  size_t i = 0;
  auto skip = [&] {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  };
  auto expect = [&](char c) {
    skip();
    if (i >= s.size() || s[i] != c) throw std::runtime_error(std::string("JSON: expected '") + c + "' at " + std::to_string(i));
    ++i;
  };
  auto parse_string = [&] {
    expect('"');
    std::string out;
    while (i < s.size() && s[i] != '"') {
      if (s[i] == '\\') {
        ++i;
        if (i >= s.size()) break;
        const char e = s[i];
        if (e == 'n') out += '\n';
        else if (e == 't') out += '\t';
        else if (e == 'u') { out += '?'; i += 4; }
        else out += e;
      } else {
        out += s[i];
      }
      ++i;
    }
    expect('"');
    return out;
  };
  std::map<std::string, Value> object;
  expect('{');
  skip();
  if (i < s.size() && s[i] == '}') return object;
  while (true) {
    const std::string key = parse_string();
    expect(':');
    skip();
    Value v;
    if (s[i] == '"') {
      v.kind = Value::String;
      v.text = parse_string();
    } else if (s.compare(i, 4, "true") == 0 || s.compare(i, 5, "false") == 0) {
      v.kind = Value::Bool;
      v.boolean = s[i] == 't';
      i += v.boolean ? 4 : 5;
    } else if (s.compare(i, 4, "null") == 0) {
      i += 4;
    } else {
      size_t used = 0;
      v.kind = Value::Number;
      v.number = std::stod(s.substr(i), &used);
      i += used;
    }
    if (!object.emplace(key, v).second) throw std::runtime_error("JSON: duplicate key " + key);
    skip();
    if (s[i] == ',') { ++i; continue; }
    expect('}');
    return object;
  }
}

// The last line of the output that starts with '{'.
std::string json_line(const std::string& output) {
  std::string last;
  size_t start = 0;
  while (start < output.size()) {
    size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    if (output[start] == '{') last = output.substr(start, end - start);
    start = end + 1;
  }
  return last;
}

// A model small enough to train in milliseconds, with every kind of layer
// (two levels, attention at 4×4, learned variance: out_channels ≠ image_channels).
ddpm::UNetConfig tiny_config() {
  ddpm::UNetConfig c;
  c.image_channels = 1;
  c.image_height = 8;
  c.image_width = 8;
  c.learned_variance = true;
  c.base_channels = 8;
  c.channel_mult = {1, 2};
  c.num_res_blocks = 1;
  c.attention_resolutions = {4};
  c.num_heads = 2;
  c.dropout = 0.1;
  c.groups = 4;
  return c;
}

// The same model as TOML (keys = the CLI long options of add_model_options),
// plus training keys that ddpm-bench must ignore.
std::string tiny_toml() {
  return "# tiny test model\n"
         "channels = 1\n"
         "image-size = 8\n"
         "learned-variance = true\n"
         "base-channels = 8\n"
         "channel-mult = [1, 2]\n"
         "num-res-blocks = 1\n"
         "attention-resolutions = [4]\n"
         "num-heads = 2\n"
         "dropout = 0.1\n"
         "groups = 4\n"
         "lr = 2e-4\n"
         "ema-decay = 0.9999\n";
}

class BenchTool : public ::testing::Test {
 protected:
  void SetUp() override {
    exe_ = bin_dir() + "ddpm-bench";
#ifdef DDPM_TEST_HAVE_BENCH
    // The build made ddpm-bench: its absence is a failure, never a skip.
    ASSERT_TRUE(std::filesystem::exists(exe_)) << exe_ << " is missing although the build has ddpm-bench";
#else
    GTEST_SKIP() << "ddpm-bench is not part of this build (configured with DDPM_BUILD_BENCH=OFF)";
#endif
    dir_ = make_temp_dir("ddpm-bench-test");
    config_ = dir_ + "/tiny.toml";
    std::ofstream(config_) << tiny_toml();
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::string exe_, dir_, config_;
};

const char* const kKeys[] = {"config", "batch_size", "device", "dtype", "channels_last", "threads", "status",
                             "parameters", "train_images_per_s", "sample_images_per_s", "peak_rss_mb",
                             "flops_per_image_forward", "train_gflops", "sample_gflops", "machine_conv_gflops",
                             "machine_matmul_gflops", "train_efficiency", "sample_efficiency"};

double positive(const std::map<std::string, Value>& j, const std::string& key) {
  const auto& v = j.at(key);
  EXPECT_EQ(v.kind, Value::Number) << key;
  EXPECT_TRUE(std::isfinite(v.number)) << key;
  EXPECT_GT(v.number, 0.0) << key;
  return v.number;
}

TEST_F(BenchTool, Fp32JsonHasEveryKeyWithConsistentValues) {
  const auto r = run_command(exe_ + " --config " + config_ + " --batch-size 3 --iters 2 --warmup 1 --threads 1 --device cpu");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto line = json_line(r.output);
  ASSERT_FALSE(line.empty()) << r.output;
  const auto j = parse_flat_json(line);
  for (const char* key : kKeys) EXPECT_TRUE(j.count(key)) << "missing key " << key << " in " << line;

  EXPECT_EQ(j.at("status").text, "ok");
  EXPECT_EQ(j.at("dtype").text, "fp32");
  EXPECT_EQ(j.at("device").text, "cpu");
  EXPECT_EQ(j.at("batch_size").number, 3);
  EXPECT_EQ(j.at("threads").number, 1);
  EXPECT_EQ(j.at("channels_last").kind, Value::Bool);
  EXPECT_FALSE(j.at("channels_last").boolean);
  // ddpm-bench re-executes itself with OpenMP's passive wait policy unless told not to.
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("DDPM_NO_ENV_TUNING"))
    EXPECT_EQ(j.at("omp_wait_policy").text, "PASSIVE");

  // Counted numbers: exactly the library's count for the same config.
  const auto config = tiny_config();
  ddpm::UNet model(config);
  EXPECT_EQ(j.at("parameters").number, static_cast<double>(ddpm::count_parameters(*model)));
  const double flops = positive(j, "flops_per_image_forward");
  EXPECT_NEAR(flops / ddpm::forward_flops(config), 1.0, 1e-5);

  // Measured numbers: positive and finite; derived numbers follow from them.
  const double train_ips = positive(j, "train_images_per_s");
  const double sample_ips = positive(j, "sample_images_per_s");
  positive(j, "peak_rss_mb");
  const double conv = positive(j, "machine_conv_gflops");
  positive(j, "machine_matmul_gflops");
  const double train_gflops = positive(j, "train_gflops");
  const double sample_gflops = positive(j, "sample_gflops");
  EXPECT_NEAR(train_gflops / (3 * flops * train_ips / 1e9), 1.0, 1e-4);
  EXPECT_NEAR(sample_gflops / (flops * sample_ips / 1e9), 1.0, 1e-4);
  EXPECT_NEAR(positive(j, "train_efficiency") / (train_gflops / conv), 1.0, 1e-4);
  EXPECT_NEAR(positive(j, "sample_efficiency") / (sample_gflops / conv), 1.0, 1e-4);

  // CPU-time variants (CPU device only).
  const double train_cpu_s = positive(j, "train_step_cpu_s");
  const double conv_cpu = positive(j, "machine_conv_gflops_cpu");
  EXPECT_NEAR(positive(j, "train_efficiency_cpu") / (3 * flops * 3 / train_cpu_s / 1e9 / conv_cpu), 1.0, 1e-4);
  positive(j, "sample_efficiency_cpu");
}

TEST_F(BenchTool, ModelNameResolvesAndBf16IsMeasuredOrReportedUnsupported) {
  // --model NAME finds NAME.toml in $DDPM_CONFIG_DIR; channels_last and bf16 take the other paths.
  const auto r = run_command("DDPM_CONFIG_DIR=" + dir_ + " " + exe_ +
                             " --model tiny --batch-size 2 --iters 2 --warmup 1 --threads 1 --device cpu"
                             " --dtype bf16 --channels-last");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = parse_flat_json(json_line(r.output));
  for (const char* key : kKeys) EXPECT_TRUE(j.count(key)) << "missing key " << key;
  EXPECT_EQ(j.at("config").text, "tiny");
  EXPECT_EQ(j.at("dtype").text, "bf16");
  EXPECT_TRUE(j.at("channels_last").boolean);
  EXPECT_EQ(j.at("parameters").number, static_cast<double>(ddpm::count_parameters(*ddpm::UNet(tiny_config()))));
  const auto& status = j.at("status").text;
  if (status == "ok") {
    positive(j, "train_images_per_s");
    positive(j, "sample_images_per_s");
    positive(j, "train_efficiency");
    positive(j, "sample_efficiency");
  } else {
    // No fake numbers when bf16 cannot run natively.
    EXPECT_EQ(status.rfind("unsupported", 0), 0u) << status;
    EXPECT_EQ(j.at("train_images_per_s").kind, Value::Null);
    EXPECT_EQ(j.at("sample_images_per_s").kind, Value::Null);
  }
}

TEST_F(BenchTool, BadInputIsOneLineErrorWithExitCode2) {
  auto r = run_command("DDPM_CONFIG_DIR=" + dir_ + " " + exe_ + " --model no-such-model --iters 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no-such-model"), std::string::npos) << r.output;

  r = run_command(exe_ + " --config " + config_ + " --model tiny --iters 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("not both"), std::string::npos) << r.output;

  r = run_command(exe_ + " --config " + config_ + " --dtype fp16 --iters 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--dtype"), std::string::npos) << r.output;

  r = run_command(exe_ + " --config " + dir_ + "/missing.toml --iters 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;

  // A config name is a name: a path is refused, never read as a config.
  for (const char* name : {"../../../etc/passwd", "/etc/passwd", ".hidden", "a/b"}) {
    r = run_command(exe_ + " --model '" + name + "' --iters 1");
    EXPECT_EQ(r.exit_code, 2) << name << ": " << r.output;
    EXPECT_NE(r.output.find("not a config name"), std::string::npos) << r.output;
  }
}

}  // namespace
