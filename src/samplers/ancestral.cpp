// Ancestral sampling (Ho et al. 2020, Algorithm 2) over the kept timesteps. With all T
// steps kept this is plain DDPM; with a subset it is the respaced process of Nichol &
// Dhariwal 2021 §4: β'_k = 1 − ᾱ[kept_k]/ᾱ[kept_{k−1}], and the denoiser still sees the
// original indices kept_k.
#include <cmath>

#include "samplers/internal.hpp"

namespace ddpm::detail {

at::Tensor sample_ancestral(SamplerRun& run, const std::vector<int64_t>& kept, at::Tensor x) {
  const int64_t K = static_cast<int64_t>(kept.size());
  const std::vector<double> betas = to_double_vector(respaced_betas(run.alpha_bar64(), kept));
  const bool fixed_large = run.config().variance == Variance::FixedLarge;
  for (int64_t k = K - 1; k >= 0; --k) {
    const int64_t t = kept[static_cast<size_t>(k)];
    const double ab = run.alpha_bar(t);
    const double ab_prev = k > 0 ? run.alpha_bar(kept[static_cast<size_t>(k - 1)]) : 1.0;
    const double beta = betas[static_cast<size_t>(k)];
    const auto e = run.estimate(x, t);
    if (k == 0) {
      x = e.x0;  // ᾱ_prev = 1: the posterior mean is x̂₀ and there is no noise
    } else {
      // Posterior mean through x̂₀ (DDPM eq. 7), which equals Algorithm 2's
      // 1/√α (x − β/√(1−ᾱ) ε̂) and lets a clipped x̂₀ act.
      const double coef_x0 = beta * std::sqrt(ab_prev) / (1.0 - ab);
      const double coef_xt = (1.0 - ab_prev) * std::sqrt(1.0 - beta) / (1.0 - ab);
      x = e.x0 * coef_x0 + x * coef_xt;
      // σ² = β̃ (fixed small, DDPM eq. 7) or β (fixed large); both "fixed" choices of §3.2.
      const double variance = fixed_large ? beta : beta * (1.0 - ab_prev) / (1.0 - ab);
      x = x + run.noise() * std::sqrt(variance);
      run.correct(x, kept[static_cast<size_t>(k - 1)]);
    }
    if (!run.report(K - k, K, x)) return e.x0;
  }
  return x;
}

}  // namespace ddpm::detail
