// Annealed Langevin corrector (Song et al. 2021, "Score-Based Generative Modeling through
// SDEs", Algorithm 5, VP SDE): with the score s = −ε̂/√(1−ᾱ_t) and z ~ N(0, I),
//   ε = 2 α_t (r ‖z‖ / ‖s‖)²,   x ← x + ε s + √(2ε) z,
// with α_t that of the process being sampled (1 − β' of the respaced one, not of the
// T-step schedule: Algorithm 5 takes α_i of the discretisation it runs on),
// i.e. a Langevin step x ← x + (δ/2) s + √δ z with δ = 2ε, whose signal-to-noise ratio
// ‖ε s‖ / ‖√(2ε) z‖ is r √α_t. Norms are per image (the reference code averages them
// over the batch, which would tie an image to its batch).
#include <cmath>

#include "samplers/internal.hpp"

namespace ddpm::detail {

void SamplerRun::correct(at::Tensor& x, double t) {
  if (!config_.corrector) return;
  const double a = alpha(t);
  const double r = config_.corrector_snr;
  for (int64_t j = 0; j < config_.corrector_steps; ++j) {
    // ε̂ as the network gives it: clipping x̂₀ would bias the score.
    const at::Tensor eps = estimate(x, t, /*process=*/false).eps;
    const at::Tensor score = eps * (-1.0 / std::sqrt(1.0 - alpha_bar(t)));
    const at::Tensor z = noise();
    const at::Tensor ratio = per_image_norm(z) / per_image_norm(score).clamp_min(1e-20);
    const at::Tensor step = (ratio * r).square() * (2.0 * a);
    x = x + step * score + (step * 2.0).sqrt() * z;
  }
}

}  // namespace ddpm::detail
