#pragma once
// Measurements behind ddpm-bench (private to the library): timing helpers,
// the machine's reference throughput (a large 3×3 convolution and a GEMM),
// and the U-Net's training and sampling throughput. See bench/README.md.
#include <ATen/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ddpm/models/unet.hpp"

namespace ddpm::bench {

/// What every measurement runs on.
struct Target {
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;  ///< kFloat or kBFloat16 (bf16 = autocast for the model)
  bool channels_last = false;
};

/// Median of `values` (copied, not sorted in place). NaN when empty.
double median(std::vector<double> values);

/// Waits for the device to finish queued work (CUDA); no-op on CPU.
void synchronize(c10::Device device);

/// Seconds per timed run: wall clock, and the process's CPU time (all threads). On a
/// shared CPU the wall time includes time the scheduler gave to other processes; with
/// one LibTorch thread the CPU time does not, so it measures the work itself.
struct Timings {
  std::vector<double> wall, cpu;
};

/// Runs `step` `warmup` times untimed, then `iters` times, each timed on its own
/// (with device synchronisation before and after).
Timings time_runs(c10::Device device, int warmup, int iters, const std::function<void()>& step);

/// Empty string when `target` can run: for bf16 on CPU the LibTorch build must
/// support CPU autocast and the CPU must have native bf16 instructions
/// (avx512_bf16 or amx_bf16); otherwise a one-line reason.
std::string unsupported_reason(const Target& target);

/// RAII: enables autocast to `dtype` on `device` for the scope (no-op for fp32),
/// and clears the autocast weight-cast cache when the outermost scope ends, as
/// Python's torch.autocast does (the cache would otherwise hold stale weights
/// after an optimizer step).
class AutocastScope {
 public:
  AutocastScope(c10::Device device, c10::ScalarType dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool prev_enabled_ = false;
  c10::ScalarType prev_dtype_ = c10::kFloat;
};

/// Throughput of a forward 3×3 convolution (stride 1, padding 1, with bias),
/// input [n, c, h, w] → [n, c, h, w], in GFLOP/s (2 × multiply-adds), median of `iters`.
struct ConvShape {
  int64_t n, c, h, w;
};
ConvShape reference_conv_shape(c10::Device device);  ///< CPU: 16×256×32×32, CUDA: 128×256×32×32
double flops_conv3x3(const ConvShape& s);
/// GFLOP/s by wall time (median) and by CPU time (median).
struct Throughput {
  double wall = 0, cpu = 0;
};
Throughput conv_gflops(const Target& target, const ConvShape& shape, int iters);

/// Throughput of an n×n by n×n matrix product in `target.dtype`, GFLOP/s (2n³ per product).
int64_t reference_matmul_size(c10::Device device);  ///< CPU: 2048, CUDA: 8192
Throughput matmul_gflops(const Target& target, int64_t n, int iters);

/// Peak memory so far: CPU → the process's peak resident set (VmHWM) in MiB;
/// CUDA → the caching allocator's peak allocated bytes on the device in MiB.
double peak_memory_mb(c10::Device device);
/// Starts a new peak for CUDA's allocator (no-op on CPU, where VmHWM cannot be reset).
void reset_peak_memory(c10::Device device);

/// The 1-minute load average (/proc/loadavg); NaN where unavailable.
double load_average_1m();

/// Training and sampling throughput of one U-Net configuration.
struct ModelResult {
  int64_t parameters = 0;
  double train_images_per_s = 0;   ///< batch / median(seconds per step)
  double sample_images_per_s = 0;  ///< batch / median(seconds per denoiser evaluation)
  Timings train, sample;  ///< each timed run
};
/// Builds the U-Net on the target, then times `iters` training steps (q_sample on a
/// linear schedule, forward, MSE against ε, backward, AdamW step) after `warmup`
/// untimed ones, then the same for one inference-mode forward pass (a sampling step).
ModelResult measure_model(UNetConfig config, const Target& target, int64_t batch_size, int warmup, int iters);

}  // namespace ddpm::bench
