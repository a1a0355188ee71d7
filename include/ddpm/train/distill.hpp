#pragma once
// Progressive distillation (Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of
// Diffusion Models", Algorithm 2) as a TrainingObjective of the Trainer: a student learns, in one
// DDIM (η = 0) step from t to t_lo, what its teacher does in two, t → t_mid → t_lo; N halves every
// round, the student of a round becoming the teacher of the next (its EMA weights).
//
// Time grid: a student of N steps samples with `ddim`, N steps, trailing spacing
// (timestep_subset(T, N, Trailing), the first step at the true t = T−1); its teacher's grid is
// that of 2N steps. round(T·2i/2N) = round(T·i/N), so every student point is a teacher point and
// all are integer timesteps of the T-step table: no fractional t, no interpolation of ᾱ.
//
// Class-conditional teachers are distilled GUIDED at a fixed w (and σ interval): the student
// keeps the label input and learns the guided teacher, so it needs one network pass per step;
// its config records w. A teacher that predicts ε gives a student that predicts v (ε cannot give
// x̂₀ where ᾱ ≈ 0, at the first step); x₀ and v teachers keep their parameterisation.
#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "ddpm/math/diffusion.hpp"
#include "ddpm/samplers/sampler.hpp"
#include "ddpm/samplers/steering.hpp"
#include "ddpm/train/objective.hpp"

namespace ddpm {

/// One student step per image: from t to t_lo (−1: the final x̂₀), through the teacher's t_mid.
struct DistillStep {
  at::Tensor t;      ///< int64 [B]: where the step starts
  at::Tensor t_mid;  ///< int64 [B]: the teacher's point between
  at::Tensor t_lo;   ///< int64 [B]: where it ends (−1: x̂₀)
};
/// For timesteps drawn uniformly on 0..T−1 (the trainer's ⌊u·T⌋): the student step
/// i = ⌊t·N/T⌋ + 1 of N (uniform on 1..N when N divides T), as the teacher's 2N-step grid gives it.
DistillStep distill_steps(const at::Tensor& drawn, int64_t T, int64_t student_steps);

/// ᾱ at timesteps t (int64 [B], −1 gives 1): float64 [B, 1, 1, 1] on `device`.
at::Tensor alpha_bar_or_one(const NoiseSchedule& s, const at::Tensor& t, c10::Device device);

/// The teacher's two DDIM (η = 0) steps from z at t (z_lo), and the x̂₀ with which one DDIM step
/// from z reaches z_lo (Algorithm 2): x̃ = (z_lo − (σ_lo/σ_t) z) / (α_lo − (σ_lo/σ_t) α_t),
/// α = √ᾱ, σ = √(1−ᾱ); at t_lo = −1 (ᾱ = 1) x̃ = z_lo. `teacher` outputs `p`; with `clip` its x̂₀
/// is clipped to [−1, 1] and ε̂ recomputed, as the samplers' clip-x0 does.
struct DistillTarget {
  at::Tensor x0;    ///< x̃, float [B, C, H, W]
  at::Tensor z_lo;  ///< the teacher's two steps
};
/// The target of one distillation step (see DistillTarget).
DistillTarget distillation_target(const Denoiser& teacher, Prediction p, bool clip, const NoiseSchedule& s,
                                  const at::Tensor& z, const DistillStep& step);

/// max(SNR, 1), SNR = ᾱ/(1−ᾱ): the "truncated SNR" weight of the x̂₀ loss (Salimans & Ho 2022 §4).
/// Within a factor 2 of the v-space loss (x̂₀ = α z − σ v gives ‖Δv‖² = (SNR + 1) ‖Δx̂₀‖²), and
/// unlike the ε loss (weight SNR) it does not vanish at ᾱ → 0, where the first step starts.
at::Tensor truncated_snr_weight(const at::Tensor& alpha_bar);

/// The student's config: the teacher's model, schedule, data (unless `options` names a data
/// source) and prediction (ε → v); the training options and the distillation keys of
/// `options`; steps = rounds × steps-per-round; guidance from the teacher's eval-guidance unless
/// given; the record and sampling defaults of step 0 (record_distillation). Throws BadInput
/// naming the option (final-steps not start-steps / 2^k, start-steps above T or above what a
/// distilled teacher was distilled for, guidance for an unconditional teacher, ...).
Config student_config(const Config& teacher, const Config& options);

/// Writes into `config` what the student is after `step` steps: distilled-rounds (rounds done),
/// distilled-steps (the target of the round under way; at a round's end, the steps that round's
/// student was distilled for, so a checkpoint saved there samples as it should) and the sampling
/// defaults of such a student (ddim, those steps, trailing, η = 0, no clipping, no corrector).
void record_distillation(Config& config, int64_t step);

/// A distilled checkpoint's config asked to sample with `asked` and guidance weight `guidance`:
/// "" when that is what it was distilled for, else a one-line warning. Fewer steps than it was
/// distilled for throw BadInput naming --steps. Not distilled: "".
std::string distilled_sampler_warning(const Config& config, const SamplerConfig& asked, double guidance);

/// Progressive distillation (Salimans & Ho 2022, Algorithm 2) as the trainer's objective: the
/// student learns in one DDIM step what the teacher does in two; N halves every round.
class DistillObjective : public TrainingObjective {
 public:
  /// `student`: from student_config; `teacher`: the teacher's network (its EMA weights), and its
  /// config; the teacher is copied onto `device`. A null `teacher` (a run about to be resumed):
  /// load_state() brings the teacher, its prediction and clipping.
  DistillObjective(const Config& student, const UNet& teacher, const Config& teacher_config, c10::Device device);
  /// Starts round ⌊step / steps-per-round⌋ (the teacher becomes the EMA weights) and records it.
  void at_step(int64_t step, const UNet& ema_model, Config& config) override;
  at::Tensor loss(const ObjectiveBatch& batch, const ModelForward& model) override;
  /// The round, the teacher's prediction, clipping and weights (a resumed run continues with the same teacher).
  std::map<std::string, at::Tensor> state() const override;
  void load_state(const std::function<at::Tensor(const std::string&)>& read) override;

  /// The round under way (0-based).
  int64_t round() const { return round_; }
  /// The DDIM steps the student is taught in this round.
  int64_t student_steps() const { return d_.start_steps >> (round_ + 1); }
  /// The (guided) teacher as a sampler's Denoiser for images of `labels` (undefined: unconditional).
  Denoiser teacher(const at::Tensor& labels) const;

 private:
  DistillConfig d_;
  Prediction student_prediction_, teacher_prediction_;
  bool clip_;
  Guidance guidance_;
  int64_t channels_;
  UNet teacher_{nullptr};
  NoiseSchedule schedule_;
  int64_t round_ = 0;
};

}  // namespace ddpm
