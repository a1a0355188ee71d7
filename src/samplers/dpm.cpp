// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): multistep, data
// prediction, in λ = log(α/σ) = ½ log SNR, with α = √ᾱ, σ = √(1−ᾱ). From s to t (h = λ_t − λ_s):
//   first order:  x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) D_s
//   second order: D = (1 + 1/(2r)) D_s − 1/(2r) D_prev, r = h_prev / h, same update with D.
// The first step is first order (no history). Like diffusers' DPMSolverMultistepScheduler
// (final_sigmas_type "zero", lower_order_final), the last step goes to σ = 0 in first
// order, which gives x̂₀ at the smallest kept timestep. With the corrector on, every step
// is first order (= DDIM η = 0): the history no longer lies on one trajectory.
#include <cmath>

#include "samplers/internal.hpp"

namespace ddpm::detail {

Stepper dpmpp_2m_stepper(SamplerRun& run) {
  auto history = std::make_shared<DataHistory>();
  Stepper stepper;
  stepper.step = [&run, history](int64_t, double s, double t, const SamplerRun::Estimate& e, const at::Tensor& x) {
    const double ab_s = run.alpha_bar(s), ab_t = run.alpha_bar(t);
    const double h = half_logsnr(ab_t) - half_logsnr(ab_s);
    const double sigma_ratio = std::sqrt((1.0 - ab_t) / (1.0 - ab_s));
    const double coef_d = -std::sqrt(ab_t) * std::expm1(-h);  // −α_t (e^{−h} − 1)
    at::Tensor d = e.x0;
    if (history->d_prev.defined()) {
      const double r = history->h_prev / h;
      d = e.x0 * (1.0 + 0.5 / r) - history->d_prev * (0.5 / r);
    }
    history->keep(run, e.x0, h);
    return x * sigma_ratio + d * coef_d;
  };
  return stepper;
}

}  // namespace ddpm::detail
