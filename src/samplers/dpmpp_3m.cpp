// DPM-Solver++(3M) (Lu et al. 2022, "DPM-Solver++", the third-order multistep of §3 / Appendix;
// diffusers' DPMSolverMultistepScheduler with solver_order 3). In λ = log(α/σ), from s0 to t,
// h = λ_t − λ_s0, with the data predictions m0, m1, m2 at s0, s1, s2 (newest first):
//   r0 = (λ_s0 − λ_s1)/h, r1 = (λ_s1 − λ_s2)/h,
//   D1_0 = (m0 − m1)/r0, D1_1 = (m1 − m2)/r1,
//   D1 = D1_0 + r0/(r0 + r1) (D1_0 − D1_1),  D2 = (D1_0 − D1_1)/(r0 + r1),
//   x_t = (σ_t/σ_s0) x − α_t (e^{−h} − 1) m0 + α_t ((e^{−h} − 1)/h + 1) D1
//         − α_t ((e^{−h} − 1 + h)/h² − ½) D2.
// Orders as diffusers (lower_order_final): 1 at the first step, 2 at the second, 3 after; 2 at the
// second-to-last step when the run has fewer than 15 steps; the last step (to σ = 0) is first
// order, i.e. x̂₀ (the loop's). Lower orders are DPM-Solver++(2M)'s updates. With the corrector
// on, every step is first order (the history leaves the trajectory, as in dpm.cpp).
#include <cmath>
#include <deque>

#include "samplers/internal.hpp"

namespace ddpm::detail {

Stepper dpmpp_3m_stepper(SamplerRun& run, const std::vector<double>& kept) {
  struct Point {
    at::Tensor x0;
    double lambda;
  };
  auto history = std::make_shared<std::deque<Point>>();  // newest first, at most 2
  const auto K = static_cast<int64_t>(kept.size());
  Stepper stepper;
  stepper.step = [&run, history, K](int64_t k, double s, double t, const SamplerRun::Estimate& e, const at::Tensor& x) {
    const double ab_s = run.alpha_bar(s), ab_t = run.alpha_bar(t);
    const double lambda_s = half_logsnr(ab_s), lambda_t = half_logsnr(ab_t);
    const double h = lambda_t - lambda_s;
    const double alpha_t = std::sqrt(ab_t);
    const double em1 = std::expm1(-h);  // e^{−h} − 1
    int64_t order = 1 + static_cast<int64_t>(history->size());
    if (order > 3) order = 3;
    if (k == 1 && K < 15 && order > 2) order = 2;  // lower_order_second
    at::Tensor out = x * std::sqrt((1.0 - ab_t) / (1.0 - ab_s)) - e.x0 * (alpha_t * em1);
    if (order == 2) {
      const Point& p1 = (*history)[0];
      const double r0 = (lambda_s - p1.lambda) / h;
      out = out - (e.x0 - p1.x0) * (0.5 * alpha_t * em1 / r0);  // −½ α_t (e^{−h} − 1) D1
    } else if (order == 3) {
      const Point &p1 = (*history)[0], &p2 = (*history)[1];
      const double r0 = (lambda_s - p1.lambda) / h, r1 = (p1.lambda - p2.lambda) / h;
      const at::Tensor d1_0 = (e.x0 - p1.x0) / r0, d1_1 = (p1.x0 - p2.x0) / r1;
      const at::Tensor d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1));
      const at::Tensor d2 = (d1_0 - d1_1) / (r0 + r1);
      out = out + d1 * (alpha_t * (em1 / h + 1.0)) - d2 * (alpha_t * ((em1 + h) / (h * h) - 0.5));
    }
    if (run.config().corrector) {
      history->clear();
    } else {
      history->push_front({e.x0, lambda_s});
      if (history->size() > 2) history->pop_back();
    }
    return out;
  };
  return stepper;
}

}  // namespace ddpm::detail
