// Few-step samplers against closed forms, with the exact denoiser of Gaussian data
// (gaussian_denoiser.hpp). The truth never re-types a sampler's update rule:
//  - the probability-flow ODE between Gaussian marginals is the quantile map
//      x_t = √ᾱ_t μ + √v_t (x_T − √ᾱ_T μ)/√v_T,  v = ᾱ s² + 1 − ᾱ,
//    against which DDIM (η = 0) must converge in order 1 and DPM-Solver++(2M) in order 2;
//  - on a point mass (s = 0) that map is what every deterministic sampler gives, at any step count;
//  - the respaced ancestral sampler keeps the marginals of the respaced process where its
//    variance is the optimal one (Ho et al. 2020 §3.2: β for x₀ ~ N(0, I), β̃ for a point);
//  - the Langevin corrector's step size takes α of the process being sampled.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ddpm/runtime.hpp"
#include "ddpm/samplers/sampler.hpp"
#include "gaussian_denoiser.hpp"
#include "sampler_test_util.hpp"

namespace {

using ddpm::NoiseSchedule;
using ddpm::Prediction;
using ddpm::test::as_denoiser;
using ddpm::test::ExactDenoiser;

NoiseSchedule make(const std::string& kind, int64_t T = 1000, bool ztsnr = false) {
  return ddpm::test::make_schedule(kind, T, ztsnr);
}
using ddpm::test::loglog_slope;
using ddpm::test::name_of;
using ddpm::test::values;

// ------------------------------------------------------------ convergence order on the flow

// sigmoid-logsnr is linear in log SNR, so linspace steps are uniform in λ, and with T − 1 = 800
// the grids of 20, 40, 80, 160 intervals are nested. Both samplers end on x̂₀ = E[x₀ | x_{t₀}]
// at the smallest kept step t₀ = 0, so the reference is that map applied to the exact flow
// from t = 800 to t₀.
TEST(SamplerOrder, DdimIsFirstOrderAndDpmSolverSecondOrderOnTheFlow) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = make("sigmoid-logsnr", 801);
  const auto ab = values(schedule.alpha_bar64);
  const std::vector<double> mu = {0.0, 0.5, -0.3}, sd = {1.0, 0.5, 0.2};
  const std::vector<double> intervals = {20, 40, 80, 160};
  const int64_t n = 64;
  const double aT = ab[800], a0 = ab[0];
  for (const auto& [kind, order] : std::vector<std::pair<std::string, double>>{{"ddim", 1.0}, {"dpm++2m", 2.0}}) {
    for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
      std::vector<std::vector<double>> err(mu.size());
      for (double m : intervals) {
        ddpm::SamplerConfig config;
        config.kind = ddpm::parse_sampler_kind(kind);
        config.steps = static_cast<int64_t>(m) + 1;
        config.spacing = ddpm::parse_spacing("linspace");
        config.prediction = p;
        config.seed = 21;
        const auto kept = ddpm::timestep_subset(801, config.steps, ddpm::Spacing::Linspace);
        ASSERT_EQ(kept.front(), 0);
        ASSERT_EQ(kept.back(), 800);
        const at::Tensor got =
            ddpm::sample(schedule, as_denoiser(ExactDenoiser(schedule, mu, sd, p)), config, n, 3, 1, 1).to(at::kDouble);
        const at::Tensor xT = ddpm::NoiseStream(21, 0, n, {3, 1, 1}).next().to(at::kDouble);
        for (size_t c = 0; c < mu.size(); ++c) {
          const double s2 = sd[c] * sd[c], vT = aT * s2 + 1 - aT, v0 = a0 * s2 + 1 - a0;
          const at::Tensor x_t0 = std::sqrt(a0) * mu[c] + (xT.select(1, c) - std::sqrt(aT) * mu[c]) * std::sqrt(v0 / vT);
          const at::Tensor ref = mu[c] + (x_t0 - std::sqrt(a0) * mu[c]) * (std::sqrt(a0) * s2 / v0);
          err[c].push_back((got.select(1, c) - ref).abs().max().item<double>());
        }
      }
      for (size_t c = 0; c < mu.size(); ++c) {
        const double slope = loglog_slope(intervals, err[c]);
        std::string where = kind + " " + name_of(p) + " (mu " + std::to_string(mu[c]) + ", s " +
                            std::to_string(sd[c]) + "), errors";
        for (double e : err[c]) where += " " + std::to_string(e);
        EXPECT_NEAR(-slope, order, 0.15) << where;
        for (size_t i = 1; i < err[c].size(); ++i) EXPECT_LT(err[c][i], err[c][i - 1]) << where;
      }
    }
  }
}

// ------------------------------------------------------------ point mass: exact at any step count

// With x₀ = μ for sure, x̂₀ = μ whatever x_t, and DDIM η = 0 and DPM-Solver++ (first and
// second order alike, D being constant) follow the flow exactly: after each step x is
// √ᾱ_t μ + √(1−ᾱ_t) (x_T − √ᾱ_K μ)/√(1−ᾱ_K), K the first kept step; the output is μ.
TEST(SamplerExact, DeterministicSamplersFollowTheFlowOfAPointMass) {
  ddpm::set_threads(1);
  const std::vector<double> mu = {0.5, -0.3}, sd = {0.0, 0.0};
  const int64_t n = 64;
  for (bool ztsnr : {false, true}) {
    for (std::string schedule_kind : {"linear", "cosine"}) {
      const NoiseSchedule schedule = make(schedule_kind, 1000, ztsnr);
      const auto ab = values(schedule.alpha_bar64);
      for (std::string kind : {"ddim", "dpm++2m"}) {
        for (std::string spacing : {"leading", "trailing", "linspace"}) {
          for (int64_t steps : {50, 20}) {
            for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
              if (ztsnr && p == Prediction::Epsilon) continue;  // refused (ᾱ = 0 visited)
              const std::string what = schedule_kind + (ztsnr ? "+ztsnr " : " ") + kind + " " + spacing + " " +
                                       std::to_string(steps) + " " + name_of(p);
              ddpm::SamplerConfig config;
              config.kind = ddpm::parse_sampler_kind(kind);
              config.steps = steps;
              config.spacing = ddpm::parse_spacing(spacing);
              config.prediction = p;
              config.seed = 5;
              const auto kept = ddpm::timestep_subset(1000, steps, ddpm::parse_spacing(spacing));
              const at::Tensor xT = ddpm::NoiseStream(5, 0, n, {2, 1, 1}).next().to(at::kDouble);
              const double aK = ab[static_cast<size_t>(kept.back())];
              double worst = 0.0;
              const ddpm::StepFn on_step = [&](int64_t step, int64_t total, const at::Tensor& x) {
                if (step == total) return;
                const double a = ab[static_cast<size_t>(kept[static_cast<size_t>(total - 1 - step)])];
                for (int64_t c = 0; c < 2; ++c) {
                  const at::Tensor flow =
                      std::sqrt(a) * mu[c] + (xT.select(1, c) - std::sqrt(aK) * mu[c]) * std::sqrt((1 - a) / (1 - aK));
                  worst = std::max(worst, (x.to(at::kDouble).select(1, c) - flow).abs().max().item<double>());
                }
              };
              const at::Tensor got = ddpm::sample(schedule, as_denoiser(ExactDenoiser(schedule, mu, sd, p)), config, n,
                                                  2, 1, 1, 0, nullptr, on_step)
                                         .to(at::kDouble);
              EXPECT_LT(worst, 2e-4) << what;
              for (int64_t c = 0; c < 2; ++c)
                EXPECT_LT((got.select(1, c) - mu[c]).abs().max().item<double>(), 1e-4) << what;
            }
          }
        }
      }
    }
  }
}

// ------------------------------------------------------------ respaced ancestral: marginals

// The respaced process over kept = (k_0 < ... < k_{K−1}) has β'_j = 1 − ᾱ'_j/ᾱ'_{j−1}; its
// marginals are ᾱ'_j = Π_{i≤j} (1 − β'_i), computed here from respaced_betas alone.
std::vector<double> respaced_alpha_bar(const NoiseSchedule& s, const std::vector<int64_t>& kept) {
  std::vector<double> out;
  double prod = 1.0;
  for (double b : values(ddpm::respaced_betas(s.alpha_bar64, kept))) out.push_back(prod *= 1.0 - b);
  return out;
}

struct Moments {
  double mean, var;
};
Moments moments(const at::Tensor& x) {
  const at::Tensor d = x.to(at::kDouble).flatten();
  return {d.mean().item<double>(), d.var().item<double>()};
}

// (i) x₀ ~ N(0, 1), σ² = β' (fixed large): every intermediate marginal is N(0, 1), the output
//     x̂₀ = √ᾱ'_0 x has variance ᾱ'_0.
// (ii) x₀ = μ, σ² = β̃' (fixed small; DDIM η = 1 is the same process): x_j follows the respaced
//     process conditioned on its start x_K ~ N(0, 1) at K = k_{K−1}; with
//     ρ_j = Cov(x_j, x_K)/Var(x_K) = √(ᾱ'_K/ᾱ'_j)(1 − ᾱ'_j)/(1 − ᾱ'_K):
//       E x_j = √ᾱ'_j μ − ρ_j √ᾱ'_K μ,  Var x_j = (1 − ᾱ'_j) − ρ_j² (1 − ᾱ'_K) + ρ_j²;
//     the output is μ.
// Tolerances: 5 standard errors of each moment over N values.
TEST(SamplerExact, RespacedAncestralKeepsTheMarginalsOfTheRespacedProcess) {
  ddpm::set_threads(1);
  const int64_t n = 2048, pixels = 16;  // images of 1×4×4
  const double N = static_cast<double>(n * pixels);
  for (std::string schedule_kind : {"linear", "cosine"}) {
    const NoiseSchedule schedule = make(schedule_kind);
    for (std::string spacing : {"leading", "trailing", "linspace"}) {
      for (int64_t steps : {100, 50}) {
        const auto kept = ddpm::timestep_subset(1000, steps, ddpm::parse_spacing(spacing));
        const auto abr = respaced_alpha_bar(schedule, kept);
        const int64_t K = steps;
        const double aK = abr.back();
        for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
          for (std::string variant : {"large", "small", "ddim-eta1"}) {
            const bool wide = variant == "large";
            const std::string what = schedule_kind + " " + spacing + " " + std::to_string(steps) + " " + name_of(p) +
                                     " " + variant;
            ddpm::SamplerConfig config;
            config.kind = variant == "ddim-eta1" ? ddpm::SamplerKind::Ddim : ddpm::SamplerKind::Ddpm;
            config.eta = 1.0;
            config.variance = wide ? ddpm::Variance::FixedLarge : ddpm::Variance::FixedSmall;
            config.steps = steps;
            config.spacing = ddpm::parse_spacing(spacing);
            config.prediction = p;
            config.seed = 77;
            const double mu = wide ? 0.0 : 0.5;
            int failures = 0;
            const ddpm::StepFn on_step = [&](int64_t step, int64_t total, const at::Tensor& x) {
              if (step == total || failures > 3) return;
              const size_t j = static_cast<size_t>(total - 1 - step);  // x is now at kept[j]
              double mean = 0.0, var = 1.0;
              if (!wide) {
                const double a = abr[j], rho = std::sqrt(aK / a) * (1 - a) / (1 - aK);
                mean = std::sqrt(a) * mu - rho * std::sqrt(aK) * mu;
                var = (1 - a) - rho * rho * (1 - aK) + rho * rho;
              }
              const Moments m = moments(x);
              const bool ok = std::abs(m.mean - mean) < 5 * std::sqrt(var / N) &&
                              std::abs(m.var / var - 1) < 5 * std::sqrt(2 / N);
              if (!ok) {
                ++failures;
                ADD_FAILURE() << what << ", step " << step << " (t = " << kept[j] << "): mean " << m.mean
                              << " var " << m.var << ", closed form " << mean << ", " << var;
              }
            };
            const at::Tensor out = ddpm::sample(schedule, as_denoiser(ExactDenoiser(schedule, {mu}, {wide ? 1.0 : 0.0}, p)),
                                                config, n, 1, 4, 4, 0, nullptr, on_step);
            if (wide) {
              const Moments m = moments(out);
              EXPECT_NEAR(m.var / abr[0], 1.0, 5 * std::sqrt(2 / N)) << what;
            } else {
              EXPECT_LT((out.to(at::kDouble) - mu).abs().max().item<double>(), 1e-4) << what;
            }
            EXPECT_EQ(static_cast<int64_t>(abr.size()), K);
          }
        }
      }
    }
  }
}

// ------------------------------------------------------------ corrector step size

// Song et al. 2021 Algorithm 5: ε = 2 α_i (r ‖z‖/‖s‖)², x ← x + ε s + √(2ε) z, with α_i of the
// discretisation being sampled, α_i = 1 − β_i of its step i−1 → i. For 10 trailing steps of 1000
// the corrector at t = 899 must use α' = ᾱ_899/ᾱ_799 (≈ 0.18 on the linear schedule), not
// 1 − β_899 ≈ 0.98. The denoiser records
// the x it sees: the corrector's input, then (next call, same t) the corrector's output.
TEST(SamplerCorrector, UsesAlphaOfTheRespacedProcess) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = make("linear");
  const auto ab = values(schedule.alpha_bar64);
  const auto beta = values(schedule.beta64);
  const int64_t n = 4;
  for (std::string kind : {"ddim", "ddpm"}) {
    ExactDenoiser exact(schedule, {0.0}, {1.0}, Prediction::Epsilon);
    std::vector<at::Tensor> inputs;
    std::vector<int64_t> ts;
    const ddpm::Denoiser recording = [&](const at::Tensor& x, const at::Tensor& t) {
      inputs.push_back(x.to(at::kDouble));
      ts.push_back(t[0].item<int64_t>());
      return exact(x, t);
    };
    ddpm::SamplerConfig config;
    config.kind = ddpm::parse_sampler_kind(kind);
    config.steps = 10;
    config.spacing = ddpm::parse_spacing("trailing");
    config.corrector = true;
    config.seed = 3;
    ddpm::sample(schedule, recording, config, n, 1, 4, 4);
    ASSERT_GE(ts.size(), 3u);
    ASSERT_EQ(ts[0], 999);
    ASSERT_EQ(ts[1], 899);  // corrector at the step just reached
    ASSERT_EQ(ts[2], 899);  // then the predictor there
    // Noise order: x_T, then (ddpm only) the ancestral z, then the corrector's z.
    ddpm::NoiseStream noise(3, 0, n, {1, 4, 4});
    noise.next();
    if (kind == "ddpm") noise.next();
    const at::Tensor z = noise.next().to(at::kDouble);
    const at::Tensor x = inputs[1];
    const at::Tensor eps = exact(x.to(at::kFloat), at::full({n}, 899, at::kLong)).to(at::kDouble);
    const at::Tensor score = -eps / std::sqrt(1.0 - ab[899]);
    auto corrected = [&](double alpha) {
      const at::Tensor zn = z.reshape({n, -1}).norm(2, 1).reshape({n, 1, 1, 1});
      const at::Tensor sn = score.reshape({n, -1}).norm(2, 1).reshape({n, 1, 1, 1});
      const at::Tensor step = 2.0 * alpha * (config.corrector_snr * zn / sn).square();
      return x + step * score + (2.0 * step).sqrt() * z;
    };
    const double respaced = ab[899] / ab[799], original = 1.0 - beta[899];
    EXPECT_LT((inputs[2] - corrected(respaced)).abs().max().item<double>(), 1e-4) << kind;

    EXPECT_GT((inputs[2] - corrected(original)).abs().max().item<double>(), 1e-2) << kind << ": the check discriminates";
  }
}

}  // namespace
