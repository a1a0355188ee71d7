#pragma once
// Samplers turn a denoiser into images. They know the schedule, never the network:
// the network is reached only through the Denoiser callback (stable-diffusion.cpp style).
#include <ATen/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ddpm/diffusion.hpp"
#include "ddpm/schedule.hpp"

namespace ddpm {

/// (x_t [B,C,H,W], t int64 [B] — indices of the original T-step schedule) → model output
/// ([B,C,H,W], interpreted according to SamplerConfig::prediction).
using Denoiser = std::function<at::Tensor(const at::Tensor& x_t, const at::Tensor& t)>;

/// Called after each step (1-based step of total). Return false to stop early;
/// the sampler then returns the current predicted x₀.
using ProgressFn = std::function<bool(int64_t step, int64_t total)>;
/// Called after each step with the current x_t (for trajectories).
using StepFn = std::function<void(int64_t step, int64_t total, const at::Tensor& x)>;

struct SamplerConfig {
  std::string kind = "ddpm";           ///< ddpm | ddim | dpm++2m
  int64_t steps = 0;                   ///< 0 = all T steps (ddpm), 50 (ddim), 20 (dpm++2m)
  std::string spacing = "leading";     ///< leading | trailing | linspace
  double eta = 0.0;                    ///< DDIM η (0 = deterministic)
  std::string variance = "fixed_small";  ///< ddpm: fixed_small (β̃) | fixed_large (β)
  bool clip_x0 = false;                ///< clip x̂₀ to [−1, 1]
  bool dynamic_threshold = false;      ///< Saharia et al. 2022
  double dynamic_threshold_percentile = 0.995;
  bool corrector = false;              ///< annealed Langevin corrector after each step
  int64_t corrector_steps = 1;
  double corrector_snr = 0.16;         ///< Song et al. 2021's r
  Prediction prediction = Prediction::Epsilon;
  uint64_t seed = 0;

  void validate(int64_t T) const;  ///< throws std::invalid_argument naming the key
};

/// Draws `n` images of shape [channels, height, width]. Image k (0-based, offset by
/// `first_index`) takes all of its noise from a generator seeded by (seed, first_index + k),
/// so on CPU an image is bitwise the same whatever the batch it is drawn in.
at::Tensor sample(const NoiseSchedule& schedule, const Denoiser& denoiser, const SamplerConfig& config,
                  int64_t n, int64_t channels, int64_t height, int64_t width, int64_t first_index = 0,
                  const ProgressFn& progress = nullptr, const StepFn& on_step = nullptr);

}  // namespace ddpm
