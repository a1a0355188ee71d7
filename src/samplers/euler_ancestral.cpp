// Euler ancestral (k-diffusion's sample_euler_ancestral, η = 1; diffusers'
// EulerAncestralDiscreteScheduler), in σ̃ = σ/α (x̃ = x/α, the variance-exploding view of the same
// process). From σ̃ to σ̃': σ̃_up = min(σ̃', √(σ̃'² (σ̃² − σ̃'²)/σ̃²)), σ̃_down = √(σ̃'² − σ̃_up²),
//   x̃' = x̂₀ + (σ̃_down/σ̃)(x̃ − x̂₀) + σ̃_up z,   then x' = α' x̃'.
// One z per step (none at the last step, which gives x̂₀).
#include <algorithm>
#include <cmath>

#include "samplers/internal.hpp"

namespace ddpm::detail {

Stepper euler_ancestral_stepper(SamplerRun& run) {
  Stepper stepper;
  stepper.step = [&run](int64_t, double t, double t_prev, const SamplerRun::Estimate& e, const at::Tensor& x) {
    const double ab = run.alpha_bar(t), ab_prev = run.alpha_bar(t_prev);
    const double s = run.sigma(t), s_next = run.sigma(t_prev);  // σ̃ = √((1 − ᾱ)/ᾱ)
    const double s_up = std::min(s_next, std::sqrt(s_next * s_next * (s * s - s_next * s_next) / (s * s)));
    const double s_down = std::sqrt(std::max(0.0, s_next * s_next - s_up * s_up));
    const double a_prev = std::sqrt(ab_prev), r = s_down / s;
    // x' = √ᾱ' (x̂₀ + r (x/√ᾱ − x̂₀) + σ̃_up z), x/√ᾱ never formed (float32 at σ̃ ≈ 2·10⁴)
    return e.x0 * (a_prev * (1.0 - r)) + x * (a_prev * r / std::sqrt(ab)) + run.noise() * (a_prev * s_up);
  };
  return stepper;
}

}  // namespace ddpm::detail
