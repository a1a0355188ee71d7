#include "tools/bench_measure.hpp"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>
#include <torch/optim/adamw.h>
#include <torch/version.h>

#ifdef DDPM_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <time.h>

// The device-generic autocast API (set_autocast_enabled(device_type, ...)) arrived in
// LibTorch 2.4; the per-device functions it replaced are deprecated there.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define DDPM_AUTOCAST_GENERIC_API 1
#endif

namespace ddpm::bench {

double median(std::vector<double> values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

void synchronize(c10::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

namespace {
double process_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
}  // namespace

Timings time_runs(c10::Device device, int warmup, int iters, const std::function<void()>& step) {
  for (int i = 0; i < warmup; ++i) step();
  Timings t;
  for (int i = 0; i < iters; ++i) {
    synchronize(device);  // CUDA kernels are asynchronous: time only this run's work
    const double cpu0 = process_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    step();
    synchronize(device);
    t.wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    t.cpu.push_back(process_cpu_seconds() - cpu0);
  }
  return t;
}

// ---------------------------------------------------------------- autocast

AutocastScope::AutocastScope(c10::Device device, c10::ScalarType dtype) {
  if (dtype == c10::kFloat) return;
  active_ = true;
  cuda_ = device.is_cuda();
#ifdef DDPM_AUTOCAST_GENERIC_API
  const auto type = cuda_ ? at::kCUDA : at::kCPU;
  prev_enabled_ = at::autocast::is_autocast_enabled(type);
  prev_dtype_ = at::autocast::get_autocast_dtype(type);
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::set_autocast_enabled(type, true);
#else
  if (cuda_) {
    prev_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(true);
  } else {
    prev_enabled_ = at::autocast::is_cpu_enabled();
    prev_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(true);
  }
#endif
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#ifdef DDPM_AUTOCAST_GENERIC_API
  const auto type = cuda_ ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_enabled(type, prev_enabled_);
  at::autocast::set_autocast_dtype(type, prev_dtype_);
#else
  if (cuda_) {
    at::autocast::set_enabled(prev_enabled_);
    at::autocast::set_autocast_gpu_dtype(prev_dtype_);
  } else {
    at::autocast::set_cpu_enabled(prev_enabled_);
    at::autocast::set_autocast_cpu_dtype(prev_dtype_);
  }
#endif
}

namespace {

bool cpu_has_native_bf16() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    std::string word;
    while (words >> word)
      if (word == "avx512_bf16" || word == "amx_bf16") return true;
    return false;
  }
  return false;
}

}  // namespace

std::string unsupported_reason(const Target& target) {
  if (target.dtype == c10::kFloat) return "";
  if (target.dtype != c10::kBFloat16) return "only fp32 and bf16 are measured";
  if (target.device.is_cpu() && !cpu_has_native_bf16())
    return "bf16 on CPU: this CPU has neither avx512_bf16 nor amx_bf16, so bf16 would be emulated";
  // Autocast must actually lower a convolution to bf16 in this LibTorch build.
  try {
    c10::InferenceMode guard;
    const auto options = at::TensorOptions().device(target.device).dtype(at::kFloat);
    at::Tensor y;
    {
      AutocastScope autocast(target.device, target.dtype);
      y = at::conv2d(at::ones({1, 2, 4, 4}, options), at::ones({2, 2, 3, 3}, options));
    }
    if (y.scalar_type() != at::kBFloat16)
      return std::string("bf16: autocast on ") + c10::DeviceTypeName(target.device.type()) +
             " did not lower conv2d to bf16 in this LibTorch build";
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    return "bf16: autocast failed: " + msg;
  }
  return "";
}

// ---------------------------------------------------------------- machine reference

ConvShape reference_conv_shape(c10::Device device) {
  // 256 channels at 32×32 is the widest, busiest layer shape of the DDPM CIFAR-10
  // U-Net family; the batch is sized so one run is long enough to time on each device.
  return device.is_cuda() ? ConvShape{128, 256, 32, 32} : ConvShape{16, 256, 32, 32};
}

double flops_conv3x3(const ConvShape& s) { return 2.0 * s.n * s.c * s.c * 9.0 * s.h * s.w; }

Throughput conv_gflops(const Target& target, const ConvShape& s, int iters) {
  c10::InferenceMode guard;
  const auto options = at::TensorOptions().device(target.device).dtype(target.dtype);
  const auto format = target.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const auto x = at::randn({s.n, s.c, s.h, s.w}, options).contiguous(format);
  const auto w = (at::randn({s.c, s.c, 3, 3}, options) * (1.0 / std::sqrt(9.0 * s.c))).contiguous(format);
  const auto b = at::zeros({s.c}, options);
  const auto t = time_runs(target.device, 1, iters, [&] { at::conv2d(x, w, b, /*stride=*/1, /*padding=*/1); });
  return {flops_conv3x3(s) / median(t.wall) / 1e9, flops_conv3x3(s) / median(t.cpu) / 1e9};
}

int64_t reference_matmul_size(c10::Device device) { return device.is_cuda() ? 8192 : 2048; }

Throughput matmul_gflops(const Target& target, int64_t n, int iters) {
  c10::InferenceMode guard;
  const auto options = at::TensorOptions().device(target.device).dtype(target.dtype);
  const auto a = at::randn({n, n}, options);
  const auto b = at::randn({n, n}, options);
  const auto t = time_runs(target.device, 1, iters, [&] { at::mm(a, b); });
  const double flops = 2.0 * n * n * n;
  return {flops / median(t.wall) / 1e9, flops / median(t.cpu) / 1e9};
}

// ---------------------------------------------------------------- memory, load

double peak_memory_mb(c10::Device device) {
#ifdef DDPM_WITH_CUDA
  if (device.is_cuda()) {
    // allocated_bytes[0] is StatType::AGGREGATE (every pool), in 1.13 and 2.x alike.
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);
  }
#endif
  if (device.is_cuda()) return std::numeric_limits<double>::quiet_NaN();
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      double kb = 0;
      fields >> kb;
      return kb / 1024.0;
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

void reset_peak_memory(c10::Device device) {
#ifdef DDPM_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
}

double load_average_1m() {
  std::ifstream in("/proc/loadavg");
  double load = std::numeric_limits<double>::quiet_NaN();
  if (in) in >> load;
  return load;
}

// ---------------------------------------------------------------- the model

ModelResult measure_model(UNetConfig config, const Target& target, int64_t batch_size, int warmup, int iters) {
  if (batch_size < 1) throw std::invalid_argument("--batch-size must be ≥ 1, got " + std::to_string(batch_size));
  config.channels_last = target.channels_last;
  config.validate();
  const auto device = target.device;
  const auto format = target.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const int64_t B = batch_size, C = config.image_channels;

  UNet model(config);
  model->to(device);
  auto params = model->parameters();
  if (target.channels_last)
    for (auto& p : params)
      if (p.dim() == 4) p.set_data(p.data().contiguous(format));

  ModelResult result;
  result.parameters = count_parameters(*model);

  // DDPM's linear schedule, T = 1000: enough to draw x_t realistically (eq. 4).
  constexpr int64_t T = 1000;
  const auto alpha_bar =
      at::cumprod(1.0 - at::linspace(1e-4, 0.02, T, at::TensorOptions().dtype(at::kDouble)), 0)
          .to(at::kFloat)
          .to(device);
  const auto f32 = at::TensorOptions().device(device).dtype(at::kFloat);
  const auto x0 = (at::rand({B, C, config.image_height, config.image_width}, f32) * 2 - 1).contiguous(format);

  // Training step: what the trainer does per batch (DDPM algorithm 1 with AdamW).
  model->train();
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(2e-4).weight_decay(0.0));
  auto train_step = [&] {
    const auto t = at::randint(0, T, {B}, f32.dtype(at::kLong));
    const auto noise = at::randn_like(x0);
    const auto ab = alpha_bar.index_select(0, t).view({B, 1, 1, 1});
    const auto xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise;
    at::Tensor loss;
    {
      AutocastScope autocast(device, target.dtype);
      auto out = model->forward(xt, t);
      if (out.size(1) != C) out = out.narrow(1, 0, C);  // learned variance: ε half only
      loss = at::mse_loss(out.to(at::kFloat), noise);
    }
    for (auto& p : params) p.mutable_grad() = at::Tensor();  // zero_grad(set_to_none)
    loss.backward();
    optimizer.step();
  };
  result.train = time_runs(device, warmup, iters, train_step);
  result.train_images_per_s = static_cast<double>(B) / median(result.train.wall);

  // Sampling step: one denoiser evaluation of the batch.
  model->eval();
  {
    c10::InferenceMode guard;
    const auto t = at::randint(0, T, {B}, f32.dtype(at::kLong));
    const auto xt = at::randn_like(x0);
    auto sample_step = [&] {
      AutocastScope autocast(device, target.dtype);
      model->forward(xt, t);
    };
    result.sample = time_runs(device, warmup, iters, sample_step);
  }
  result.sample_images_per_s = static_cast<double>(B) / median(result.sample.wall);
  return result;
}

}  // namespace ddpm::bench
