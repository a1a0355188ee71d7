// DDIM (Song, Meng & Ermon 2021, eq. 12) over the kept timesteps τ:
//   x_{τ−} = √ᾱ_{τ−} x̂₀ + √(1 − ᾱ_{τ−} − σ²) ε̂ + σ z,
//   σ = η √((1 − ᾱ_{τ−})/(1 − ᾱ_τ)) √(1 − ᾱ_τ/ᾱ_{τ−})   (eq. 16),
// with ᾱ = 1 after the last kept step (the output is x̂₀ there).
#include <algorithm>
#include <cmath>

#include "samplers/internal.hpp"

namespace ddpm::detail {

at::Tensor sample_ddim(SamplerRun& run, const std::vector<int64_t>& kept, at::Tensor x) {
  const int64_t K = static_cast<int64_t>(kept.size());
  const double eta = run.config().eta;
  for (int64_t k = K - 1; k >= 0; --k) {
    const int64_t t = kept[static_cast<size_t>(k)];
    const auto e = run.estimate(x, t);
    if (k == 0) {
      x = e.x0;
    } else {
      const int64_t t_prev = kept[static_cast<size_t>(k - 1)];
      const double ab = run.alpha_bar(t), ab_prev = run.alpha_bar(t_prev);
      const double sigma = eta * std::sqrt((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev));
      const double direction = std::sqrt(std::max(0.0, 1.0 - ab_prev - sigma * sigma));
      x = e.x0 * std::sqrt(ab_prev) + e.eps * direction;
      if (eta > 0.0) x = x + run.noise() * sigma;
      run.correct(x, t_prev);
    }
    if (!run.report(K - k, K, x)) return e.x0;
  }
  return x;
}

}  // namespace ddpm::detail
