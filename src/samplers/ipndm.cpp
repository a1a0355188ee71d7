// iPNDM (Zhang & Chen 2023, "Fast Sampling of Diffusion Models with Exponential Integrator",
// the improved pseudo numerical method; zju-pi/diff-sampler's sample_ipndm): Adams–Bashforth on
// the probability-flow ODE dx̃/dσ̃ = ε̂ in σ̃ = σ/α (x̃ = x/α), with the fixed-step coefficients
// and a lower-order warm start:
//   order 1: ε̂0   2: (3ε̂0 − ε̂1)/2   3: (23ε̂0 − 16ε̂1 + 5ε̂2)/12   4: (55ε̂0 − 59ε̂1 + 37ε̂2 − 9ε̂3)/24
//   x̃' = x̃ + (σ̃' − σ̃) · that,  x' = α' x̃'.
// SamplerConfig::order caps the order (0: 4). The last step gives x̂₀ (the loop's). With the
// corrector on, first order.
#include <cmath>
#include <deque>

#include "samplers/internal.hpp"

namespace ddpm::detail {

Stepper ipndm_stepper(SamplerRun& run) {
  auto history = std::make_shared<std::deque<at::Tensor>>();  // past ε̂, newest first
  const int64_t max_order = run.config().order > 0 ? run.config().order : 4;
  Stepper stepper;
  stepper.step = [&run, history, max_order](int64_t, double t, double t_prev, const SamplerRun::Estimate& e,
                                            const at::Tensor& x) {
    const auto& h = *history;
    const int64_t order = std::min<int64_t>(max_order, 1 + static_cast<int64_t>(h.size()));
    // d − ε̂0: the multistep part of the combination (0 at order 1)
    at::Tensor extra;
    switch (order) {
      case 1: break;
      case 2: extra = (e.eps - h[0]) / 2.0; break;
      case 3: extra = (e.eps * 11.0 - h[0] * 16.0 + h[1] * 5.0) / 12.0; break;
      default: extra = (e.eps * 31.0 - h[0] * 59.0 + h[1] * 37.0 - h[2] * 9.0) / 24.0; break;
    }
    // x' = α'(x̃ + (σ̃' − σ̃) d) = √ᾱ' x̂₀ + √(1−ᾱ') ε̂0 + α'(σ̃' − σ̃)(d − ε̂0): the first-order part
    // as DDIM's update, never forming x̃ = x/α (float32 loses its digits at σ̃ ≈ 2·10⁴).
    const double ab_prev = run.alpha_bar(t_prev);
    at::Tensor out = e.x0 * std::sqrt(ab_prev) + e.eps * std::sqrt(1.0 - ab_prev);
    if (extra.defined()) out = out + extra * (std::sqrt(ab_prev) * (run.sigma(t_prev) - run.sigma(t)));
    if (run.config().corrector) {
      history->clear();
    } else {
      history->push_front(e.eps);
      if (static_cast<int64_t>(history->size()) > max_order - 1) history->pop_back();
    }
    return out;
  };
  return stepper;
}

}  // namespace ddpm::detail
