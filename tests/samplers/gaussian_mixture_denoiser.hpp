#pragma once
// The exact denoiser of a class-labelled Gaussian mixture, for the guidance tests: class c
// has x₀ ~ N(mu[c], sd[c]²) on every pixel of the image (all pixels independent given c,
// classes equally likely). Given c the predictors are those of gaussian_denoiser.hpp; without a
// class (label −1) they are the mixture's: E[x₀ | x_t] = Σ_c p(c | x_t) E[x₀ | x_t, c], with
// p(c | x_t) ∝ N(x_t; √ᾱ mu_c, v_c I) over the whole image, v_c = ᾱ sd_c² + 1 − ᾱ, and
// ε* = (x_t − √ᾱ x̂₀)/√(1−ᾱ), v* = √ᾱ ε* − √(1−ᾱ) x̂₀.
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "ddpm/math/diffusion.hpp"
#include "ddpm/math/schedule.hpp"

namespace ddpm::test {

struct MixtureDenoiser {
  at::Tensor alpha_bar64;  // [T] float64
  std::vector<double> mu, sd;
  ddpm::Prediction prediction;

  MixtureDenoiser(const ddpm::NoiseSchedule& s, std::vector<double> mu_c, std::vector<double> sd_c, ddpm::Prediction p)
      : alpha_bar64(s.alpha_bar64.to(at::kCPU, at::kDouble)), mu(std::move(mu_c)), sd(std::move(sd_c)), prediction(p) {}

  at::Tensor operator()(const at::Tensor& x, const at::Tensor& t, const at::Tensor& labels) const {
    const int64_t B = x.size(0);
    const at::Tensor ab = alpha_bar64.index_select(0, t.cpu()).reshape({-1, 1, 1, 1});
    const at::Tensor xd = x.to(at::kDouble);
    const int64_t D = x[0].numel();
    std::vector<at::Tensor> x0_c, logp_c;
    for (size_t c = 0; c < mu.size(); ++c) {
      const at::Tensor centred = xd - ab.sqrt() * mu[c];
      const at::Tensor var = ab * sd[c] * sd[c] + (1.0 - ab);
      x0_c.push_back(mu[c] + ab.sqrt() * sd[c] * sd[c] * centred / var);
      logp_c.push_back(-(centred.square() / var).reshape({B, -1}).sum(1) * 0.5 -
                       var.reshape({B}).log() * (0.5 * static_cast<double>(D)));
    }
    const at::Tensor weights = at::stack(logp_c, 1).softmax(1);  // [B, classes]
    at::Tensor x0 = at::zeros_like(xd);
    for (size_t c = 0; c < mu.size(); ++c) x0 = x0 + weights.select(1, static_cast<int64_t>(c)).reshape({-1, 1, 1, 1}) * x0_c[c];
    // The conditional rows take their class's own predictor.
    const at::Tensor l = labels.cpu();
    for (int64_t b = 0; b < B; ++b) {
      const int64_t c = l[b].item<int64_t>();
      if (c >= 0) x0[b].copy_(x0_c[static_cast<size_t>(c)][b]);
    }
    const at::Tensor eps = (xd - ab.sqrt() * x0) / (1.0 - ab).sqrt();
    switch (prediction) {
      case ddpm::Prediction::Epsilon: return eps.to(at::kFloat);
      case ddpm::Prediction::X0: return x0.to(at::kFloat);
      case ddpm::Prediction::V: return (ab.sqrt() * eps - (1.0 - ab).sqrt() * x0).to(at::kFloat);
    }
    return {};
  }
};

}  // namespace ddpm::test
