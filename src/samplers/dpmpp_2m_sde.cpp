// DPM-Solver++(2M) SDE (Lu et al. 2022, "DPM-Solver++" §4, the SDE variant; k-diffusion's
// sample_dpmpp_2m_sde with η = 1 and diffusers' "sde-dpmsolver++", midpoint). In λ = log(α/σ),
// h = λ_t − λ_s > 0, data predictions D_s (now) and D_prev (the step before, r = h_prev/h):
//   x_t = (σ_t/σ_s) e^{−h} x_s + α_t (1 − e^{−2h}) D_s
//         + ½ α_t (1 − e^{−2h}) (D_s − D_prev)/r          (second order, from the second step)
//         + σ_t √(1 − e^{−2h}) z.
// One z per step (none at the last step, which gives x̂₀). With the corrector on, first order.
#include <cmath>

#include "samplers/internal.hpp"

namespace ddpm::detail {

Stepper dpmpp_2m_sde_stepper(SamplerRun& run) {
  auto history = std::make_shared<DataHistory>();
  Stepper stepper;
  stepper.step = [&run, history](int64_t, double s, double t, const SamplerRun::Estimate& e, const at::Tensor& x) {
    const double ab_s = run.alpha_bar(s), ab_t = run.alpha_bar(t);
    const double h = half_logsnr(ab_t) - half_logsnr(ab_s);
    const double alpha_t = std::sqrt(ab_t), sigma_t = std::sqrt(1.0 - ab_t);
    const double one_minus_e2h = -std::expm1(-2.0 * h);  // 1 − e^{−2h}
    at::Tensor out = x * (sigma_t / std::sqrt(1.0 - ab_s) * std::exp(-h)) + e.x0 * (alpha_t * one_minus_e2h);
    if (history->d_prev.defined()) {
      const double r = history->h_prev / h;
      out = out + (e.x0 - history->d_prev) * (0.5 * alpha_t * one_minus_e2h / r);
    }
    history->keep(run, e.x0, h);
    return out + run.noise() * (sigma_t * std::sqrt(one_minus_e2h));
  };
  return stepper;
}

}  // namespace ddpm::detail
