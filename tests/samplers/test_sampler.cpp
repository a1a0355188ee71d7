// Samplers driven by the exact denoiser of Gaussian data, no network: for x₀ ~ N(μ, s²)
// per pixel, x_t = √ᾱ x₀ + √(1−ᾱ) ε is Gaussian too, and the optimal predictors are
//   ε*(x_t) = √(1−ᾱ) (x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ),
//   x₀*(x_t) = E[x₀ | x_t] = μ + √ᾱ s² (x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ),
//   v* = √ᾱ ε* − √(1−ᾱ) x₀*.
// Full-T samplers must then reproduce N(μ, s²); the truth is (μ, s), never another sampler.
// Few-step samplers are checked against closed forms in test_sampler_exact.cpp.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "tools/options.hpp"
#include "ddpm/runtime.hpp"
#include "ddpm/samplers/sampler.hpp"
#include "gaussian_denoiser.hpp"
#include "test_device.hpp"

namespace {

using ddpm::Prediction;

// Channel c of every image holds data N(mu[c], sd[c]²): three (μ, s) cases in one run.
const std::vector<double> kMu = {0.0, 0.5, -0.3};
const std::vector<double> kSd = {1.0, 0.5, 0.2};

ddpm::NoiseSchedule make_schedule(const std::string& kind, int64_t T = 1000) {
  ddpm::ScheduleConfig c;
  c.kind = kind;
  c.timesteps = T;
  return ddpm::NoiseSchedule(c);
}

using ddpm::test::as_denoiser;
using ddpm::test::ExactDenoiser;

// Per channel: |mean − μ| < 0.05 and |std/s − 1| < 5%.
void expect_gaussian(const at::Tensor& samples, const std::vector<double>& mu, const std::vector<double>& sd,
                     const std::string& what) {
  ASSERT_TRUE(at::isfinite(samples).all().item<bool>()) << what;
  const at::Tensor x = samples.to(at::kDouble).transpose(0, 1).reshape({static_cast<int64_t>(mu.size()), -1});
  for (size_t c = 0; c < mu.size(); ++c) {
    const double m = x[c].mean().item<double>();
    const double s = x[c].std().item<double>();
    EXPECT_NEAR(m, mu[c], 0.05) << what << " channel " << c << " (mu " << mu[c] << ", s " << sd[c] << ")";
    EXPECT_NEAR(s / sd[c], 1.0, 0.05) << what << " channel " << c << " (mu " << mu[c] << ", s " << sd[c]
                                      << "): std " << s;
  }
}

std::string name_of(Prediction p) {
  switch (p) {
    case Prediction::Epsilon:
      return "eps";
    case Prediction::X0:
      return "x0";
    case Prediction::V:
      return "v";
  }
  return "?";
}

// ------------------------------------------------------------ statistics against the truth

struct Case {
  std::string name, kind;
  int64_t steps;
  std::string spacing = "leading";
  double eta = 0.0;
  std::string variance = "fixed_small";
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Few-step samplers do not reproduce the data (a property of the discretisation); their
// closed-form checks are in test_sampler_exact.cpp.
std::vector<Case> cases() {
  std::vector<Case> out = {{"ddpm_small_1000", "ddpm", 1000},
                           {"ddpm_large_1000", "ddpm", 1000, "leading", 0.0, "fixed_large"},
                           {"ddpm_small_1000_trailing", "ddpm", 1000, "trailing"},
                           {"ddim_eta1_1000", "ddim", 1000, "linspace", 1.0}};
  return out;
}

class SamplerStatistics : public ::testing::TestWithParam<Case> {};

// With all T steps the samples reproduce the data, per channel: mean within 0.05, sd within
// 5%. Each case runs on the linear and cosine schedules with ε, x₀ and v prediction.
TEST_P(SamplerStatistics, ReproducesGaussianData) {
  ddpm::set_threads(1);  // elementwise work on 12k values: one thread is fastest here
  const Case& c = GetParam();
  for (std::string schedule_kind : {"linear", "cosine"}) {
    const auto schedule = make_schedule(schedule_kind);
    for (Prediction prediction : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
      SCOPED_TRACE(schedule_kind + " schedule, " + name_of(prediction) + " prediction");
      ddpm::SamplerConfig config;
      config.kind = ddpm::parse_sampler_kind(c.kind);
      config.steps = c.steps;
      config.spacing = ddpm::parse_spacing(c.spacing);
      config.eta = c.eta;
      config.variance = ddpm::parse_variance(c.variance);
      config.prediction = prediction;
      config.seed = 1234;
      int64_t calls = 0;
      ExactDenoiser exact(schedule, kMu, kSd, prediction);
      const ddpm::Denoiser counted = [&](const at::Tensor& x, const at::Tensor& t) {
        ++calls;
        return exact(x, t);
      };
      const at::Tensor x = ddpm::sample(schedule, counted, config, 4096, 3, 1, 1);
      EXPECT_EQ(x.sizes(), at::IntArrayRef({4096, 3, 1, 1}));
      EXPECT_EQ(calls, c.steps);
      ASSERT_TRUE(at::isfinite(x).all().item<bool>());

      expect_gaussian(x, kMu, kSd, c.name);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, SamplerStatistics, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string n = info.param.name;
                           for (auto& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// ------------------------------------------------------------ against independent references

// Ho et al. 2020 Algorithm 2 written out in float64 from the schedule's float64 tables,
// with the same per-image noise stream (x_T, then one z per step but the last).
TEST(Sampler, AncestralMatchesAlgorithm2) {
  const auto schedule = make_schedule("linear");
  const int64_t n = 16, T = schedule.num_timesteps();
  const std::vector<double> mu = {0.3}, sd = {0.7};
  ExactDenoiser exact(schedule, mu, sd, Prediction::Epsilon);
  for (std::string variance : {"fixed_small", "fixed_large"}) {
    ddpm::SamplerConfig config;
    config.variance = ddpm::parse_variance(variance);
    config.seed = 99;
    const at::Tensor got = ddpm::sample(schedule, as_denoiser(exact), config, n, 1, 2, 2);

    ddpm::NoiseStream noise(99, 0, n, {1, 2, 2});
    at::Tensor x = noise.next().to(at::kDouble);
    const auto beta = schedule.beta64, ab = schedule.alpha_bar64, pv = schedule.posterior_variance64;
    for (int64_t t = T - 1; t >= 0; --t) {
      const double b = beta[t].item<double>(), a = ab[t].item<double>();
      const at::Tensor eps = exact(x.to(at::kFloat), at::full({n}, t, at::kLong)).to(at::kDouble);
      x = (x - eps * (b / std::sqrt(1.0 - a))) / std::sqrt(1.0 - b);
      if (t > 0) {
        const double var = variance == "fixed_large" ? b : pv[t].item<double>();
        x = x + noise.next().to(at::kDouble) * std::sqrt(var);
      }
    }
    EXPECT_LT((got.to(at::kDouble) - x).abs().max().item<double>(), 1e-3) << variance;
  }
}

// DDIM eq. 12 with η = 1 over a 50-step leading subset, written out in float64.
TEST(Sampler, DdimMatchesEquation12) {
  const auto schedule = make_schedule("cosine");
  const int64_t n = 16;
  const std::vector<double> mu = {-0.2}, sd = {0.4};
  ExactDenoiser exact(schedule, mu, sd, Prediction::Epsilon);
  ddpm::SamplerConfig config;
  config.kind = ddpm::SamplerKind::Ddim;
  config.steps = 50;
  config.spacing = ddpm::parse_spacing("leading");  // t = 980, 960, ..., 0
  config.eta = 1.0;
  config.seed = 5;
  const at::Tensor got = ddpm::sample(schedule, as_denoiser(exact), config, n, 1, 1, 3);

  ddpm::NoiseStream noise(5, 0, n, {1, 1, 3});
  at::Tensor x = noise.next().to(at::kDouble);
  const auto ab = schedule.alpha_bar64;
  for (int64_t t = 980; t >= 0; t -= 20) {
    const double a = ab[t].item<double>(), a_prev = t >= 20 ? ab[t - 20].item<double>() : 1.0;
    const at::Tensor eps = exact(x.to(at::kFloat), at::full({n}, t, at::kLong)).to(at::kDouble);
    const at::Tensor x0 = (x - eps * std::sqrt(1.0 - a)) / std::sqrt(a);
    const double sigma = std::sqrt((1.0 - a_prev) / (1.0 - a) * (1.0 - a / a_prev));
    x = x0 * std::sqrt(a_prev) + eps * std::sqrt(1.0 - a_prev - sigma * sigma);
    if (t > 0) x = x + noise.next().to(at::kDouble) * sigma;
  }
  EXPECT_LT((got.to(at::kDouble) - x).abs().max().item<double>(), 1e-3);
}

// Song et al. 2021 §4.1: DDIM with η = 1 is the ancestral sampler of the (respaced)
// process with the posterior variance. Two different update formulas, same noise order:
// the same images.
TEST(Sampler, DdimEtaOneIsRespacedAncestral) {
  const auto schedule = make_schedule("cosine");
  for (Prediction p : {Prediction::Epsilon, Prediction::V}) {
    for (std::string spacing : {"leading", "trailing"}) {
      ExactDenoiser exact(schedule, kMu, kSd, p);
      ddpm::SamplerConfig ddim;
      ddim.kind = ddpm::SamplerKind::Ddim;
      ddim.eta = 1.0;
      ddim.steps = 40;
      ddim.spacing = ddpm::parse_spacing(spacing);
      ddim.prediction = p;
      ddim.seed = 17;
      ddpm::SamplerConfig ancestral = ddim;
      ancestral.kind = ddpm::SamplerKind::Ddpm;
      const at::Tensor a = ddpm::sample(schedule, as_denoiser(exact), ddim, 32, 3, 2, 2);
      const at::Tensor b = ddpm::sample(schedule, as_denoiser(exact), ancestral, 32, 3, 2, 2);
      EXPECT_LT((a - b).abs().max().item<float>(), 1e-4) << name_of(p) << " " << spacing;
    }
  }
}

// Least-squares fit y ≈ c + w x over the entries of two equal-sized tensors; returns
// {c, w, largest |residual|}.
std::tuple<double, double, double> affine_fit(const at::Tensor& x, const at::Tensor& y) {
  const at::Tensor xd = x.to(at::kDouble).flatten(), yd = y.to(at::kDouble).flatten();
  const double mx = xd.mean().item<double>(), my = yd.mean().item<double>();
  const double w = ((xd - mx) * (yd - my)).sum().item<double>() / (xd - mx).square().sum().item<double>();
  const double c = my - w * mx;
  return {c, w, (yd - (c + w * xd)).abs().max().item<double>()};
}

// DDIM η = 0 and DPM-Solver++ are deterministic: on Gaussian data (an exact denoiser affine
// in x) each output is an increasing affine image c + w·x_T of its own x_T. How close
// (c, w) are to the probability-flow ODE is checked in test_sampler_exact.cpp.
TEST(Sampler, DeterministicSamplersMapEachNoiseToItsImage) {
  ddpm::set_threads(1);
  const auto schedule = make_schedule("cosine");
  const int64_t n = 256;
  for (const Case& c : {Case{"ddim", "ddim", 100, "leading"}, Case{"ddim", "ddim", 50, "trailing"},
                        Case{"dpm", "dpm++2m", 20, "leading"}, Case{"dpm", "dpm++2m", 20, "trailing"}}) {
    for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
      ExactDenoiser exact(schedule, kMu, kSd, p);
      ddpm::SamplerConfig config;
      config.kind = ddpm::parse_sampler_kind(c.kind);
      config.steps = c.steps;
      config.spacing = ddpm::parse_spacing(c.spacing);
      config.prediction = p;
      config.seed = 7;
      const at::Tensor got = ddpm::sample(schedule, as_denoiser(exact), config, n, 3, 1, 1).to(at::kDouble);
      const at::Tensor xT = ddpm::NoiseStream(7, 0, n, {3, 1, 1}).next().to(at::kDouble);
      for (int64_t ch = 0; ch < 3; ++ch) {
        const auto [c0, w, residual] = affine_fit(xT.select(1, ch), got.select(1, ch));
        EXPECT_LT(residual, 2e-4) << c.kind << " " << c.spacing << " " << name_of(p) << " channel " << ch;
        EXPECT_GT(w, 0.0) << c.kind << " " << c.spacing << " " << name_of(p) << " channel " << ch;
      }
      // Same noise, same output; another seed, another output.
      EXPECT_TRUE(at::equal(ddpm::sample(schedule, as_denoiser(exact), config, n, 3, 1, 1).to(at::kDouble), got));
      config.seed = 8;
      EXPECT_GT((ddpm::sample(schedule, as_denoiser(exact), config, n, 3, 1, 1).to(at::kDouble) - got)
                    .abs()
                    .max()
                    .item<double>(),
                0.1);
    }
  }
}

// Zero terminal SNR (ᾱ_{T−1} = 0, λ = −∞): v-prediction samples fine (DPM-Solver++'s first
// step has h = ∞): 1000 ancestral steps reproduce the data, the deterministic samplers give
// finite increasing affine images of x_T (exactness on a point mass: test_sampler_exact.cpp);
// ε-prediction is refused, naming the option and what to use instead.
TEST(Sampler, ZeroTerminalSnrWithVPrediction) {
  ddpm::set_threads(1);
  ddpm::ScheduleConfig sc;
  sc.zero_terminal_snr = true;
  const ddpm::NoiseSchedule schedule(sc);
  ASSERT_EQ(schedule.alpha_bar64[999].item<double>(), 0.0);
  for (const Case& c : {Case{"ddpm", "ddpm", 1000}, Case{"ddim", "ddim", 50, "trailing"},
                        Case{"dpm", "dpm++2m", 20, "trailing"}}) {
    ExactDenoiser exact(schedule, kMu, kSd, Prediction::V);
    ddpm::SamplerConfig config;
    config.kind = ddpm::parse_sampler_kind(c.kind);
    config.steps = c.steps;
    config.spacing = ddpm::parse_spacing(c.spacing);
    config.prediction = Prediction::V;
    const at::Tensor x = ddpm::sample(schedule, as_denoiser(exact), config, 4096, 3, 1, 1).to(at::kDouble);
    ASSERT_TRUE(at::isfinite(x).all().item<bool>()) << c.kind;
    if (c.kind == "ddpm") {
      expect_gaussian(x, kMu, kSd, "zero terminal SNR, 1000 ancestral steps");
    } else {
      const at::Tensor xT = ddpm::NoiseStream(config.seed, 0, 4096, {3, 1, 1}).next().to(at::kDouble);
      for (int64_t ch = 0; ch < 3; ++ch) {
        const auto [c0, w, residual] = affine_fit(xT.select(1, ch), x.select(1, ch));
        EXPECT_LT(residual, 2e-4) << c.kind << " channel " << ch;
        EXPECT_GT(w, 0.0) << c.kind << " channel " << ch;
      }
    }
    config.prediction = Prediction::Epsilon;
    try {
      ddpm::sample(schedule, as_denoiser(exact), config, 1, 1, 1, 1);
      ADD_FAILURE() << "epsilon at alpha_bar = 0 accepted (" << c.kind << ")";
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("prediction"), std::string::npos) << msg;
      EXPECT_NE(msg.find("--prediction v"), std::string::npos) << msg;  // what to do instead
      // --spacing leading is no way out in general: at steps = T it visits T − 1 as well.
      EXPECT_NE(msg.find("only with fewer steps than T"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  // The same check is available before any work (ddpm-sample runs it after loading).
  ddpm::SamplerConfig eps;
  eps.kind = ddpm::SamplerKind::Ddim;
  eps.steps = 1000;
  eps.spacing = ddpm::parse_spacing("leading");  // steps = T: leading visits T − 1 too
  EXPECT_THROW(eps.validate(schedule), std::invalid_argument);
  eps.steps = 20;  // leading with fewer steps skips T − 1: allowed
  EXPECT_NO_THROW(eps.validate(schedule));
  eps.spacing = ddpm::parse_spacing("trailing");
  EXPECT_THROW(eps.validate(schedule), std::invalid_argument);
}

TEST(Sampler, DdimEtaZeroIsDeterministicAndAncestralIsNot) {
  const auto schedule = make_schedule("cosine");
  ExactDenoiser exact(schedule, kMu, kSd, Prediction::Epsilon);
  ddpm::SamplerConfig ddim;
  ddim.kind = ddpm::SamplerKind::Ddim;
  ddim.steps = 20;
  ddim.seed = 3;
  const at::Tensor a = ddpm::sample(schedule, as_denoiser(exact), ddim, 32, 3, 2, 2);
  EXPECT_TRUE(at::equal(a, ddpm::sample(schedule, as_denoiser(exact), ddim, 32, 3, 2, 2)));
  // With η = 1 the noise injected along the way changes the output for the same x_T.
  ddim.eta = 1.0;
  const at::Tensor b = ddpm::sample(schedule, as_denoiser(exact), ddim, 32, 3, 2, 2);
  EXPECT_GT((a - b).abs().max().item<float>(), 0.05);
  EXPECT_TRUE(at::equal(b, ddpm::sample(schedule, as_denoiser(exact), ddim, 32, 3, 2, 2)));
}

TEST(Sampler, RespacedWithAllStepsEqualsPlainAncestral) {
  const auto schedule = make_schedule("linear");
  ExactDenoiser exact(schedule, kMu, kSd, Prediction::V);
  for (std::string variance : {"fixed_small", "fixed_large"}) {
    ddpm::SamplerConfig plain;
    plain.variance = ddpm::parse_variance(variance);
    plain.prediction = Prediction::V;
    plain.seed = 11;
    const at::Tensor reference = ddpm::sample(schedule, as_denoiser(exact), plain, 8, 3, 1, 2);
    for (std::string spacing : {"leading", "trailing", "linspace"}) {
      ddpm::SamplerConfig respaced = plain;
      respaced.steps = schedule.num_timesteps();
      respaced.spacing = ddpm::parse_spacing(spacing);
      EXPECT_TRUE(at::equal(ddpm::sample(schedule, as_denoiser(exact), respaced, 8, 3, 1, 2), reference))
          << variance << " " << spacing;
    }
  }
}

// The denoiser is evaluated at the ORIGINAL indices of the kept timesteps, descending.
TEST(Sampler, DenoiserSeesOriginalTimesteps) {
  const auto schedule = make_schedule("linear");
  for (std::string kind : {"ddpm", "ddim", "dpm++2m"}) {
    for (std::string spacing : {"leading", "trailing", "linspace"}) {
      std::vector<int64_t> seen;
      ExactDenoiser exact(schedule, kMu, kSd, Prediction::Epsilon);
      exact.timesteps = &seen;
      ddpm::SamplerConfig config;
      config.kind = ddpm::parse_sampler_kind(kind);
      config.steps = 25;
      config.spacing = ddpm::parse_spacing(spacing);
      ddpm::sample(schedule, as_denoiser(exact), config, 2, 3, 1, 1);
      auto expected = ddpm::timestep_subset(1000, 25, ddpm::parse_spacing(spacing));
      std::reverse(expected.begin(), expected.end());
      EXPECT_EQ(seen, expected) << kind << " " << spacing;
      EXPECT_EQ(config.timesteps(1000), expected);
    }
  }
}

// ------------------------------------------------------------ reproducibility

TEST(Sampler, ImagesAreBatchInvariant) {
  ddpm::set_threads(0);
  const auto schedule = make_schedule("cosine");
  ExactDenoiser exact(schedule, kMu, kSd, Prediction::X0);
  struct Variant {
    std::string kind;
    double eta;
    bool corrector, dynamic;
  };
  for (const Variant& v : {Variant{"ddpm", 0.0, true, true}, Variant{"ddim", 0.5, true, false},
                           Variant{"dpm++2m", 0.0, true, false}, Variant{"ddpm", 0.0, false, false}}) {
    ddpm::SamplerConfig config;
    config.kind = ddpm::parse_sampler_kind(v.kind);
    config.steps = 12;
    config.eta = v.eta;
    config.corrector = v.corrector;
    config.corrector_steps = 2;
    config.dynamic_threshold = v.dynamic;
    config.prediction = Prediction::X0;
    config.seed = 2024;
    // 3×5×5 = 75 values per image: vectorised loops see a remainder in a batch of one.
    const at::Tensor batch = ddpm::sample(schedule, as_denoiser(exact), config, 64, 3, 5, 5);
    for (int64_t k : {0, 17, 63}) {
      const at::Tensor single = ddpm::sample(schedule, as_denoiser(exact), config, 1, 3, 5, 5, k);
      EXPECT_TRUE(at::equal(single[0], batch[k])) << v.kind << " image " << k;
    }
    const at::Tensor middle = ddpm::sample(schedule, as_denoiser(exact), config, 10, 3, 5, 5, 30);
    EXPECT_TRUE(at::equal(middle, batch.slice(0, 30, 40))) << v.kind;
    EXPECT_FALSE(at::equal(batch[0], batch[1]));
  }
}

// A sampler run on CUDA (schedule and x on the GPU, the per-image noise still drawn on the
// CPU) gives the images of the CPU run; the exact denoiser itself computes on the CPU.
TEST(Sampler, OnCudaGivesTheCpuImages) {
  DDPM_SKIP_WITHOUT_CUDA();
  ddpm::ScheduleConfig sc;
  sc.kind = "cosine";
  const ddpm::NoiseSchedule cpu(sc), gpu(sc, c10::Device(c10::kCUDA, 0));
  ExactDenoiser exact(cpu, kMu, kSd, Prediction::Epsilon);
  bool saw_cuda = false;
  const ddpm::Denoiser on_device = [&](const at::Tensor& x, const at::Tensor& t) {
    saw_cuda = saw_cuda || x.is_cuda();
    return exact(x.cpu(), t.cpu()).to(x.device());
  };
  for (std::string kind : {"ddpm", "ddim", "dpm++2m"}) {
    ddpm::SamplerConfig config;
    config.kind = ddpm::parse_sampler_kind(kind);
    config.steps = 20;
    config.seed = 3;
    const at::Tensor a = ddpm::sample(cpu, on_device, config, 4, 3, 4, 4);
    saw_cuda = false;
    const at::Tensor b = ddpm::sample(gpu, on_device, config, 4, 3, 4, 4);
    EXPECT_TRUE(saw_cuda) << kind;
    EXPECT_LT((a - b.cpu()).abs().max().item<double>(), 1e-4) << kind;
  }
}

TEST(NoiseStream, IsStandardNormalAndReproducible) {
  ddpm::NoiseStream a(1, 0, 4, {3, 7, 7});
  std::vector<at::Tensor> draws;
  for (int i = 0; i < 200; ++i) draws.push_back(a.next());
  const at::Tensor all = at::stack(draws).to(at::kDouble);
  EXPECT_NEAR(all.mean().item<double>(), 0.0, 0.02);
  EXPECT_NEAR(all.std().item<double>(), 1.0, 0.02);
  EXPECT_NEAR((all.pow(4)).mean().item<double>(), 3.0, 0.1);  // Gaussian kurtosis
  // Same (seed, index) → same numbers, wherever the image sits in the batch.
  ddpm::NoiseStream b(1, 2, 1, {3, 7, 7});
  EXPECT_TRUE(at::equal(b.next()[0], draws[0][2]));
  EXPECT_TRUE(at::equal(b.next()[0], draws[1][2]));
  // Other seed, other numbers; neighbouring images are uncorrelated.
  EXPECT_FALSE(at::equal(ddpm::NoiseStream(2, 0, 4, {3, 7, 7}).next(), draws[0]));
  const at::Tensor img0 = all.select(1, 0).flatten(), img1 = all.select(1, 1).flatten();
  EXPECT_LT(std::abs((img0 * img1).mean().item<double>()), 0.03);
}

TEST(NoiseStream, SameNumbersWithAnyThreadCount) {
  // 64 images of 3×32×32: large enough to be split over threads.
  ddpm::set_threads(1);
  const at::Tensor one = ddpm::NoiseStream(5, 0, 64, {3, 32, 32}).next();
  ddpm::set_threads(2);
  const at::Tensor two = ddpm::NoiseStream(5, 0, 64, {3, 32, 32}).next();
  ddpm::set_threads(1);
  EXPECT_TRUE(at::equal(one, two));
}

TEST(Sampler, BuildsNoAutogradGraph) {
  // A denoiser with trainable weights (as in the trainer's sample grids) must not make the
  // sampler record a graph through hundreds of steps.
  const auto schedule = make_schedule("linear", 20);
  const at::Tensor w = at::full({1}, 0.5).set_requires_grad(true);
  const ddpm::Denoiser with_weights = [&](const at::Tensor& x, const at::Tensor&) { return x * w; };
  ddpm::SamplerConfig config;
  const at::Tensor x = ddpm::sample(schedule, with_weights, config, 2, 1, 2, 2);
  EXPECT_FALSE(x.requires_grad());
}

// ------------------------------------------------------------ corrector, early stop, clipping

// Langevin steps with the exact score move samples towards the marginal of their noise
// level, so they repair the variance that few-step predictors lose on Gaussian data.
// The step size is one scalar per image (from ‖z‖/‖s‖ over its pixels), so each (μ, s)
// case gets images of its own (channels of different widths would share a step tuned to
// the narrowest), 1×8×8 so that the norms settle. Returns the channel-c samples, flattened.
at::Tensor sample_pc(const ddpm::NoiseSchedule& schedule, const std::string& kind, int64_t steps,
                     const std::string& spacing, int64_t corrector_steps, size_t c, int64_t* calls = nullptr) {
  ExactDenoiser exact(schedule, {kMu[c]}, {kSd[c]}, Prediction::Epsilon);
  ddpm::SamplerConfig config;
  config.kind = ddpm::parse_sampler_kind(kind);
  config.steps = steps;
  config.spacing = ddpm::parse_spacing(spacing);
  config.corrector = corrector_steps > 0;
  config.corrector_steps = std::max<int64_t>(corrector_steps, 1);
  config.seed = 31;
  int64_t count = 0;
  const ddpm::Denoiser counted = [&](const at::Tensor& x, const at::Tensor& t) {
    ++count;
    return exact(x, t);
  };
  at::Tensor x = ddpm::sample(schedule, counted, config, 64, 1, 8, 8);
  if (calls) *calls = count;
  return x.to(at::kDouble).flatten();
}

TEST(Sampler, CorrectorKeepsDdimOnTheData) {
  ddpm::set_threads(1);
  for (std::string schedule_kind : {"linear", "cosine"}) {
    const auto schedule = make_schedule(schedule_kind);
    for (size_t c = 0; c < kMu.size(); ++c) {
      int64_t calls = 0;
      const at::Tensor x = sample_pc(schedule, "ddim", 100, "linspace", 2, c, &calls);
      EXPECT_EQ(calls, 100 + 2 * 99) << "two corrector steps after every step but the last";
      EXPECT_NEAR(x.mean().item<double>(), kMu[c], 0.05) << schedule_kind << " case " << c;
      EXPECT_NEAR(x.std().item<double>() / kSd[c], 1.0, 0.05) << schedule_kind << " case " << c;
    }
  }
}

TEST(Sampler, CorrectorRepairsTheVarianceOfFewStepAncestralSampling) {
  ddpm::set_threads(1);
  const auto schedule = make_schedule("linear");
  // Respaced ancestral, 50 steps, fixed small: sd −7%, −11%, −21% (exact law of the scheme).
  for (size_t c = 0; c < kMu.size(); ++c) {
    const at::Tensor plain = sample_pc(schedule, "ddpm", 50, "linspace", 0, c);
    const at::Tensor corrected = sample_pc(schedule, "ddpm", 50, "linspace", 2, c);
    const double before = plain.std().item<double>() / kSd[c] - 1.0;
    const double after = corrected.std().item<double>() / kSd[c] - 1.0;
    EXPECT_LT(before, -0.04) << "case " << c;
    EXPECT_LT(std::abs(after), 0.6 * std::abs(before)) << "case " << c << ": " << before << " -> " << after;
    EXPECT_NEAR(corrected.mean().item<double>(), kMu[c], 0.05);
  }
}

TEST(Sampler, DpmSolverWithCorrectorRestartsInFirstOrder) {
  // With Langevin moves between steps the multistep history is dropped, and first-order
  // DPM-Solver++ is DDIM η = 0 (Lu et al. 2022, §3.2): the two must agree sample by sample.
  ddpm::set_threads(1);
  const auto schedule = make_schedule("cosine");
  const at::Tensor dpm = sample_pc(schedule, "dpm++2m", 20, "trailing", 1, 1);
  const at::Tensor ddim = sample_pc(schedule, "ddim", 20, "trailing", 1, 1);
  EXPECT_LT((dpm - ddim).abs().max().item<double>(), 1e-3);
  EXPECT_GT((dpm - sample_pc(schedule, "dpm++2m", 20, "trailing", 0, 1)).abs().max().item<double>(), 0.01);
}

TEST(Sampler, ProgressCanStopEarlyAndReturnsCurrentX0) {
  const auto schedule = make_schedule("linear");
  for (std::string kind : {"ddpm", "ddim", "dpm++2m"}) {
    at::Tensor last_x;
    int64_t last_t = -1;
    ExactDenoiser exact(schedule, kMu, kSd, Prediction::V);
    exact.last_x = &last_x;
    exact.last_t = &last_t;
    ddpm::SamplerConfig config;
    config.kind = ddpm::parse_sampler_kind(kind);
    config.steps = 10;
    config.prediction = Prediction::V;
    std::vector<int64_t> progress_steps, trajectory_steps;
    const ddpm::ProgressFn progress = [&](int64_t step, int64_t total) {
      EXPECT_EQ(total, 10);
      progress_steps.push_back(step);
      return step < 3;
    };
    const ddpm::StepFn on_step = [&](int64_t step, int64_t total, const at::Tensor& x) {
      EXPECT_EQ(x.sizes(), at::IntArrayRef({4, 3, 2, 2}));
      trajectory_steps.push_back(step);
    };
    const at::Tensor got = ddpm::sample(schedule, as_denoiser(exact), config, 4, 3, 2, 2, 0, progress, on_step);
    EXPECT_EQ(progress_steps, (std::vector<int64_t>{1, 2, 3})) << kind;
    EXPECT_EQ(trajectory_steps, (std::vector<int64_t>{1, 2, 3})) << kind;
    // The third model call was at the third kept timestep; the result is E[x₀ | x_t] there.
    EXPECT_EQ(last_t, config.timesteps(1000)[2]) << kind;
    ExactDenoiser x0_of(schedule, kMu, kSd, Prediction::X0);
    const at::Tensor expected = x0_of(last_x, at::full({4}, last_t, at::kLong));
    EXPECT_TRUE(at::allclose(got, expected, 1e-4, 1e-4)) << kind;
  }
}

TEST(Sampler, ClippingKeepsSamplesInRange) {
  const auto schedule = make_schedule("linear");
  const std::vector<double> mu = {0.0}, sd = {2.0};  // wide data: x̂₀ often outside [−1, 1]
  ExactDenoiser exact(schedule, mu, sd, Prediction::Epsilon);
  ddpm::SamplerConfig config;
  config.steps = 50;
  config.seed = 4;
  const at::Tensor free = ddpm::sample(schedule, as_denoiser(exact), config, 256, 1, 2, 2);
  EXPECT_GT(free.abs().max().item<float>(), 1.5);
  config.clip_x0 = true;
  const at::Tensor clipped = ddpm::sample(schedule, as_denoiser(exact), config, 256, 1, 2, 2);
  EXPECT_LE(clipped.abs().max().item<float>(), 1.0f);
  config.clip_x0 = false;
  config.dynamic_threshold = true;
  config.kind = ddpm::SamplerKind::Ddim;
  const at::Tensor thresholded = ddpm::sample(schedule, as_denoiser(exact), config, 256, 1, 2, 2);
  EXPECT_LE(thresholded.abs().max().item<float>(), 1.0f);
}

TEST(Sampler, ClippingLeavesNarrowDataAlone) {
  // Data well inside [−1, 1]: clipping and dynamic thresholding (s ≥ 1) must not move it.
  const auto schedule = make_schedule("cosine");
  const std::vector<double> mu = {0.1}, sd = {0.1};
  ExactDenoiser exact(schedule, mu, sd, Prediction::Epsilon);
  ddpm::SamplerConfig config;
  config.steps = 100;
  const at::Tensor free = ddpm::sample(schedule, as_denoiser(exact), config, 512, 1, 2, 2);
  for (bool dynamic : {false, true}) {
    config.clip_x0 = !dynamic;
    config.dynamic_threshold = dynamic;
    const at::Tensor x = ddpm::sample(schedule, as_denoiser(exact), config, 512, 1, 2, 2);
    EXPECT_LT((x - free).abs().max().item<float>(), 1e-4) << (dynamic ? "dynamic" : "clip");
  }
}

TEST(DynamicThreshold, MatchesHandComputedCases) {
  // Image 0: |x| quantile 1.0 is 3 → divide by 3. Image 1: all |x| ≤ 1 → unchanged (s ≥ 1).
  const at::Tensor x = at::tensor({0.5, -3.0, 2.0, 0.1, 0.2, -0.9, 1.0, 0.0}, at::kFloat).reshape({2, 1, 2, 2});
  const at::Tensor y = ddpm::dynamic_threshold(x, 1.0);
  EXPECT_TRUE(at::allclose(y[0], x[0] / 3.0));
  EXPECT_TRUE(at::equal(y[1], x[1]));
  // Quantile 0.5 of {1.5, 2, 3, 4} (linear interpolation) is 2.5: clamp to ±2.5, divide.
  const at::Tensor z = at::tensor({1.5, -2.0, 3.0, -4.0}, at::kFloat).reshape({1, 1, 2, 2});
  const at::Tensor expected = at::tensor({0.6, -0.8, 1.0, -1.0}, at::kFloat).reshape({1, 1, 2, 2});
  EXPECT_TRUE(at::allclose(ddpm::dynamic_threshold(z, 0.5), expected));
}

// ------------------------------------------------------------ configuration

void expect_error_naming(ddpm::SamplerConfig c, const std::string& key) {
  try {
    c.validate(1000);
    ADD_FAILURE() << "no exception for " << key;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
}

TEST(SamplerConfig, ValidateNamesTheKey) {
  ddpm::SamplerConfig ok;
  EXPECT_NO_THROW(ok.validate(1000));
  auto c = ok;
  // Closed sets are enums now: a bad name is refused where the text is parsed, naming the key.
  auto expect_parse_error = [](auto parse, const std::string& text, const std::string& key) {
    try {
      parse(text);
      ADD_FAILURE() << "'" << text << "' was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  expect_parse_error(ddpm::parse_sampler_kind, "dpm++4m", "sampler");
  c = ok;
  c.steps = 1001;
  expect_error_naming(c, "steps");
  c.steps = -1;
  expect_error_naming(c, "steps");
  c = ok;
  expect_parse_error(ddpm::parse_spacing, "even", "spacing");
  c = ok;
  c.eta = 1.5;
  expect_error_naming(c, "eta");
  c.eta = -0.1;
  expect_error_naming(c, "eta");
  c = ok;
  expect_parse_error(ddpm::parse_variance, "learned", "variance");
  c = ok;
  c.dynamic_threshold_percentile = 0.0;
  expect_error_naming(c, "dynamic-threshold-percentile");
  c = ok;
  c.corrector_steps = 0;
  expect_error_naming(c, "corrector-steps");
  c = ok;
  c.corrector_snr = -1;
  expect_error_naming(c, "corrector-snr");
  // sample() validates too.
  const auto schedule = make_schedule("linear", 10);
  c = ok;
  c.steps = 11;
  EXPECT_THROW(ddpm::sample(schedule, as_denoiser(ExactDenoiser(schedule, {0.0}, {1.0}, Prediction::Epsilon)), c, 1,
                            1, 1, 1),
               std::invalid_argument);
}

TEST(SamplerConfig, DefaultStepsPerKind) {
  ddpm::SamplerConfig c;
  EXPECT_EQ(c.resolved_steps(1000), 1000);
  c.kind = ddpm::SamplerKind::Ddim;
  EXPECT_EQ(c.resolved_steps(1000), 50);
  c.kind = ddpm::SamplerKind::DpmSolver2M;
  EXPECT_EQ(c.resolved_steps(1000), 20);
  EXPECT_EQ(c.resolved_steps(10), 10);
  c.steps = 7;
  EXPECT_EQ(c.resolved_steps(1000), 7);
}

TEST(SamplerConfig, DefaultSpacingIsTrailing) {
  // Lin et al. 2024: few-step runs start at the true t = T − 1 (leading at 20 of 1000 steps
  // would start at 950); with all T steps nothing changes.
  ddpm::SamplerConfig c;
  EXPECT_EQ(c.spacing, ddpm::Spacing::Trailing);
  c.kind = ddpm::SamplerKind::DpmSolver2M;
  EXPECT_EQ(c.timesteps(1000).front(), 999);
  EXPECT_EQ(c.timesteps(1000).back(), 49);
  c.kind = ddpm::SamplerKind::Ddpm;
  std::vector<int64_t> all(1000);
  for (int64_t i = 0; i < 1000; ++i) all[static_cast<size_t>(i)] = 999 - i;
  EXPECT_EQ(c.timesteps(1000), all);
  // The command line's default is the same.
  CLI::App app;
  ddpm::SamplerConfig e;
  ddpm::cli::add_sampler_options(app, e);
  app.parse("--sampler ddim", false);
  EXPECT_EQ(e.spacing, ddpm::Spacing::Trailing);
}

TEST(SamplerOptions, BindsEveryFlag) {
  ddpm::SamplerConfig c;
  CLI::App app;
  ddpm::cli::add_sampler_options(app, c);
  app.parse(
      "--sampler ddim --steps 30 --spacing trailing --eta 0.5 --variance fixed-large --clip-x0 "
      "--dynamic-threshold --corrector --corrector-snr 0.2 --corrector-steps 3 --seed 9",
      false);
  EXPECT_EQ(c.kind, ddpm::SamplerKind::Ddim);
  EXPECT_EQ(c.steps, 30);
  EXPECT_EQ(c.spacing, ddpm::Spacing::Trailing);
  EXPECT_DOUBLE_EQ(c.eta, 0.5);
  EXPECT_EQ(c.variance, ddpm::Variance::FixedLarge);
  EXPECT_TRUE(c.clip_x0);
  EXPECT_TRUE(c.dynamic_threshold);
  EXPECT_TRUE(c.corrector);
  EXPECT_DOUBLE_EQ(c.corrector_snr, 0.2);
  EXPECT_EQ(c.corrector_steps, 3);
  EXPECT_EQ(c.seed, 9u);
  EXPECT_NO_THROW(c.validate(1000));

  ddpm::SamplerConfig d;
  CLI::App bad;
  ddpm::cli::add_sampler_options(bad, d);
  EXPECT_THROW(bad.parse("--sampler dpm++4m", false), CLI::ValidationError);
  // An app with its own --seed keeps it.
  uint64_t train_seed = 0;
  CLI::App train;
  train.add_option("--seed", train_seed);
  ddpm::SamplerConfig e;
  EXPECT_NO_THROW(ddpm::cli::add_sampler_options(train, e));
  train.parse("--seed 5", false);
  EXPECT_EQ(train_seed, 5u);
}

}  // namespace
