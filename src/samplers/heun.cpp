// Heun's second-order method (Karras et al. 2022, "Elucidating the Design Space of
// Diffusion-Based Generative Models", Algorithm 2; S_churn = 0 is Algorithm 1), in σ̃ = σ/α
// (x̃ = x/α, the variance-exploding view of the process; dx̃/dσ̃ = (x̃ − D(x̃; σ̃))/σ̃):
//   churn:  γ = min(S_churn/N, √2 − 1) where σ̃ ∈ [S_tmin, S_tmax], else 0; σ̂ = σ̃ (1 + γ),
//           x̂ = x̃ + √(σ̂² − σ̃²) S_noise z       (σ̂ capped at σ̃(T−1), the table's largest)
//   Euler:  d = (x̂ − D(x̂; σ̂))/σ̂,  x̃' = x̂ + (σ̃' − σ̂) d
//   Heun:   d' = (x̃' − D(x̃'; σ̃'))/σ̃',  x̃' = x̂ + (σ̃' − σ̂)(d + d')/2
// The last step (to σ̃ = 0) is Euler's, which gives D = x̂₀ (the loop's). Two network calls a
// step but the last: 2N − 1 in all. D is the processed x̂₀ (clipping applies to both calls).
// Computed in VP coordinates, in the equivalent form
//   x_E = (σ'/σ) x + (α' − α σ'/σ) D   (the Euler step = DDIM's),
//   x'  = x_E + α' (σ̂ − σ̃')/(2σ̃') (D(x_E) − D),
// which never forms x̃ = x/α: at σ̃ ≈ 2·10⁴ (cosine ᾱ at T−1) that loses float32's digits.
#include <algorithm>
#include <cmath>

#include "samplers/internal.hpp"

namespace ddpm::detail {

Stepper heun_stepper(SamplerRun& run, const std::vector<double>& kept) {
  const SamplerConfig& c = run.config();
  const double gamma_max = std::min(c.s_churn / static_cast<double>(kept.size()), std::sqrt(2.0) - 1.0);
  const double t_max = static_cast<double>(run.num_timesteps() - 1);
  Stepper stepper;
  if (c.s_churn > 0.0) {
    stepper.perturb = [&run, gamma_max, t_max](int64_t, double t, at::Tensor& x) {
      const SamplerConfig& c = run.config();
      const double s = run.sigma(t);
      if (!(s >= c.s_tmin && s <= c.s_tmax)) return t;
      const double s_hat = std::min(s * (1.0 + gamma_max), run.sigma(t_max));
      if (!(s_hat > s)) return t;
      const double t_hat = std::min(run.table().timestep(s_hat), t_max);
      // x̂ = x̃ + √(σ̂² − σ̃²) S_noise z, in VP coordinates with α̂ = √ᾱ(t̂)
      const double a = std::sqrt(run.alpha_bar(t)), a_hat = std::sqrt(run.alpha_bar(t_hat));
      x = x * (a_hat / a) + run.noise() * (a_hat * std::sqrt(s_hat * s_hat - s * s) * c.s_noise);
      return t_hat;
    };
  }
  stepper.step = [&run](int64_t, double t, double t_prev, const SamplerRun::Estimate& e, const at::Tensor& x) {
    const double a = std::sqrt(run.alpha_bar(t)), a_next = std::sqrt(run.alpha_bar(t_prev));
    const double s = run.sigma(t), s_next = run.sigma(t_prev);
    const double ratio = std::sqrt((1.0 - run.alpha_bar(t_prev)) / (1.0 - run.alpha_bar(t)));  // σ'/σ
    const at::Tensor x_euler = x * ratio + e.x0 * (a_next - a * ratio);
    const SamplerRun::Estimate e2 = run.estimate(x_euler, t_prev);
    return x_euler + (e2.x0 - e.x0) * (a_next * (s - s_next) / (2.0 * s_next));
  };
  return stepper;
}

}  // namespace ddpm::detail
