// Ancestral sampling (Ho et al. 2020, Algorithm 2) over the kept timesteps. With all T
// steps kept this is plain DDPM; with a subset it is the respaced process of Nichol &
// Dhariwal 2021 §4: β'_k = 1 − ᾱ[kept_k]/ᾱ[kept_{k−1}], and the denoiser still sees the
// original timesteps kept_k (fractional ones with karras / logsnr spacing: ᾱ from SigmaTable).
#include <cmath>

#include "samplers/internal.hpp"

namespace ddpm::detail {

Stepper ancestral_stepper(SamplerRun& run, const std::vector<double>& kept) {
  // β'_k = 1 − ᾱ[kept_k] / ᾱ[kept_{k−1}], ᾱ[kept_{−1}] = 1 (respaced_betas, for any t)
  auto betas = std::make_shared<std::vector<double>>(kept.size());
  double prev = 1.0;
  for (size_t k = 0; k < kept.size(); ++k) {
    const double a = run.alpha_bar(kept[k]);
    (*betas)[k] = 1.0 - a / prev;
    prev = a;
  }
  const bool fixed_large = run.config().variance == Variance::FixedLarge;
  Stepper s;
  s.step = [&run, betas, fixed_large](int64_t k, double t, double t_prev, const SamplerRun::Estimate& e,
                                      const at::Tensor& x) {
    const double ab = run.alpha_bar(t), ab_prev = run.alpha_bar(t_prev);
    const double beta = (*betas)[static_cast<size_t>(k)];
    // Posterior mean through x̂₀ (DDPM eq. 7), which equals Algorithm 2's
    // 1/√α (x − β/√(1−ᾱ) ε̂) and lets a clipped x̂₀ act.
    const PosteriorStep p = posterior_step(beta, ab_prev, 1.0 - ab, 1.0 - ab_prev);
    // σ² = β̃ (fixed small, DDPM eq. 7) or β (fixed large); both "fixed" choices of §3.2.
    const double variance = fixed_large ? beta : p.variance;
    return e.x0 * p.coef_x0 + x * p.coef_xt + run.noise() * std::sqrt(variance);
  };
  return s;
}

}  // namespace ddpm::detail
