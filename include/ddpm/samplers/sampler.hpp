#pragma once
// Samplers turn a denoiser into images. They know the schedule, never the network:
// the network is reached only through the Denoiser callback (stable-diffusion.cpp style).
//
//   ddpm         ancestral sampling, Ho et al. 2020 Algorithm 2; with steps < T the respaced
//                process of Nichol & Dhariwal 2021 (β recomputed from ᾱ of consecutive kept steps)
//   ddim         Song, Meng & Ermon 2021, eq. 12, with η
//   dpm++2m      DPM-Solver++(2M), Lu et al. 2022, data prediction, multistep in log SNR
//   dpm++3m      DPM-Solver++(3M), the third-order multistep of the same paper (diffusers' order 3)
//   dpm++2m-sde  DPM-Solver++(2M) SDE (Lu et al. 2022 §4 / k-diffusion's midpoint variant)
//   unipc        UniPC (Zhao et al. 2023), B(h) = e^h − 1 ("bh2"), UniC corrector, order 1–3
//   heun         Karras et al. 2022 Algorithm 2 (S_churn = 0: Algorithm 1), 2 calls a step
//   euler        Karras et al. 2022's Euler step in σ (= DDIM η = 0 for an exact x̂₀)
//   euler-a      Euler ancestral (k-diffusion's sample_euler_ancestral)
//   ipndm        improved PNDM (Zhang & Chen 2023), Adams–Bashforth on ε̂ in σ, order up to 4
// Every sampler may run an annealed Langevin corrector after each predictor step
// (Song et al. 2021, "Score-Based Generative Modeling through SDEs", Algorithm 5).
// Steps are placed by SamplerConfig::spacing; with karras / logsnr the network is evaluated at
// fractional timesteps (SigmaTable: log σ interpolated between table entries).
#include <ATen/Tensor.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ddpm/math/diffusion.hpp"
#include "ddpm/math/schedule.hpp"

namespace ddpm {

/// (x_t [B,C,H,W], t [B] — timesteps of the original T-step schedule) → model output
/// ([B,C,H,W], interpreted according to SamplerConfig::prediction). t is int64 when the
/// sampler is on a table point and float64 when it asks for a noise level between two (karras /
/// logsnr spacing, Heun's churn): ᾱ(t) is then SigmaTable's interpolation.
using Denoiser = std::function<at::Tensor(const at::Tensor& x_t, const at::Tensor& t)>;

/// Called after each step (1-based step of total). Return false to stop early;
/// the sampler then returns the current predicted x₀.
using ProgressFn = std::function<bool(int64_t step, int64_t total)>;
/// Called after each step with the current x_t (for trajectories).
using StepFn = std::function<void(int64_t step, int64_t total, const at::Tensor& x)>;

/// The samplers' per-image N(0, I) draws (image k from its own stream), for steering hooks.
using NoiseFn = std::function<at::Tensor()>;
/// Called after every predictor step with the original timestep t that x now belongs to
/// (−1: the final sample, x̂₀; fractional with karras / logsnr spacing). Returns x_t itself or a replacement of the same shape (RePaint's
/// known region, ILVR's low frequencies); draws its noise from `noise` (the run's own streams).
using StepHook = std::function<at::Tensor(double t, const at::Tensor& x, const NoiseFn& noise)>;

/// How a run is steered; the default is plain sampling from x_T ~ N(0, I). steering.hpp builds
/// these for SDEdit, RePaint and ILVR.
struct Steering {
  /// SDEdit (Meng et al. 2022): [n, C, H, W] clean images to start from; used when strength < 1.
  at::Tensor init;
  /// SDEdit: start at the kept timestep t nearest strength·T (t + 1 steps of T), from
  /// x_t = √ᾱ_t init + √(1−ᾱ_t) z. 1: from pure noise, exactly as unconditional sampling
  /// (init unused); 0: the result is init itself, no step taken.
  double strength = 1.0;
  StepHook hook;  ///< after every predictor step (after the corrector)
  /// RePaint's time travel (Lugmayr et al. 2022, §4.2): whenever the kept-step index s is a
  /// multiple of jump_length, x is noised back up jump_length kept steps (q(x_{t'} | x_t)) and
  /// those steps are sampled again, resample − 1 times. 0 or resample 1: no jumps.
  int64_t jump_length = 0;
  /// RePaint: how many times each jump's steps are sampled (1: once, no jumps).
  int64_t resample = 1;
  /// [n, C, H, W] the x_T to start from (diffusers' `latents`), when strength = 1; undefined:
  /// drawn from the per-image streams (then the first draw of each image).
  at::Tensor x_T;
};

/// The sampling loop's stepper (`--sampler`; the list is in docs/sampling.md).
enum class SamplerKind { Ddpm, Ddim, DpmSolver2M, DpmSolver3M, DpmSolver2MSde, UniPC, Heun, Euler, EulerAncestral, IPndm };
/// "ddpm" | "ddim" | "dpm++2m" | "dpm++3m" | "dpm++2m-sde" | "unipc" | "heun" | "euler" | "euler-a" | "ipndm"
/// (k-diffusion's names are accepted too: dpmpp_2m, dpmpp_3m, dpmpp_2m_sde, euler_ancestral).
SamplerKind parse_sampler_kind(const std::string& text);
/// The sampler's name as the tools spell it (e.g. "ddim").
std::string to_string(SamplerKind kind);
/// The canonical names, in enum order.
const std::vector<std::string>& sampler_names();
/// Network evaluations of a run of `steps` steps (guidance's second pass not counted): Heun
/// takes two per step but the last, every other sampler one.
int64_t sampler_nfe(SamplerKind kind, int64_t steps);

/// Variance of the ancestral steps: β̃ (the posterior's) or β (Ho et al. 2020 §3.2).
enum class Variance { FixedSmall, FixedLarge };
Variance parse_variance(const std::string& text);  ///< "fixed_small" | "fixed_large" (or with '-')
/// "fixed_small" or "fixed_large".
std::string to_string(Variance variance);

/// How to sample: every field is a config key of the sampling group (ddpm-sample's options).
struct SamplerConfig {
  /// Which sampler (sampler).
  SamplerKind kind = SamplerKind::Ddpm;
  int64_t steps = 0;                   ///< 0 = all T steps (ddpm), 50 (ddim), 20 (the others)
  /// leading | trailing | linspace | karras | logsnr. Trailing (Lin et al. 2024, Table 2) starts
  /// every few-step run at the true t = T−1 (leading at 20 of 1000 steps starts at 950); with
  /// steps = T the first three give 0..T−1. karras and logsnr place σ from σ(T−1) to σ(0).
  Spacing spacing = Spacing::Trailing;
  double karras_rho = 7.0;             ///< ρ of the karras spacing (Karras et al. 2022 eq. 5)
  int64_t order = 0;                   ///< unipc: solver order 1–3 (0: 3); ipndm: 1–4 (0: 4)
  /// Heun's stochastic churn (Karras et al. 2022 Algorithm 2): γ = min(S_churn/N, √2 − 1) where
  /// σ ∈ [S_tmin, S_tmax], noise scaled by S_noise. S_churn = 0 is Algorithm 1 (deterministic).
  double s_churn = 0.0;
  double s_tmin = 0.0;   ///< heun: churn only where σ ≥ S_tmin
  double s_tmax = 1e30;  ///< heun: churn only where σ ≤ S_tmax
  double s_noise = 1.0;  ///< heun: scale of the churn's noise
  double eta = 0.0;                    ///< DDIM η in [0, 1] (0 = deterministic)
  /// ddpm: the variance of the ancestral steps (variance).
  Variance variance = Variance::FixedSmall;
  bool clip_x0 = false;                ///< clip x̂₀ to [−1, 1]
  bool dynamic_threshold = false;      ///< Saharia et al. 2022 (takes precedence over clip_x0)
  /// The quantile of |x̂₀| that dynamic thresholding clips to.
  double dynamic_threshold_percentile = 0.995;
  bool corrector = false;              ///< annealed Langevin corrector after each step
  /// Langevin steps per corrector call.
  int64_t corrector_steps = 1;
  double corrector_snr = 0.16;         ///< Song et al. 2021's r
  /// What the denoiser returns (ε, x₀ or v): the model's prediction type.
  Prediction prediction = Prediction::Epsilon;
  /// The seed of the per-image noise streams (image k: (seed, k)).
  uint64_t seed = 0;

  void validate(int64_t T) const;  ///< throws std::invalid_argument naming the key
  /// validate(T), and that the prediction gives x̂₀ at every visited timestep: ε cannot
  /// where ᾱ = 0 (zero terminal SNR). Throws std::invalid_argument naming the option.
  void validate(const NoiseSchedule& schedule) const;

  /// Number of predictor steps actually taken (resolves steps = 0 to the kind's default).
  int64_t resolved_steps(int64_t T) const;
  /// The integer timesteps visited, descending (leading / trailing / linspace only).
  std::vector<int64_t> timesteps(int64_t T) const;
  /// The timesteps of the original schedule the run visits, in the order visited (descending;
  /// fractional with karras / logsnr spacing). Heun also evaluates between them (its churn).
  std::vector<double> timesteps(const NoiseSchedule& schedule) const;
};

/// Draws `n` images of shape [channels, height, width]. Image k (0-based, offset by
/// `first_index`) takes all of its noise from a generator seeded by (seed, first_index + k),
/// so on CPU an image is bitwise the same whatever the batch it is drawn in (given a
/// batch-invariant denoiser). The result is float32 on the schedule's device.
///
/// Order of the noise draws of each image: x_T (SDEdit: the z of the start), then per predictor step the ancestral z
/// (ddpm and ddim with η > 0, not at the last step), then one z per corrector step.
at::Tensor sample(const NoiseSchedule& schedule, const Denoiser& denoiser, const SamplerConfig& config,
                  int64_t n, int64_t channels, int64_t height, int64_t width, int64_t first_index = 0,
                  const ProgressFn& progress = nullptr, const StepFn& on_step = nullptr,
                  const Steering& steering = {});

/// The per-image noise of the samplers: image k draws from its own xoshiro256++ generator
/// seeded through SplitMix64 from (seed, first_index + k); normals by Box–Muller in float64,
/// rounded to float32. Self-contained, so a seed gives the same images with any LibTorch.
class NoiseStream {
 public:
  /// The streams of images first_index .. first_index + n − 1, each image of `image_shape`.
  NoiseStream(uint64_t seed, int64_t first_index, int64_t n, std::vector<int64_t> image_shape);
  /// The next N(0, I) draw of every image: float32 CPU [n, image_shape...].
  at::Tensor next();
  /// The next U[0, 1) draw of every image (53 random bits): float64 CPU [n]. The trainer's
  /// per-image streams draw the timestep and the label-drop decision this way.
  at::Tensor uniform();

 private:
  std::vector<std::array<uint64_t, 4>> states_;
  std::vector<int64_t> image_shape_;
};

/// Dynamic thresholding (Saharia et al. 2022, Imagen §2.3): per image, s = the `percentile`
/// quantile of |x̂₀|, s ← max(s, 1), x̂₀ ← clamp(x̂₀, −s, s) / s.
at::Tensor dynamic_threshold(const at::Tensor& x0, double percentile);

}  // namespace ddpm
