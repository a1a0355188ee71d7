// ddpm-bench: training and sampling throughput of a U-Net config, and how close it
// comes to the machine's own convolution throughput. Prints one JSON object.
// What each number means: bench/README.md.
#include <ATen/Parallel.h>
#include <limits.h>
#include <torch/version.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tools/bench_measure.hpp"
#include "tools/common.hpp"
#include "tools/cpu_env.hpp"
#include "tools/options.hpp"
#include "tools/tools.hpp"
#include "ddpm/models/unet.hpp"

namespace ddpm::cli {
namespace {

namespace fs = std::filesystem;

struct BenchOptions {
  std::string config_file;  // --config (or resolved from --model)
  std::string model;        // --model NAME
  int64_t batch_size = 8;
  std::string dtype = "fp32";
  std::vector<int64_t> image_size{32};
  int warmup = 2;
  int iters = 10;
};

fs::path executable_dir() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return fs::current_path();
  buf[n] = '\0';
  return fs::path(buf).parent_path();
}

/// configs/NAME.toml, looked up where a checkout or an install keeps it.
std::string resolve_model(const std::string& name) {
  if (name.empty()) throw std::invalid_argument("--model: empty name");
  std::vector<fs::path> candidates;
  if (name.find('/') != std::string::npos || fs::path(name).extension() == ".toml") candidates.emplace_back(name);
  const std::string file = name + ".toml";
  if (const char* dir = std::getenv("DDPM_CONFIG_DIR"); dir && *dir) candidates.push_back(fs::path(dir) / file);
  const fs::path exe = executable_dir();
  candidates.push_back(fs::current_path() / "configs" / file);
  candidates.push_back(exe / ".." / "configs" / file);                   // build dir inside a checkout
  candidates.push_back(exe / ".." / "share" / "ddpm" / "configs" / file);  // installed
  std::string tried;
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return fs::weakly_canonical(c, ec).string();
    tried += (tried.empty() ? "" : ", ") + c.lexically_normal().string();
  }
  throw std::invalid_argument("--model " + name + ": no config file found (tried " + tried +
                              "; set DDPM_CONFIG_DIR or pass --config FILE)");
}

// ---------------------------------------------------------------- JSON

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof(esc), "\\u%04x", c);
          out += esc;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";  // JSON has no NaN/inf
  std::ostringstream s;
  s.precision(6);
  s << v;
  return s.str();
}

class JsonObject {
 public:
  void add_raw(const std::string& key, std::string value) { fields_.emplace_back(key, std::move(value)); }
  void add(const std::string& key, const std::string& value) { add_raw(key, json_string(value)); }
  void add(const std::string& key, const char* value) { add_raw(key, json_string(value)); }
  void add(const std::string& key, double value) { add_raw(key, json_number(value)); }
  void add(const std::string& key, int64_t value) { add_raw(key, std::to_string(value)); }
  void add(const std::string& key, int value) { add_raw(key, std::to_string(value)); }
  void add(const std::string& key, bool value) { add_raw(key, value ? "true" : "false"); }
  std::string str() const {
    std::string out = "{";
    for (size_t i = 0; i < fields_.size(); ++i)
      out += (i ? ", " : "") + json_string(fields_[i].first) + ": " + fields_[i].second;
    return out + "}";
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

// ---------------------------------------------------------------- argv

/// --model NAME becomes --config <configs/NAME.toml> before CLI11 parses, so the
/// file is read by the same config machinery as --config.
struct RewrittenArgs {
  std::vector<std::string> args;
  std::string model;
  std::string error;  // reported from inside run_app's body (exit 2)
};

RewrittenArgs rewrite_model_arg(int argc, char** argv) {
  RewrittenArgs r;
  bool has_config = false;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) {
      r.model = argv[++i];
      continue;
    }
    if (a.rfind("--model=", 0) == 0) {
      r.model = a.substr(8);
      continue;
    }
    if (a == "--config" || a.rfind("--config=", 0) == 0) has_config = true;
    r.args.push_back(a);
  }
  if (!r.model.empty()) {
    if (has_config) {
      r.error = "give --config FILE or --model NAME, not both";
    } else {
      try {
        const auto path = resolve_model(r.model);
        r.args.push_back("--config");
        r.args.push_back(path);
      } catch (const std::invalid_argument& e) {
        r.error = e.what();
      }
    }
  }
  return r;
}

}  // namespace

int bench_main(int argc, char** argv) {
  tune_cpu_environment(argv);  // may re-execute the program (see cpu_env.hpp)
  CLI::App app{
      "ddpm-bench: training and sampling throughput of a U-Net config on this machine, against the\n"
      "machine's own 3x3-convolution and matrix-product throughput. Prints one JSON object."};
  app.name("ddpm-bench");
  RuntimeOptions runtime;
  add_runtime_options(app, runtime);
  UNetConfig model_config;
  BenchOptions o;
  add_config_file_option(
      app,
      [&model_config, &o](const Config& c) {
        model_config = c.model;  // resolved: image-size and channels are in it where the file sets them
        if (!c.image_size.empty()) o.image_size = {c.model.image_height, c.model.image_width};
      },
      "TOML config: the model keys (and image-size, channels) are read, training keys ignored");
  add_model_options(app, model_config);
  // Parsed by rewrite_model_arg; declared so --help lists it.
  app.add_option("--model", o.model, "config name: configs/NAME.toml (e.g. cifar10-32, fashion-mnist-28)");
  app.add_option("--batch-size", o.batch_size, "images per step")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--dtype", o.dtype, "fp32 | bf16 (bf16 = autocast mixed precision)")
      ->capture_default_str()
      ->transform(CLI::IsMember({"fp32", "bf16", "float32", "bfloat16"}));
  // ddpm-train owns these two; the bench reads the same keys.
  app.add_option("--image-size", o.image_size, "image height and width (one value: square)")
      ->expected(1, 2)
      ->capture_default_str();
  app.add_option("--channels", model_config.image_channels, "image channels: 1, 3 or 4")->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed steps before timing")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--iters", o.iters, "timed steps (the median is reported)")->capture_default_str()->check(CLI::PositiveNumber);

  auto rewritten = rewrite_model_arg(argc, argv);
  std::vector<char*> args;
  for (auto& a : rewritten.args) args.push_back(a.data());

  return run_app(app, static_cast<int>(args.size()), args.data(), [&]() -> int {
    if (!rewritten.error.empty()) throw std::invalid_argument(rewritten.error);
    const auto device = apply_runtime(runtime);
    const double load_start = bench::load_average_1m();

    bench::Target target;
    target.device = device;
    target.dtype = (o.dtype == "bf16" || o.dtype == "bfloat16") ? c10::kBFloat16 : c10::kFloat;
    target.channels_last = model_config.channels_last;  // --channels-last is a model option
    if (o.image_size.empty() || o.image_size.size() > 2)
      throw std::invalid_argument("--image-size: expected one or two sizes");
    model_config.image_height = o.image_size.front();
    model_config.image_width = o.image_size.back();
    model_config.validate();

    auto config_file = app.get_option("--config")->as<std::string>();
    JsonObject json;
    json.add("config", rewritten.model.empty() ? (config_file.empty() ? std::string("defaults") : config_file)
                                                : rewritten.model);
    json.add("config_file", config_file);
    json.add("batch_size", o.batch_size);
    json.add("device", device.str());
    json.add("dtype", target.dtype == c10::kBFloat16 ? "bf16" : "fp32");
    json.add("channels_last", model_config.channels_last);
    json.add("image_size", std::to_string(model_config.image_channels) + "x" +
                               std::to_string(model_config.image_height) + "x" +
                               std::to_string(model_config.image_width));
    json.add("threads", static_cast<int64_t>(at::get_num_threads()));
    json.add("torch_version", TORCH_VERSION);
    const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
    const char* blas_core = std::getenv("OPENBLAS_CORETYPE");
    json.add("omp_wait_policy", wait_policy ? wait_policy : "default");
    json.add("blas_core", blas_core_name() + (blas_core ? std::string(" (OPENBLAS_CORETYPE=") + blas_core + ")" : ""));
    json.add("warmup", o.warmup);
    json.add("iters", o.iters);

    const double flops = forward_flops(model_config);
    const auto reason = bench::unsupported_reason(target);
    const auto conv_shape = bench::reference_conv_shape(device);
    const auto matmul_n = bench::reference_matmul_size(device);
    const int machine_iters = std::max(o.iters, 3);

    // The machine reference: the best of the two memory formats, measured before and
    // after the model. It estimates what the hardware can do (other load only lowers
    // it), so a model run in the slower format shows that as lower efficiency.
    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
    bench::Throughput conv{nan, nan}, matmul{nan, nan};
    bool conv_channels_last = false;
    auto measure_conv = [&] {
      for (const bool cl : {false, true}) {
        bench::Target t = target;
        t.channels_last = cl;
        const auto g = bench::conv_gflops(t, conv_shape, machine_iters);
        if (!(g.wall <= conv.wall)) {  // also replaces NaN
          conv.wall = g.wall;
          conv_channels_last = cl;
        }
        if (!(g.cpu <= conv.cpu)) conv.cpu = g.cpu;
      }
    };

    bench::ModelResult r;
    if (reason.empty()) {
      bench::reset_peak_memory(device);
      measure_conv();
      r = bench::measure_model(model_config, target, o.batch_size, o.warmup, o.iters);
    } else {
      r.parameters = count_parameters(*UNet(model_config));
      r.train_images_per_s = r.sample_images_per_s = nan;
    }
    const double peak_rss = bench::peak_memory_mb(c10::kCPU);
    const double peak_gpu = device.is_cuda() ? bench::peak_memory_mb(device) : 0.0;
    if (reason.empty()) {
      measure_conv();
      matmul = bench::matmul_gflops(target, matmul_n, machine_iters);
    }

    const double train_gflops = 3.0 * flops * r.train_images_per_s / 1e9;  // backward ≈ 2× forward
    const double sample_gflops = flops * r.sample_images_per_s / 1e9;
    const double B = static_cast<double>(o.batch_size);
    const double train_gflops_cpu = 3.0 * flops * B / bench::median(r.train.cpu) / 1e9;
    const double sample_gflops_cpu = flops * B / bench::median(r.sample.cpu) / 1e9;
    json.add("status", reason.empty() ? std::string("ok") : "unsupported: " + reason);
    json.add("parameters", r.parameters);
    json.add("train_images_per_s", r.train_images_per_s);
    json.add("sample_images_per_s", r.sample_images_per_s);
    json.add("train_step_s", bench::median(r.train.wall));
    json.add("sample_step_s", bench::median(r.sample.wall));
    json.add("train_step_cpu_s", bench::median(r.train.cpu));
    json.add("sample_step_cpu_s", bench::median(r.sample.cpu));
    json.add("peak_rss_mb", peak_rss);
    if (device.is_cuda()) json.add("peak_gpu_allocated_mb", peak_gpu);
    json.add("flops_per_image_forward", flops);
    json.add("train_gflops", train_gflops);
    json.add("sample_gflops", sample_gflops);
    json.add("machine_conv_gflops", conv.wall);
    json.add("machine_conv_shape", std::to_string(conv_shape.n) + "x" + std::to_string(conv_shape.c) + "x" +
                                       std::to_string(conv_shape.h) + "x" + std::to_string(conv_shape.w) +
                                       " conv3x3 " + std::to_string(conv_shape.c) + "->" +
                                       std::to_string(conv_shape.c) +
                                       (conv_channels_last ? " channels_last" : " contiguous"));
    json.add("machine_matmul_gflops", matmul.wall);
    json.add("machine_matmul_size", matmul_n);
    json.add("train_efficiency", train_gflops / conv.wall);
    json.add("sample_efficiency", sample_gflops / conv.wall);
    // The same ratios by CPU time: robust to other processes on a shared CPU when
    // --threads 1 (with more threads, idle-waiting threads count as busy).
    if (device.is_cpu()) {
      json.add("machine_conv_gflops_cpu", conv.cpu);
      json.add("train_efficiency_cpu", train_gflops_cpu / conv.cpu);
      json.add("sample_efficiency_cpu", sample_gflops_cpu / conv.cpu);
    }
    json.add("load_average_1m_start", load_start);
    json.add("load_average_1m_end", bench::load_average_1m());
    std::cout << json.str() << std::endl;
    return 0;
  });
}

}  // namespace ddpm::cli
