#pragma once
// Shared machinery of the samplers (private): one sampling run, its noise, the denoiser
// call with x̂₀ processing, the corrector and the progress reporting.
#include <ATen/Tensor.h>

#include <ATen/TensorOperators.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "ddpm/samplers/sampler.hpp"

namespace ddpm::detail {

class SamplerRun {
 public:
  /// `kept`: the timesteps of the process being sampled, ascending (fractional with karras /
  /// logsnr spacing).
  SamplerRun(const NoiseSchedule& schedule, const Denoiser& denoiser, const SamplerConfig& config, int64_t n,
             std::vector<int64_t> image_shape, int64_t first_index, std::vector<double> kept,
             const ProgressFn& progress, const StepFn& on_step);

  const SamplerConfig& config() const { return config_; }
  int64_t num_timesteps() const { return table_.num_timesteps(); }
  const SigmaTable& table() const { return table_; }
  /// ᾱ at original timestep t (float64; SigmaTable between table points); t = −1 gives 1.
  double alpha_bar(double t) const { return table_.alpha_bar(t); }
  /// σ = √((1 − ᾱ)/ᾱ) at t (0 at t = −1).
  double sigma(double t) const { return t < 0 ? 0.0 : std::sqrt((1.0 - alpha_bar(t)) / alpha_bar(t)); }
  /// α of the process being sampled at kept timestep t: ᾱ_t / ᾱ_{t'}, t' the next smaller kept step
  /// (ᾱ = 1 below the first); 1 − β_t of the original schedule when t' = t − 1.
  double alpha(double t) const;

  /// The next N(0, I) draw of every image, on the device.
  at::Tensor noise();

  struct Estimate {
    at::Tensor x0;   ///< x̂₀ after clipping / dynamic thresholding (if enabled)
    at::Tensor eps;  ///< ε̂ consistent with x0 and x_t
  };
  /// Evaluates the denoiser at original timestep t and converts its output. With
  /// process = true, x̂₀ is clipped/thresholded as configured and ε̂ recomputed from it.
  Estimate estimate(const at::Tensor& x, double t, bool process = true);

  /// Runs the configured Langevin corrector on x at original timestep t (no-op when disabled).
  void correct(at::Tensor& x, double t);

  /// After predictor step `step` (1-based) of `total`: on_step, then progress.
  /// Returns false when the caller must stop (progress returned false).
  bool report(int64_t step, int64_t total, const at::Tensor& x);

  /// x_T ~ N(0, I).
  at::Tensor initial() { return noise(); }

 private:
  const NoiseSchedule& schedule_;
  const Denoiser& denoiser_;
  const SamplerConfig& config_;
  int64_t n_;
  std::vector<int64_t> shape_;  ///< [n, C, H, W]
  NoiseStream noise_;
  SigmaTable table_;
  std::vector<double> alpha_;  ///< 1 − β of the original table
  std::vector<double> kept_;
  const ProgressFn& progress_;
  const StepFn& on_step_;
};

/// The two-step multistep solvers' memory (dpm++2m, dpm++2m-sde): D (x̂₀) and h (the step in λ) of
/// the previous step; an undefined d_prev makes the next step first order.
struct DataHistory {
  at::Tensor d_prev;
  double h_prev = 0.0;
  /// Keeps this step's D and h. With the corrector on, the corrector's Langevin moves (run after
  /// the step) leave the trajectory D belongs to; extrapolating through them would inflate the
  /// noise, so nothing is kept and every step is first order.
  void keep(const SamplerRun& run, const at::Tensor& d, double h) {
    d_prev = run.config().corrector ? at::Tensor() : d;
    h_prev = h;
  }
};

/// A 1-D tensor as float64 values on the host.
std::vector<double> to_double_vector(const at::Tensor& t);

/// Per-image Euclidean norm of x [B, ...] → [B, 1, ..., 1]. On CPU computed image by image
/// in float64, so it does not depend on the batch (bitwise batch invariance).
at::Tensor per_image_norm(const at::Tensor& x);

/// A sampler's predictor (k-diffusion style: one loop, many steppers).
struct Stepper {
  /// One step from x at kept index k (timestep t, estimate e) to kept index k − 1 (timestep
  /// t_prev), before the corrector. Called for k = K−1 … 1 in that order; may keep state between
  /// calls (multistep history) and may call run.estimate itself (Heun's second evaluation).
  std::function<at::Tensor(int64_t k, double t, double t_prev, const SamplerRun::Estimate& e, const at::Tensor& x)> step;
  /// Optional, before the estimate at kept index k: moves x to a noisier level and returns the
  /// timestep the estimate is then taken at (Heun's churn). Unset: x stays at t.
  std::function<double(int64_t k, double t, at::Tensor& x)> perturb;
};

/// Makes a fresh Stepper for a run (the registry, sampler.cpp); called again after every
/// RePaint jump, since a multistep history belongs to the trajectory it was built on.
using StepperFactory = std::function<Stepper()>;

/// The kept-step indices visited after `start` (x at kept[start]), down to −1 (the final
/// x̂₀), with RePaint's jumps back up (Steering::jump_length, resample).
std::vector<int64_t> visit_path(int64_t start, int64_t jump_length, int64_t resample);

/// The one sampling loop (k-diffusion style), from x at kept[start]: per kept step, estimate
/// at t, step to t_prev (the last step, to σ = 0, returns x̂₀: what a first-order step of every
/// sampler here gives, and what diffusers' lower_order_final / k-diffusion's last step do), run the corrector, then the steering hook,
/// report; RePaint's up-jumps noise x forward instead. Returns the final sample, or x̂₀ when
/// progress stops it early.
at::Tensor run_predictor(SamplerRun& run, const std::vector<double>& kept, at::Tensor x, int64_t start,
                         const StepperFactory& make_stepper, const Steering& steering);

/// Multistep solvers in λ = log(α/σ) = ½ log SNR (α = √ᾱ, σ = √(1−ᾱ)): λ at ᾱ, −∞ at ᾱ = 0.
double half_logsnr(double alpha_bar);

// The predictors: each makes its Stepper for a run (sampler.cpp maps SamplerKind to them).
Stepper ancestral_stepper(SamplerRun& run, const std::vector<double>& kept);
Stepper ddim_stepper(SamplerRun& run, double eta);
Stepper dpmpp_2m_stepper(SamplerRun& run);
Stepper dpmpp_3m_stepper(SamplerRun& run, const std::vector<double>& kept);
Stepper dpmpp_2m_sde_stepper(SamplerRun& run);
Stepper unipc_stepper(SamplerRun& run);
Stepper heun_stepper(SamplerRun& run, const std::vector<double>& kept);
Stepper euler_stepper(SamplerRun& run);
Stepper euler_ancestral_stepper(SamplerRun& run);
Stepper ipndm_stepper(SamplerRun& run);

}  // namespace ddpm::detail
