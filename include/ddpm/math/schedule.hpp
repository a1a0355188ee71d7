#pragma once
// Noise schedules β_i, i = 0..T-1 (i = 0 least noisy), and everything derived from them.
// Definitions: tests/data/schedules.json's README (copied from shared/reference/README.md);
// DDPM = Ho et al. 2020, "Denoising Diffusion Probabilistic Models".
#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ddpm {

/// Everything that defines a schedule. Keys match the config file / CLI flags.
struct ScheduleConfig {
  std::string kind = "linear";  ///< linear | quadratic | cosine | sigmoid | cosine-logsnr | sigmoid-logsnr
  int64_t timesteps = 1000;     ///< T ≥ 2
  double beta_start = 1e-4;     ///< β₀ (linear, quadratic)
  double beta_end = 0.02;       ///< β₁ (linear, quadratic)
  double cosine_s = 0.008;      ///< offset s (cosine)
  double sigmoid_start = -3.0;  ///< s (sigmoid)
  double sigmoid_end = 3.0;     ///< e (sigmoid)
  double sigmoid_tau = 1.0;     ///< k (sigmoid), > 0
  std::optional<double> logsnr_max;  ///< unset: 15 (cosine-logsnr), 10 (sigmoid-logsnr)
  std::optional<double> logsnr_min;  ///< unset: -15 (cosine-logsnr), -10 (sigmoid-logsnr)
  double logsnr_shift = 0.0;         ///< added to λ (cosine-logsnr)
  double input_scale = 1.0;          ///< b > 0 (Chen 2023): log SNR shifted by 2 ln b
  bool zero_terminal_snr = false;    ///< Lin et al. 2024 rescaling: ᾱ_{T-1} = 0

  /// Throws std::invalid_argument whose message names the offending parameter.
  void validate() const;
};

/// The schedule and its derived coefficients, computed once in float64 and
/// stored as float32 tensors of shape [T] on `device()`. Holds no weights.
class NoiseSchedule {
 public:
  /// Computes the tables of `config` (validated; std::invalid_argument naming the parameter)
  /// and puts the float32 ones on `device`.
  explicit NoiseSchedule(const ScheduleConfig& config, c10::Device device = c10::kCPU);

  /// The config it was computed from.
  const ScheduleConfig& config() const { return config_; }
  /// T, the number of timesteps.
  int64_t num_timesteps() const { return config_.timesteps; }
  /// Where the float32 tables are.
  c10::Device device() const { return device_; }
  /// The same schedule on another device.
  NoiseSchedule to(c10::Device device) const;

  /// float64 CPU tables, exact (for tests, samplers' respacing and printing).
  /// β, ᾱ, β̃, the posterior mean's coefficients and λ, each float64 [T] on the CPU.
  ///@{
  at::Tensor beta64, alpha_bar64, posterior_variance64, posterior_mean_coef_x064, posterior_mean_coef_xt64,
      logsnr64;
  ///@}

  // float32 tables on device(), each [T].
  at::Tensor beta;                      ///< β_i
  at::Tensor alpha;                     ///< α_i = 1 − β_i
  at::Tensor alpha_bar;                 ///< ᾱ_i = Π_{j≤i} α_j
  at::Tensor alpha_bar_prev;            ///< ᾱ_{i−1}, with ᾱ_{−1} = 1
  at::Tensor sqrt_alpha_bar;            ///< √ᾱ_i
  at::Tensor sqrt_one_minus_alpha_bar;  ///< √(1 − ᾱ_i)
  at::Tensor logsnr;                    ///< λ_i = ln(ᾱ_i / (1 − ᾱ_i)) (−inf where ᾱ = 0)
  at::Tensor posterior_variance;        ///< β̃_i = β_i (1 − ᾱ_{i−1}) / (1 − ᾱ_i)   (DDPM eq. 7)
  at::Tensor posterior_log_variance_clipped;  ///< ln β̃_i with β̃_0 replaced by β̃_1 (β̃_0 = 0)
  at::Tensor posterior_mean_coef_x0;    ///< β_i √ᾱ_{i−1} / (1 − ᾱ_i)              (DDPM eq. 7)
  at::Tensor posterior_mean_coef_xt;    ///< (1 − ᾱ_{i−1}) √α_i / (1 − ᾱ_i)        (DDPM eq. 7)

  /// Gathers table[t] for an int64 index tensor t of shape [B] and reshapes
  /// to [B, 1, ..., 1] (ndim dims in all) so it broadcasts against x.
  static at::Tensor extract(const at::Tensor& table, const at::Tensor& t, int64_t ndim);

 private:
  NoiseSchedule() = default;
  ScheduleConfig config_;
  c10::Device device_ = c10::kCPU;
};

/// Where a sampler places its steps. The first three pick integer timesteps (Nichol & Dhariwal
/// 2021; diffusers' timestep_spacing names); the last two place noise levels σ = √((1−ᾱ)/ᾱ)
/// between σ_max = σ(T−1) and σ_min = σ(0), reached at fractional timesteps (SigmaTable):
///   karras  Karras et al. 2022 eq. 5: σ_i = (σ_max^{1/ρ} + i/(N−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ
///   logsnr  uniform in λ = log SNR = −2 log σ (the DPM-Solver default, "logSNR" / time_uniform)
enum class Spacing { Leading, Trailing, Linspace, Karras, LogSnr };
/// "leading" | "trailing" | "linspace" | "karras" | "logsnr"
Spacing parse_spacing(const std::string& text);
/// The spacing's name, as parse_spacing reads it.
std::string to_string(Spacing spacing);
/// The canonical names, in enum order (the config key's choices).
const std::vector<std::string>& spacing_names();

/// `steps` distinct indices in [0, T), ascending. steps == T gives 0..T-1. Integer spacings only
/// (karras and logsnr need the schedule: sampling_timesteps).
std::vector<int64_t> timestep_subset(int64_t T, int64_t steps, Spacing spacing);

/// The noise level of a discrete schedule at any t ∈ [0, T−1]: log σ interpolated linearly
/// between the two neighbouring table entries (k-diffusion's DiscreteSchedule, diffusers'
/// _sigma_to_t), so it is exact on table points and monotone between them. The samplers evaluate
/// the network at the fractional t this gives for the σ they step to.
class SigmaTable {
 public:
  /// From a schedule's ᾱ table (float64 [T], strictly decreasing).
  explicit SigmaTable(const at::Tensor& alpha_bar64);
  /// T.
  int64_t num_timesteps() const { return static_cast<int64_t>(log_sigma_.size()); }
  /// log σ(t), t ∈ [0, T−1]; throws std::invalid_argument outside.
  double log_sigma(double t) const;
  /// σ(t) = √((1 − ᾱ(t))/ᾱ(t)).
  double sigma(double t) const;
  /// ᾱ(t) = 1/(1 + σ(t)²); the table's own value on integer t (t = −1: 1, clean data).
  double alpha_bar(double t) const;
  /// The t with sigma(t) = σ, clamped to [0, T−1]. Throws where the table has σ = ∞ (ᾱ = 0).
  double timestep(double sigma) const;

 private:
  std::vector<double> alpha_bar_, log_sigma_;  // log σ ascending in t (ᾱ strictly decreasing)
};

/// The `steps` timesteps a sampler visits, ascending (float64; integers for the integer
/// spacings). karras / logsnr start at exactly T−1 and end at exactly 0; `rho` is Karras' ρ.
std::vector<double> sampling_timesteps(const SigmaTable& table, int64_t steps, Spacing spacing, double rho = 7.0);

/// The posterior q(x_{i−1} | x_i, x₀) of one step with β_i (DDPM eqs. 6–7), from ᾱ_{i−1}
/// (1 before the first step) and 1 − ᾱ_i, 1 − ᾱ_{i−1} (passed apart: they are more exact
/// than 1 − ᾱ where ᾱ is near 1). Used for the schedule's tables and for respaced steps.
struct PosteriorStep {
  double coef_x0;   ///< β_i √ᾱ_{i−1} / (1 − ᾱ_i)
  double coef_xt;   ///< (1 − ᾱ_{i−1}) √(1 − β_i) / (1 − ᾱ_i)
  double variance;  ///< β̃_i = β_i (1 − ᾱ_{i−1}) / (1 − ᾱ_i)
};
/// The posterior coefficients of one step, as described above.
PosteriorStep posterior_step(double beta, double alpha_bar_prev, double one_minus_alpha_bar,
                             double one_minus_alpha_bar_prev);

/// β'_k = 1 − ᾱ[kept_k] / ᾱ[kept_{k−1}] (ᾱ[kept_{−1}] = 1): the respaced process
/// over `kept` (ascending), from ᾱ ratios — never from β at t−1. float64 [K].
at::Tensor respaced_betas(const at::Tensor& alpha_bar64, const std::vector<int64_t>& kept);

}  // namespace ddpm
