// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): multistep, data
// prediction, in λ = log(α/σ) = ½ log SNR, with α = √ᾱ, σ = √(1−ᾱ). From s to t (h = λ_t − λ_s):
//   first order:  x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) D_s
//   second order: D = (1 + 1/(2r)) D_s − 1/(2r) D_prev, r = h_prev / h, same update with D.
// The first step is first order (no history). Like diffusers' DPMSolverMultistepScheduler
// (final_sigmas_type "zero", lower_order_final), the last step goes to σ = 0 in first
// order, which gives x̂₀ at the smallest kept timestep. With the corrector on, every step
// is first order (= DDIM η = 0): the history no longer lies on one trajectory.
#include <cmath>
#include <limits>

#include "samplers/internal.hpp"

namespace ddpm::detail {
namespace {

// ½ log(ᾱ / (1 − ᾱ)); −∞ at ᾱ = 0 (zero terminal SNR), which the update tolerates (e^{−∞} = 0).
double half_logsnr(double ab) {
  if (ab <= 0.0) return -std::numeric_limits<double>::infinity();
  return 0.5 * (std::log(ab) - std::log1p(-ab));
}

}  // namespace

at::Tensor sample_dpmpp_2m(SamplerRun& run, const std::vector<int64_t>& kept, at::Tensor x) {
  const int64_t K = static_cast<int64_t>(kept.size());
  at::Tensor d_prev;
  double h_prev = 0.0;
  for (int64_t k = K - 1; k >= 0; --k) {
    const int64_t s = kept[static_cast<size_t>(k)];
    const auto e = run.estimate(x, s);
    if (k == 0) {
      x = e.x0;
    } else {
      const int64_t t = kept[static_cast<size_t>(k - 1)];
      const double ab_s = run.alpha_bar(s), ab_t = run.alpha_bar(t);
      const double h = half_logsnr(ab_t) - half_logsnr(ab_s);
      const double sigma_ratio = std::sqrt((1.0 - ab_t) / (1.0 - ab_s));
      const double coef_d = -std::sqrt(ab_t) * std::expm1(-h);  // −α_t (e^{−h} − 1)
      at::Tensor d = e.x0;
      if (d_prev.defined()) {
        const double r = h_prev / h;
        d = e.x0 * (1.0 + 0.5 / r) - d_prev * (0.5 / r);
      }
      x = x * sigma_ratio + d * coef_d;
      d_prev = e.x0;
      h_prev = h;
      if (run.config().corrector) {
        run.correct(x, t);
        // The Langevin moves leave the ODE trajectory that D_prev belongs to; extrapolating
        // through it would inflate the noise, so the next step restarts in first order.
        d_prev = at::Tensor();
      }
    }
    if (!run.report(K - k, K, x)) return e.x0;
  }
  return x;
}

}  // namespace ddpm::detail
