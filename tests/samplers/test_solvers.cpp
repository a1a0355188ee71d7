// The high-order and σ-schedule samplers (dpm++3m, dpm++2m-sde, unipc, heun, euler, euler-a,
// ipndm; karras / logsnr spacing) against independent truth:
//  - SigmaTable: exact on table points, monotone between them, inverse of itself; the karras
//    and logsnr placements recomputed here from their definitions;
//  - the exact probability-flow solution for Gaussian data (gaussian_denoiser.hpp): fitted
//    convergence orders; a point mass followed exactly at every step;
//  - the SDE samplers' final marginals against the data;
//  - diffusers 0.42.1's trajectories on the same exact denoiser (tests/data/solvers.json, a copy
//    of shared/reference/solvers.json; make_solvers.py there made it).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/json.hpp"
#include "ddpm/runtime.hpp"
#include "ddpm/samplers/sampler.hpp"
#include "ddpm/samplers/steering.hpp"
#include "gaussian_denoiser.hpp"
#include "sampler_test_util.hpp"
#include "test_util.hpp"

namespace {

using ddpm::NoiseSchedule;
using ddpm::Prediction;
using ddpm::SamplerConfig;
using ddpm::SamplerKind;
using ddpm::Spacing;
using ddpm::test::as_denoiser;
using ddpm::test::ExactDenoiser;

NoiseSchedule make(const std::string& kind, int64_t T = 1000) { return ddpm::test::make_schedule(kind, T); }
using ddpm::test::name_of;
using ddpm::test::values;

// log σ of table entry i, written out here (σ² = (1 − ᾱ)/ᾱ).
double log_sigma_at(const std::vector<double>& ab, size_t i) { return 0.5 * std::log((1.0 - ab[i]) / ab[i]); }

// ------------------------------------------------------------ σ ↔ t

TEST(SigmaTable, ExactOnTablePointsMonotoneBetweenAndInvertible) {
  for (std::string kind : {"linear", "cosine"}) {
    const NoiseSchedule s = make(kind);
    const auto ab = values(s.alpha_bar64);
    const ddpm::SigmaTable table(s.alpha_bar64);
    for (size_t i = 0; i < ab.size(); i += 37) {
      EXPECT_EQ(table.alpha_bar(static_cast<double>(i)), ab[i]) << kind << " t " << i;  // bit for bit
      EXPECT_NEAR(table.log_sigma(static_cast<double>(i)), log_sigma_at(ab, i), 1e-12);
      EXPECT_NEAR(table.timestep(std::exp(log_sigma_at(ab, i))), static_cast<double>(i), 1e-9);
    }
    EXPECT_EQ(table.alpha_bar(-1.0), 1.0);
    // Between neighbours: log σ is the straight line, strictly increasing, and timestep() its inverse.
    double prev = -1e300;
    for (double t = 0.0; t <= 999.0; t += 0.37) {
      const auto lo = static_cast<size_t>(std::floor(t));
      const double w = t - std::floor(t);
      const double want = lo + 1 < ab.size() ? (1 - w) * log_sigma_at(ab, lo) + w * log_sigma_at(ab, lo + 1)
                                             : log_sigma_at(ab, lo);
      const double got = table.log_sigma(t);
      EXPECT_NEAR(got, want, 1e-12) << kind << " t " << t;
      EXPECT_GT(got, prev) << kind << " t " << t;
      prev = got;
      EXPECT_NEAR(table.timestep(std::exp(got)), t, 1e-8) << kind << " t " << t;
    }
    // Outside the table: clamped to its ends.
    EXPECT_EQ(table.timestep(1e-9), 0.0);
    EXPECT_EQ(table.timestep(1e9), 999.0);
    EXPECT_THROW(table.log_sigma(999.5), std::invalid_argument);
  }
}

TEST(SigmaTable, KarrasAndLogSnrPlacementsFollowTheirDefinitions) {
  const NoiseSchedule s = make("linear");
  const auto ab = values(s.alpha_bar64);
  const ddpm::SigmaTable table(s.alpha_bar64);
  const double smin = std::exp(log_sigma_at(ab, 0)), smax = std::exp(log_sigma_at(ab, 999));
  for (int64_t n : {2, 5, 10, 33}) {
    const auto karras = ddpm::sampling_timesteps(table, n, Spacing::Karras, 7.0);
    const auto logsnr = ddpm::sampling_timesteps(table, n, Spacing::LogSnr);
    ASSERT_EQ(static_cast<int64_t>(karras.size()), n);
    ASSERT_EQ(static_cast<int64_t>(logsnr.size()), n);
    EXPECT_EQ(karras.front(), 0.0);
    EXPECT_EQ(karras.back(), 999.0);
    EXPECT_EQ(logsnr.front(), 0.0);
    EXPECT_EQ(logsnr.back(), 999.0);
    for (int64_t i = 0; i < n; ++i) {
      const double u = double(i) / double(n - 1);  // i = 0: σ_max
      // Karras et al. 2022 eq. 5 with ρ = 7
      const double karras_sigma =
          std::pow(std::pow(smax, 1 / 7.0) + u * (std::pow(smin, 1 / 7.0) - std::pow(smax, 1 / 7.0)), 7.0);
      const double logsnr_sigma = std::exp(std::log(smax) + u * (std::log(smin) - std::log(smax)));
      const size_t k = static_cast<size_t>(n - 1 - i);
      EXPECT_NEAR(table.sigma(karras[k]) / karras_sigma, 1.0, 1e-10) << n << " " << i;
      EXPECT_NEAR(table.sigma(logsnr[k]) / logsnr_sigma, 1.0, 1e-10) << n << " " << i;
    }
  }
  // Zero terminal SNR has σ_max = ∞: refused with the option named.
  ddpm::ScheduleConfig z;
  z.zero_terminal_snr = true;
  const NoiseSchedule zs(z);
  SamplerConfig c;
  c.kind = SamplerKind::DpmSolver2M;
  c.prediction = Prediction::V;
  c.spacing = Spacing::Karras;
  const std::string msg = ddpm::test::error_of([&] {
    ddpm::sample(zs, [](const at::Tensor& x, const at::Tensor&) { return x; }, c, 1, 1, 1, 1);
  });
  EXPECT_NE(msg.find("spacing"), std::string::npos) << msg;
}

TEST(SamplerNames, ParseAndPrintRoundTripAndUnknownNamesAreRefused) {
  for (const std::string& name : ddpm::sampler_names())
    EXPECT_EQ(ddpm::to_string(ddpm::parse_sampler_kind(name)), name);
  EXPECT_EQ(ddpm::parse_sampler_kind("dpmpp_3m"), SamplerKind::DpmSolver3M);
  EXPECT_EQ(ddpm::parse_sampler_kind("euler_ancestral"), SamplerKind::EulerAncestral);
  const std::string msg = ddpm::test::error_of([] { ddpm::parse_sampler_kind("dpm++4m"); });
  EXPECT_NE(msg.find("dpm++4m"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ipndm"), std::string::npos) << msg;
  for (const std::string& name : ddpm::spacing_names()) EXPECT_EQ(ddpm::to_string(ddpm::parse_spacing(name)), name);
  EXPECT_THROW(ddpm::parse_spacing("exponential"), std::invalid_argument);
  EXPECT_EQ(ddpm::sampler_nfe(SamplerKind::Heun, 10), 19);
  EXPECT_EQ(ddpm::sampler_nfe(SamplerKind::UniPC, 10), 10);
  SamplerConfig c;
  c.kind = SamplerKind::UniPC;
  c.order = 4;
  EXPECT_NE(ddpm::test::error_of([&] { c.validate(1000); }).find("order"), std::string::npos);
  c.kind = SamplerKind::IPndm;
  EXPECT_NO_THROW(c.validate(1000));
  c.s_churn = -1;
  EXPECT_NE(ddpm::test::error_of([&] { c.validate(1000); }).find("s-churn"), std::string::npos);
}

// ------------------------------------------------------------ the flow of Gaussian data

// The probability-flow ODE between Gaussian marginals is the quantile map
//   x_t = √ᾱ_t μ + √v_t (x_T − √ᾱ_T μ)/√v_T,  v = ᾱ s² + 1 − ᾱ   (per pixel).
at::Tensor flow(const at::Tensor& xT, double aT, double a, const std::vector<double>& mu, const std::vector<double>& sd) {
  std::vector<at::Tensor> out;
  for (size_t c = 0; c < mu.size(); ++c) {
    const double vT = aT * sd[c] * sd[c] + 1 - aT, v = a * sd[c] * sd[c] + 1 - a;
    out.push_back(std::sqrt(a) * mu[c] + (xT.select(1, c) - std::sqrt(aT) * mu[c]) * std::sqrt(v / vT));
  }
  return at::stack(out, 1);
}

using ddpm::test::loglog_slope;

// The error at the smallest kept noise level (before the last step, which is x̂₀ for all) of a
// run from t = T−1 with logsnr spacing (uniform in λ, fractional t: the denoiser interpolates).
double flow_error(const NoiseSchedule& schedule, const std::string& kind, int64_t steps, Prediction p,
                  const std::vector<double>& mu, const std::vector<double>& sd, int64_t order = 0) {
  const auto ab = values(schedule.alpha_bar64);
  const int64_t n = 32, T = schedule.num_timesteps();
  SamplerConfig config;
  config.kind = ddpm::parse_sampler_kind(kind);
  config.steps = steps;
  config.spacing = Spacing::LogSnr;
  config.prediction = p;
  config.order = order;
  config.seed = 11;
  const at::Tensor xT = ddpm::NoiseStream(11, 0, n, {static_cast<int64_t>(mu.size()), 1, 1}).next().to(at::kDouble);
  const at::Tensor want = flow(xT, ab[static_cast<size_t>(T - 1)], ab[0], mu, sd);
  double err = -1;
  const ddpm::StepFn on_step = [&](int64_t step, int64_t total, const at::Tensor& x) {
    if (step == total - 1) err = (x.to(at::kDouble) - want).abs().max().item<double>();
  };
  ddpm::sample(schedule, as_denoiser(ExactDenoiser(schedule, mu, sd, p)), config, n, static_cast<int64_t>(mu.size()), 1,
               1, 0, nullptr, on_step);
  return err;
}

// Fitted orders on sigmoid-logsnr, T = 801 (λ from 10 to −10, uniform steps in λ; cosine's
// σ(T−1) ≈ 2·10⁴ needs far more steps to reach the asymptotic regime), within ±0.45:
//   euler 1, dpm++2m 2, heun 2, unipc 2 → 3 and unipc 3 → 3 (UniC raises the predictor's order by
//   one; at order 3 the first-order warm-up caps it), ipndm 2.6 ± 0.6 (fixed Adams–Bashforth
//   weights on a non-uniform σ̃ grid are not of full order);
//   dpm++3m 3 over 16–32 steps only: its first step is first order (as in the paper and
//   diffusers), whose O(h²) local error makes the global order tend to 2 (2.3 over 16–128 steps).
TEST(SolverOrder, FittedOrdersOnTheExactFlow) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = make("sigmoid-logsnr", 801);
  const std::vector<double> mu = {0.0, 0.5, -0.3}, sd = {1.0, 0.5, 0.2};
  struct Want {
    std::string kind;
    int64_t order_option;
    double order, tol;
    std::vector<double> steps;
  };
  const std::vector<double> all = {16, 24, 32, 48, 64, 96, 128}, early = {16, 24, 32};
  for (const Want& w : std::vector<Want>{{"euler", 0, 1.0, 0.45, all},
                                         {"dpm++2m", 0, 2.0, 0.45, all},
                                         {"heun", 0, 2.0, 0.45, all},
                                         {"dpm++3m", 0, 3.0, 0.45, early},
                                         {"unipc", 2, 3.0, 0.45, all},
                                         {"unipc", 3, 3.0, 0.45, all},
                                         {"ipndm", 0, 2.6, 0.6, all}}) {
    for (Prediction p : {Prediction::Epsilon, Prediction::V}) {
      std::vector<double> err;
      for (double m : w.steps)
        err.push_back(flow_error(schedule, w.kind, static_cast<int64_t>(m), p, mu, sd, w.order_option));
      const double order = -loglog_slope(w.steps, err);
      std::string errs;
      for (double e : err) errs += std::to_string(e) + " ";
      EXPECT_NEAR(order, w.order, w.tol) << w.kind << " order option " << w.order_option << " " << name_of(p)
                                         << ": errors " << errs;
      EXPECT_LT(err.back(), err.front()) << w.kind;
    }
  }
  // At 24 steps the third-order solvers are far ahead of dpm++2m.
  const double e2 = flow_error(schedule, "dpm++2m", 24, Prediction::V, mu, sd);
  EXPECT_LT(flow_error(schedule, "dpm++3m", 24, Prediction::V, mu, sd), e2 / 1.5);
  EXPECT_LT(flow_error(schedule, "unipc", 24, Prediction::V, mu, sd, 3), e2 / 4);
}

// A point mass (s = 0): x̂₀ = μ whatever x_t, so the flow is x_t = √ᾱ μ + √(1−ᾱ)(x_T − √ᾱ_T μ)/√(1−ᾱ_T)
// and every deterministic sampler must follow it at every step, for any spacing. Tolerance 2e-4,
// except where float32 cannot give it on cosine (ᾱ(T−1) = 2.4e-9, σ̃ ≈ 2·10⁴): there x̂₀ from a
// float32 ε̂ carries ~1e-3, which Heun's first correction multiplies by α'(σ̃ − σ̃')/(2σ̃') ≈ 500
// (left out), and iPNDM's differences of float32 ε̂ are multiplied by α'(σ̃' − σ̃) ≈ 4·10³ (3e-3).
TEST(SolverExact, DeterministicSolversFollowThePointMassFlowExactly) {
  ddpm::set_threads(1);
  const std::vector<double> mu = {0.5, -0.3}, sd = {0.0, 0.0};
  const int64_t n = 16;
  for (std::string schedule_kind : {"linear", "cosine"}) {
    const NoiseSchedule schedule = make(schedule_kind);
    const ddpm::SigmaTable table(schedule.alpha_bar64);
    for (std::string kind : {"dpm++3m", "unipc", "heun", "euler", "ipndm"}) {
      for (Spacing spacing : {Spacing::Trailing, Spacing::Karras, Spacing::LogSnr}) {
        for (Prediction p : {Prediction::Epsilon, Prediction::V}) {
          SamplerConfig config;
          config.kind = ddpm::parse_sampler_kind(kind);
          config.steps = 7;
          config.spacing = spacing;
          config.prediction = p;
          config.seed = 3;
          const auto kept = config.timesteps(schedule);  // descending
          const at::Tensor xT = ddpm::NoiseStream(3, 0, n, {2, 1, 1}).next().to(at::kDouble);
          const double aT = table.alpha_bar(kept.front());
          double worst = 0;
          const ddpm::StepFn on_step = [&](int64_t step, int64_t total, const at::Tensor& x) {
            if (step == total) return;
            worst = std::max(worst, (x.to(at::kDouble) - flow(xT, aT, table.alpha_bar(kept[static_cast<size_t>(step)]),
                                                              mu, sd))
                                        .abs()
                                        .max()
                                        .item<double>());
          };
          const at::Tensor got = ddpm::sample(schedule, as_denoiser(ExactDenoiser(schedule, mu, sd, p)), config, n, 2, 1,
                                              1, 0, nullptr, on_step);
          const std::string what = schedule_kind + " " + kind + " " + ddpm::to_string(spacing) + " " + name_of(p);
          const bool cosine = schedule_kind == "cosine";
          if (cosine && kind == "heun" && p == Prediction::Epsilon) continue;
          EXPECT_LT(worst, cosine && kind == "ipndm" ? 3e-3 : 2e-4) << what;
          for (int64_t c = 0; c < 2; ++c)
            EXPECT_LT((got.to(at::kDouble).select(1, c) - mu[c]).abs().max().item<double>(), 1e-4) << what;
        }
      }
    }
  }
}

// DPM-Solver++(2M) SDE draws from the data's distribution: per channel mean within 0.05 and sd
// within 6% over 4096 images at 200 steps (its discretisation bias is below that there).
TEST(SolverStatistics, SdeSamplersReproduceGaussianData) {
  ddpm::set_threads(1);
  const std::vector<double> mu = {0.3, -0.5, 0.0}, sd = {0.5, 1.0, 0.2};
  for (std::string kind : {"dpm++2m-sde"}) {
    for (std::string schedule_kind : {"linear", "cosine"}) {
      const NoiseSchedule schedule = make(schedule_kind);
      for (Spacing spacing : {Spacing::Trailing, Spacing::Karras}) {
        SamplerConfig config;
        config.kind = ddpm::parse_sampler_kind(kind);
        config.steps = 200;
        config.spacing = spacing;
        config.prediction = Prediction::V;
        config.seed = 77;
        const at::Tensor x =
            ddpm::sample(schedule, as_denoiser(ExactDenoiser(schedule, mu, sd, config.prediction)), config, 4096, 3, 1, 1)
                .to(at::kDouble);
        for (int64_t c = 0; c < 3; ++c) {
          const at::Tensor xc = x.select(1, c);
          const std::string what = kind + " " + schedule_kind + " " + ddpm::to_string(spacing) + " channel " +
                                   std::to_string(c);
          EXPECT_NEAR(xc.mean().item<double>(), mu[c], 0.05) << what;
          EXPECT_NEAR(xc.std().item<double>() / sd[c], 1.0, 0.06) << what;
        }
      }
    }
  }
}

// Euler ancestral with η = 1 is DDIM with η = 1 (= the respaced ancestral sampler, which
// test_sampler checks against Algorithm 2): σ̃_up² = σ̃'²(σ̃² − σ̃'²)/σ̃² is DDIM's σ_η²/ᾱ' and the
// Euler step to σ̃_down is its x̂₀ + σ̃_down ε̂. Same noise draws, so the same images.
TEST(SolverExact, EulerAncestralIsDdimWithEtaOne) {
  ddpm::set_threads(1);
  const std::vector<double> mu = {0.3, -0.5}, sd = {0.5, 0.2};
  for (std::string schedule_kind : {"linear", "cosine"}) {
    const NoiseSchedule schedule = make(schedule_kind);
    for (Spacing spacing : {Spacing::Trailing, Spacing::Karras}) {
      SamplerConfig config;
      config.kind = SamplerKind::EulerAncestral;
      config.steps = 12;
      config.spacing = spacing;
      config.prediction = Prediction::V;
      config.seed = 9;
      const auto den = as_denoiser(ExactDenoiser(schedule, mu, sd, config.prediction));
      const at::Tensor a = ddpm::sample(schedule, den, config, 256, 2, 1, 1);
      config.kind = SamplerKind::Ddim;
      config.eta = 1.0;
      const at::Tensor b = ddpm::sample(schedule, den, config, 256, 2, 1, 1);
      EXPECT_LT((a - b).abs().max().item<double>(), 1e-4) << schedule_kind << " " << ddpm::to_string(spacing);
      config.eta = 0.5;
      EXPECT_GT((a - ddpm::sample(schedule, den, config, 256, 2, 1, 1)).abs().max().item<double>(), 1e-2);
    }
  }
}

// Heun with churn (Algorithm 2) adds noise and evaluates at the raised level σ̂ (a fractional t
// above the kept one); S_churn = 0 is Algorithm 1 bit for bit whatever S_noise.
TEST(SolverExact, HeunChurnRaisesTheNoiseLevelAndZeroChurnIsAlgorithm1) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = make("linear");
  const std::vector<double> mu = {0.2}, sd = {0.7};
  SamplerConfig config;
  config.kind = SamplerKind::Heun;
  config.steps = 8;
  config.spacing = Spacing::Karras;
  config.prediction = Prediction::Epsilon;
  const auto den = as_denoiser(ExactDenoiser(schedule, mu, sd, config.prediction));
  const at::Tensor plain = ddpm::sample(schedule, den, config, 64, 1, 1, 1);
  config.s_noise = 1.003;
  EXPECT_TRUE(at::equal(plain, ddpm::sample(schedule, den, config, 64, 1, 1, 1)));
  config.s_churn = 40;
  config.s_tmax = 50;  // churn only where σ ≤ 50
  ExactDenoiser recorder(schedule, mu, sd, config.prediction);
  std::vector<double> ts;
  recorder.fractional_timesteps = &ts;
  const at::Tensor churned = ddpm::sample(schedule, as_denoiser(recorder), config, 1024, 1, 1, 1);
  EXPECT_FALSE(at::equal(plain, churned.narrow(0, 0, 64)));
  EXPECT_EQ(static_cast<int64_t>(ts.size()), 2 * 8 - 1);
  // The evaluations at kept points with σ ≤ 50 happen above them (σ̂ = σ(1 + γ)).
  const ddpm::SigmaTable table(schedule.alpha_bar64);
  const auto kept = config.timesteps(schedule);
  int64_t raised = 0;
  for (size_t k = 0; k < kept.size(); ++k) {
    const double t_eval = ts[2 * k];  // the first call of step k (the second is at kept[k + 1])
    if (table.sigma(kept[k]) <= 50) {
      EXPECT_GT(t_eval, kept[k]) << k;
      ++raised;
    } else {
      EXPECT_EQ(t_eval, kept[k]) << k;
    }
  }
  EXPECT_GT(raised, 2);
  // Churn is noise added and an ODE step: the mean stays the data's (5 standard errors).
  EXPECT_NEAR(churned.mean().item<double>(), mu[0], 5 * 0.7 / 32);
}

// Guidance, SDEdit, RePaint and ILVR go through the one loop: with every sampler a RePaint run
// keeps the known pixels exactly and a guided run is finite.
TEST(SolverSteering, EverySamplerRunsWithRepaintAndGuidance) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = make("cosine");
  const std::vector<double> mu = {0.1}, sd = {0.5};
  const at::Tensor init = at::full({4, 1, 2, 2}, 0.25);
  at::Tensor keep = at::zeros({1, 1, 2, 2}, at::kBool);
  keep.index_put_({0, 0, 0, 0}, true);
  for (const std::string& kind : ddpm::sampler_names()) {
    SamplerConfig config;
    config.kind = ddpm::parse_sampler_kind(kind);
    config.steps = 6;
    config.spacing = Spacing::Karras;
    config.prediction = Prediction::V;
    const ExactDenoiser exact(schedule, mu, sd, config.prediction);
    ddpm::Steering s = ddpm::repaint(schedule, init, keep, 2, 2);
    const at::Tensor x = ddpm::sample(schedule, as_denoiser(exact), config, 4, 1, 2, 2, 0, nullptr, nullptr, s);
    EXPECT_TRUE(at::equal(x.select(2, 0).select(2, 0), init.select(2, 0).select(2, 0))) << kind;
    EXPECT_TRUE(at::isfinite(x).all().item<bool>()) << kind;
    const ddpm::ConditionalDenoiser cond = [&](const at::Tensor& xt, const at::Tensor& t, const at::Tensor&) {
      return exact(xt, t);
    };
    ddpm::Guidance g;
    g.weight = 1.5;
    g.sigma_low = 0.3;
    g.sigma_high = 5.0;
    const at::Tensor y = ddpm::sample(schedule, ddpm::guided(cond, at::zeros({4}, at::kLong), g, schedule), config, 4, 1,
                                      2, 2);
    EXPECT_TRUE(at::isfinite(y).all().item<bool>()) << kind;
  }
}

// ------------------------------------------------------------ diffusers parity

struct RefCase {
  std::string name, schedule, prediction, spacing;
  int64_t steps, nfe;
  std::vector<double> timesteps, x_T, x_0;
};

std::vector<RefCase> reference_cases(std::vector<double>& mu, std::vector<double>& s) {
  const std::string text = ddpm::test::read_string(ddpm::test::data_dir() + "/solvers.json");
  const ddpm::json::Value root = ddpm::json::parse(text);
  auto numbers = [](const ddpm::json::Value& v) {
    std::vector<double> out;
    for (const auto& i : v.items()) out.push_back(i.as_double());
    return out;
  };
  mu = numbers(*root.find("data")->find("mu"));
  s = numbers(*root.find("data")->find("s"));
  std::vector<RefCase> out;
  for (const auto& c : root.find("cases")->items()) {
    RefCase r;
    r.name = c.find("name")->as_string();
    r.schedule = c.find("schedule")->as_string();
    r.prediction = c.find("prediction")->as_string();
    r.spacing = c.find("spacing")->as_string();
    r.steps = c.find("steps")->as_int64();
    r.nfe = c.find("nfe")->as_int64();
    r.timesteps = numbers(*c.find("timesteps"));
    r.x_T = numbers(*c.find("x_T"));
    r.x_0 = numbers(*c.find("x_0"));
    out.push_back(r);
  }
  return out;
}

// Which reference cases run the same algorithm with the same step placement here, and as what.
// Deliberate differences, not pinned:
//  - diffusers' multistep schedulers (DPMSolverMultistep, UniPC) place leading / linspace steps on
//    a grid of steps + 1 points (leading 900, 810, ...; linspace 999, 899, ..., 500), libddpm uses one
//    placement per spacing name for every sampler (its DDIM's: 900, 800, ... / 999, 888, ...);
//  - diffusers' DDIM steps to t − T/steps whatever the spacing, so with linspace it steps to 899
//    and then evaluates at 888; libddpm steps to the next visited point;
//  - dpm++ with use_karras_sigmas rounds the model's timesteps to integers while the update uses
//    the unrounded σ; libddpm evaluates at the fractional t of that σ (checked loosely below);
//  - Euler / Heun with karras on trailing spacing take σ_min from the last trailing timestep;
//    libddpm's karras spacing always spans σ(T−1) … σ(0) (= diffusers' linspace case).
bool same_algorithm(const RefCase& c, SamplerConfig& config) {
  const std::map<std::string, std::pair<SamplerKind, int64_t>> multistep = {
      {"dpm++2m", {SamplerKind::DpmSolver2M, 0}},
      {"dpm++3m", {SamplerKind::DpmSolver3M, 0}},
      {"unipc-bh2-2", {SamplerKind::UniPC, 2}},
      {"unipc-bh2-3", {SamplerKind::UniPC, 3}}};
  if (c.name == "ddim" && c.spacing != "linspace") {
    config.kind = SamplerKind::Ddim;
    config.spacing = ddpm::parse_spacing(c.spacing);
    return true;
  }
  if (multistep.count(c.name) && c.spacing == "trailing") {
    config.kind = multistep.at(c.name).first;
    config.order = multistep.at(c.name).second;
    config.spacing = Spacing::Trailing;
    return true;
  }
  if ((c.name == "heun-karras" || c.name == "euler-karras") && c.spacing == "linspace") {
    config.kind = c.name == "heun-karras" ? SamplerKind::Heun : SamplerKind::Euler;
    config.spacing = Spacing::Karras;
    return true;
  }
  return false;
}

TEST(SolverParity, MatchesDiffusersOnTheExactGaussianDenoiser) {
  ddpm::set_threads(1);
  std::vector<double> mu, s;
  const auto cases = reference_cases(mu, s);
  ASSERT_GT(cases.size(), 100u);
  // The data's 8 independent pixels as 8 channels of a 1×1 image.
  const int64_t C = static_cast<int64_t>(mu.size());
  std::map<std::string, NoiseSchedule> schedules;
  schedules.emplace("linear", make("linear"));
  schedules.emplace("cosine", make("cosine"));
  int64_t pinned = 0, loose = 0;
  for (const RefCase& c : cases) {
    SamplerConfig config;
    config.steps = c.steps;
    config.prediction = c.prediction == "v" ? Prediction::V : Prediction::Epsilon;
    const bool exact = same_algorithm(c, config);
    const bool karras_dpm = (c.name == "dpm++2m-karras" || c.name == "dpm++3m-karras") && c.spacing == "linspace";
    if (!exact && !karras_dpm) continue;
    if (karras_dpm) {
      config.kind = c.name == "dpm++2m-karras" ? SamplerKind::DpmSolver2M : SamplerKind::DpmSolver3M;
      config.spacing = Spacing::Karras;
    }
    const NoiseSchedule& schedule = schedules.at(c.schedule);
    ExactDenoiser exact_denoiser(schedule, mu, s, config.prediction);
    std::vector<double> calls;
    exact_denoiser.fractional_timesteps = &calls;
    ddpm::Steering steering;
    steering.x_T = at::tensor(c.x_T, at::kDouble).to(at::kFloat).reshape({1, C, 1, 1});
    const at::Tensor got = ddpm::sample(schedule, as_denoiser(exact_denoiser), config, 1, C, 1, 1, 0, nullptr, nullptr,
                                        steering)
                               .to(at::kDouble)
                               .flatten();
    const at::Tensor want = at::tensor(c.x_0, at::kDouble);
    const double diff = (got - want).abs().max().item<double>();
    const std::string what = c.name + " " + c.schedule + " " + c.prediction + " " + std::to_string(c.steps) + " " +
                             c.spacing;
    if (exact) {
      // The same network calls, at the same timesteps (diffusers' are float32).
      // diffusers' σ table is float32 (1 − ᾱ near ᾱ = 1 loses digits), which moves its karras t by
      // up to 0.03 where log σ is flat: compare the noise levels, in log σ.
      ASSERT_EQ(static_cast<int64_t>(calls.size()), c.nfe) << what;
      const ddpm::SigmaTable table(schedule.alpha_bar64);
      for (size_t i = 0; i < calls.size(); ++i)
        EXPECT_NEAR(table.log_sigma(calls[i]), table.log_sigma(c.timesteps[i]), 2e-4) << what << " call " << i;
      // ε at cosine's ᾱ(T−1) = 2.4e-9: x̂₀ from a float32 ε̂ (and diffusers' float32 ᾱ) carries
      // ~1e-3, ~3e-4 of it into the result.
      const double tol = c.schedule == "cosine" && c.prediction == "epsilon" && c.spacing == "trailing" ? 1e-3 : 2e-5;
      EXPECT_LT(diff, tol * (1.0 + want.abs().max().item<double>())) << what;
      ++pinned;
    } else {
      // Rounded t in diffusers against fractional t here: close, not equal.
      EXPECT_LT(diff, 0.05) << what;
      ++loose;
    }
  }
  EXPECT_GE(pinned, 40);
  EXPECT_GE(loose, 8);
}

}  // namespace
