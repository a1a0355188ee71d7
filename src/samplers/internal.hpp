#pragma once
// Shared machinery of the samplers (private): one sampling run, its noise, the denoiser
// call with x̂₀ processing, the corrector and the progress reporting.
#include <ATen/Tensor.h>

#include <ATen/TensorOperators.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "ddpm/samplers/sampler.hpp"

namespace ddpm::detail {

class SamplerRun {
 public:
  /// `kept`: the timesteps of the process being sampled, ascending.
  SamplerRun(const NoiseSchedule& schedule, const Denoiser& denoiser, const SamplerConfig& config, int64_t n,
             std::vector<int64_t> image_shape, int64_t first_index, std::vector<int64_t> kept,
             const ProgressFn& progress, const StepFn& on_step);

  const SamplerConfig& config() const { return config_; }
  int64_t num_timesteps() const { return static_cast<int64_t>(alpha_bar_.size()); }
  /// ᾱ at original index t (float64); t = −1 gives 1 (clean data).
  double alpha_bar(int64_t t) const { return t < 0 ? 1.0 : alpha_bar_[static_cast<size_t>(t)]; }
  /// α of the process being sampled at kept timestep t: ᾱ_t / ᾱ_{t'}, t' the next smaller kept step
  /// (ᾱ = 1 below the first); 1 − β_t of the original schedule when t' = t − 1.
  double alpha(int64_t t) const;
  const std::vector<double>& alpha_bar_table() const { return alpha_bar_; }
  const at::Tensor& alpha_bar64() const { return alpha_bar64_; }

  /// The next N(0, I) draw of every image, on the device.
  at::Tensor noise();

  struct Estimate {
    at::Tensor x0;   ///< x̂₀ after clipping / dynamic thresholding (if enabled)
    at::Tensor eps;  ///< ε̂ consistent with x0 and x_t
  };
  /// Evaluates the denoiser at original index t and converts its output. With
  /// process = true, x̂₀ is clipped/thresholded as configured and ε̂ recomputed from it.
  Estimate estimate(const at::Tensor& x, int64_t t, bool process = true);

  /// Runs the configured Langevin corrector on x at original index t (no-op when disabled).
  void correct(at::Tensor& x, int64_t t);

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
  std::vector<double> alpha_bar_, alpha_;  ///< original tables
  std::vector<int64_t> kept_;
  at::Tensor alpha_bar64_;
  const ProgressFn& progress_;
  const StepFn& on_step_;
};

/// A 1-D tensor as float64 values on the host.
std::vector<double> to_double_vector(const at::Tensor& t);

/// Per-image Euclidean norm of x [B, ...] → [B, 1, ..., 1]. On CPU computed image by image
/// in float64, so it does not depend on the batch (bitwise batch invariance).
at::Tensor per_image_norm(const at::Tensor& x);

/// One predictor step of a sampler: from x at kept index k (original timestep t, estimate e)
/// to x at kept index k − 1 (original timestep t_prev), before the corrector. Called for
/// k = K−1 … 1 in that order; a stepper may keep state between calls (multistep history).
using Stepper = std::function<at::Tensor(int64_t k, int64_t t, int64_t t_prev, const SamplerRun::Estimate& e,
                                         const at::Tensor& x)>;

/// Makes a fresh Stepper for a run (the registry, sampler.cpp); called again after every
/// RePaint jump, since a multistep history belongs to the trajectory it was built on.
using StepperFactory = std::function<Stepper()>;

/// The kept-step indices visited after `start` (x at kept[start]), down to −1 (the final
/// x̂₀), with RePaint's jumps back up (Steering::jump_length, resample).
std::vector<int64_t> visit_path(int64_t start, int64_t jump_length, int64_t resample);

/// The one sampling loop (k-diffusion style), from x at kept[start]: per kept step, estimate
/// at t, step to t_prev (the last step returns x̂₀), run the corrector, then the steering hook,
/// report; RePaint's up-jumps noise x forward instead. Returns the final sample, or x̂₀ when
/// progress stops it early.
at::Tensor run_predictor(SamplerRun& run, const std::vector<int64_t>& kept, at::Tensor x, int64_t start,
                         const StepperFactory& make_stepper, const Steering& steering);

// The predictors: each makes its Stepper for a run (sampler.cpp maps SamplerKind to them).
Stepper ancestral_stepper(SamplerRun& run, const std::vector<int64_t>& kept);
Stepper ddim_stepper(SamplerRun& run, const std::vector<int64_t>& kept);
Stepper dpmpp_2m_stepper(SamplerRun& run, const std::vector<int64_t>& kept);

}  // namespace ddpm::detail
