#pragma once
// The exact denoiser of Gaussian data, for the sampler tests: for x₀ ~ N(μ, s²) per pixel,
// x_t = √ᾱ x₀ + √(1−ᾱ) ε is Gaussian too, and the optimal predictors are
//   ε*(x_t) = √(1−ᾱ) (x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ),
//   x₀*(x_t) = E[x₀ | x_t] = μ + √ᾱ s² (x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ),
//   v* = √ᾱ ε* − √(1−ᾱ) x₀*.
// Channel c holds N(mu[c], sd[c]²); s = 0 is a point mass.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "ddpm/samplers/sampler.hpp"

namespace ddpm::test {

struct ExactDenoiser {
  at::Tensor alpha_bar64;  // [T] float64
  at::Tensor mu, sd;       // [1, C, 1, 1] float64
  ddpm::Prediction prediction;
  // Records of the calls (for the tests that look at what the sampler asked).
  std::vector<int64_t>* timesteps = nullptr;
  at::Tensor* last_x = nullptr;
  int64_t* last_t = nullptr;

  ExactDenoiser(const ddpm::NoiseSchedule& s, const std::vector<double>& mu_c, const std::vector<double>& sd_c,
                ddpm::Prediction p)
      : alpha_bar64(s.alpha_bar64.to(at::kDouble)), prediction(p) {
    const auto C = static_cast<int64_t>(mu_c.size());
    mu = at::tensor(mu_c, at::kDouble).reshape({1, C, 1, 1});
    sd = at::tensor(sd_c, at::kDouble).reshape({1, C, 1, 1});
  }

  at::Tensor operator()(const at::Tensor& x, const at::Tensor& t) const {
    EXPECT_EQ(t.scalar_type(), at::kLong);
    EXPECT_EQ(t.dim(), 1);
    EXPECT_EQ(t.size(0), x.size(0));
    const int64_t t0 = t[0].item<int64_t>();
    EXPECT_TRUE(at::equal(t, at::full_like(t, t0))) << "one timestep per call";
    if (timesteps) timesteps->push_back(t0);
    if (last_x) *last_x = x.clone();
    if (last_t) *last_t = t0;
    const at::Tensor ab = alpha_bar64.index_select(0, t.cpu()).reshape({-1, 1, 1, 1});
    const at::Tensor xd = x.to(at::kDouble);
    const at::Tensor centred = xd - ab.sqrt() * mu;
    const at::Tensor var = ab * sd * sd + (1.0 - ab);
    const at::Tensor eps = (1.0 - ab).sqrt() * centred / var;
    const at::Tensor x0 = mu + ab.sqrt() * sd * sd * centred / var;
    switch (prediction) {
      case ddpm::Prediction::Epsilon:
        return eps.to(at::kFloat);
      case ddpm::Prediction::X0:
        return x0.to(at::kFloat);
      case ddpm::Prediction::V:
        return (ab.sqrt() * eps - (1.0 - ab).sqrt() * x0).to(at::kFloat);
    }
    return {};
  }
};

inline ddpm::Denoiser as_denoiser(const ExactDenoiser& d) {
  return [d](const at::Tensor& x, const at::Tensor& t) { return d(x, t); };
}

}  // namespace ddpm::test
