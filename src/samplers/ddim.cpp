// DDIM (Song, Meng & Ermon 2021, eq. 12) over the kept timesteps τ:
//   x_{τ−} = √ᾱ_{τ−} x̂₀ + √(1 − ᾱ_{τ−} − σ²) ε̂ + σ z,
//   σ = η √((1 − ᾱ_{τ−})/(1 − ᾱ_τ)) √(1 − ᾱ_τ/ᾱ_{τ−})   (eq. 16),
// with ᾱ = 1 after the last kept step (the output is x̂₀ there). With η = 0 this is also
// Karras et al.'s Euler step in σ̃ = σ/α: x̃' = x̂₀ + (σ̃'/σ̃)(x̃ − x̂₀), i.e. x' = √ᾱ' x̂₀ + √(1−ᾱ') ε̂,
// so `euler` is this stepper with η = 0 (sampler.cpp).
#include <algorithm>
#include <cmath>

#include "samplers/internal.hpp"

namespace ddpm::detail {

Stepper ddim_stepper(SamplerRun& run, double eta) {
  Stepper s;
  s.step = [&run, eta](int64_t, double t, double t_prev, const SamplerRun::Estimate& e, const at::Tensor&) {
    const double ab = run.alpha_bar(t), ab_prev = run.alpha_bar(t_prev);
    const double sigma = eta * std::sqrt((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev));
    const double direction = std::sqrt(std::max(0.0, 1.0 - ab_prev - sigma * sigma));
    at::Tensor x = e.x0 * std::sqrt(ab_prev) + e.eps * direction;
    return eta > 0.0 ? x + run.noise() * sigma : x;
  };
  return s;
}

}  // namespace ddpm::detail
