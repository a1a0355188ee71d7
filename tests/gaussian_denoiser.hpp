#pragma once
// The exact denoiser of Gaussian data, for the sampler tests: for x₀ ~ N(μ, s²) per pixel,
// x_t = √ᾱ x₀ + √(1−ᾱ) ε is Gaussian too, and the optimal predictors are
//   ε*(x_t) = √(1−ᾱ) (x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ),
//   x₀*(x_t) = E[x₀ | x_t] = μ + √ᾱ s² (x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ),
//   v* = √ᾱ ε* − √(1−ᾱ) x₀*.
// Channel c holds N(mu[c], sd[c]²); s = 0 is a point mass.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
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

  // Fractional timesteps (karras / logsnr spacing, Heun's churn): t is float64 and ᾱ(t) comes
  // from log σ (σ = √((1−ᾱ)/ᾱ)) interpolated linearly between the neighbouring table entries, as
  // k-diffusion's DiscreteSchedule and diffusers' _sigma_to_t (and shared/reference's make_solvers.py).
  std::vector<double>* fractional_timesteps = nullptr;

  at::Tensor alpha_bar_of(const at::Tensor& t) const {
    if (t.scalar_type() == at::kLong) return alpha_bar64.index_select(0, t.cpu()).reshape({-1, 1, 1, 1});
    const at::Tensor tc = t.to(at::kCPU, at::kDouble).contiguous();
    const at::Tensor table = alpha_bar64.to(at::kCPU).contiguous();
    const double* ab = table.data_ptr<double>();
    const int64_t T = table.numel();
    std::vector<double> out;
    for (int64_t i = 0; i < tc.numel(); ++i) {
      const double ti = tc.data_ptr<double>()[i];
      EXPECT_TRUE(ti >= 0.0 && ti <= double(T - 1)) << "timestep " << ti;
      const auto lo = static_cast<int64_t>(std::floor(ti));
      const int64_t hi = std::min(lo + 1, T - 1);
      const double w = ti - double(lo);
      auto log_sigma = [&](int64_t k) { return 0.5 * std::log((1.0 - ab[k]) / ab[k]); };
      const double s = std::exp((1.0 - w) * log_sigma(lo) + w * log_sigma(hi));
      out.push_back(1.0 / (1.0 + s * s));
    }
    return at::tensor(out, at::kDouble).reshape({-1, 1, 1, 1});
  }

  at::Tensor operator()(const at::Tensor& x, const at::Tensor& t) const {
    EXPECT_TRUE(t.scalar_type() == at::kLong || t.scalar_type() == at::kDouble) << t.scalar_type();
    EXPECT_EQ(t.dim(), 1);
    EXPECT_EQ(t.size(0), x.size(0));
    const double tf = t[0].item<double>();
    const auto t0 = static_cast<int64_t>(tf);
    EXPECT_TRUE(at::equal(t, at::full_like(t, t[0].item()))) << "one timestep per call";
    if (t.scalar_type() == at::kDouble) EXPECT_NE(tf, std::floor(tf)) << "integer timesteps come as int64";
    if (timesteps) timesteps->push_back(t0);
    if (fractional_timesteps) fractional_timesteps->push_back(tf);
    if (last_x) *last_x = x.clone();
    if (last_t) *last_t = t0;
    const at::Tensor ab = alpha_bar_of(t);
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
