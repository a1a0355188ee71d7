// Forward process, posterior, parameterisations, loss weights.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ddpm/math/diffusion.hpp"
#include "ddpm/math/schedule.hpp"

namespace {

using ddpm::NoiseSchedule;
using ddpm::Prediction;
using ddpm::ScheduleConfig;

NoiseSchedule make(const std::string& kind, bool ztsnr = false) {
  ScheduleConfig c;
  c.kind = kind;
  c.zero_terminal_snr = ztsnr;
  return NoiseSchedule(c);
}

at::Tensor full_t(int64_t n, int64_t t) { return at::full({n}, t, at::kLong); }

// Residual r = x_t − √ᾱ_t x₀ of draws x_t ~ q(x_t | x₀) must be N(0, 1 − ᾱ_t), independent of x₀.
// Tolerances are 5 standard errors of each estimate (N draws), so a correct implementation
// fails with probability < 1e-5; the seeds are fixed, so the test is deterministic anyway.
void expect_marginal(const at::Tensor& xt, const at::Tensor& x0, double alpha_bar, const std::string& what) {
  const double n = static_cast<double>(xt.numel());
  const at::Tensor r = (xt.to(at::kDouble) - std::sqrt(alpha_bar) * x0.to(at::kDouble)).flatten();
  const double var = 1.0 - alpha_bar, sd = std::sqrt(var);
  EXPECT_NEAR(r.mean().item<double>(), 0.0, 5 * sd / std::sqrt(n)) << what;
  EXPECT_NEAR(r.var().item<double>(), var, 5 * std::sqrt(2.0) * var / std::sqrt(n)) << what;
  // x₀ ~ U(−1, 1) has variance 1/3; cov(r, x₀) has standard error sd·√(1/3)/√N.
  const at::Tensor xc = x0.to(at::kDouble).flatten() - x0.to(at::kDouble).mean();
  EXPECT_NEAR((r * xc).mean().item<double>(), 0.0, 5 * sd * std::sqrt(1.0 / 3.0) / std::sqrt(n)) << what;
}

TEST(ForwardProcess, QSampleMomentsOver100kDraws) {
  at::manual_seed(7);
  const int64_t N = 100000;
  for (const std::string kind : {"linear", "cosine", "sigmoid-logsnr"}) {
    NoiseSchedule s = make(kind);
    for (int64_t t : {0, 10, 250, 999}) {
      const at::Tensor x0 = at::rand({N, 1}) * 2 - 1;
      const at::Tensor xt = ddpm::q_sample(s, x0, full_t(N, t), at::randn({N, 1}));
      ASSERT_EQ(xt.sizes(), x0.sizes());
      ASSERT_EQ(xt.scalar_type(), at::kFloat);
      expect_marginal(xt, x0, s.alpha_bar64[t].item<double>(), kind + " t=" + std::to_string(t));
    }
  }
}

TEST(ForwardProcess, QSampleUsesEachSamplesOwnTimestep) {
  NoiseSchedule s = make("linear");
  const at::Tensor x0 = at::ones({3, 2, 4, 4});
  const at::Tensor noise = at::zeros({3, 2, 4, 4});
  const at::Tensor t = at::tensor(std::vector<int64_t>{0, 500, 999});
  const at::Tensor xt = ddpm::q_sample(s, x0, t, noise);
  for (int64_t b = 0; b < 3; ++b)
    EXPECT_TRUE(at::allclose(xt[b], at::full({2, 4, 4}, std::sqrt(s.alpha_bar64[t[b].item<int64_t>()].item<double>()))));
}

TEST(ForwardProcess, IteratedStepsMatchTheClosedFormInDistribution) {
  at::manual_seed(11);
  const int64_t N = 100000;
  for (const std::string kind : {"linear", "cosine"}) {
    NoiseSchedule s = make(kind);
    const at::Tensor x0 = at::rand({N}) * 2 - 1;
    at::Tensor x = x0;
    // x after applying the steps i = 0..t is distributed as q(x_t | x₀) (ᾱ_t = Π_{i≤t} α_i).
    for (int64_t i = 0; i <= 400; ++i) {
      x = ddpm::q_step(s, x, full_t(N, i), at::randn({N}));
      if (i == 0 || i == 30 || i == 400)
        expect_marginal(x, x0, s.alpha_bar64[i].item<double>(), kind + " after steps 0.." + std::to_string(i));
    }
  }
}

TEST(ForwardProcess, QStepIsTheMarkovKernel) {
  NoiseSchedule s = make("quadratic");
  const at::Tensor xp = at::randn({4, 3});
  const at::Tensor noise = at::randn({4, 3});
  const at::Tensor t = at::tensor(std::vector<int64_t>{1, 2, 700, 999});
  const at::Tensor x = ddpm::q_step(s, xp, t, noise);
  for (int64_t b = 0; b < 4; ++b) {
    const double beta = s.beta64[t[b].item<int64_t>()].item<double>();
    // x_t = √(1 − β_t) x_{t−1} + √β_t ε   (DDPM eq. 2)
    EXPECT_TRUE(at::allclose(x[b], std::sqrt(1 - beta) * xp[b] + std::sqrt(beta) * noise[b], 1e-5, 1e-6));
  }
}

// ---------------------------------------------------------------- posterior

TEST(Posterior, MatchesBayesClosedForm) {
  // q(x_{t−1} | x_t, x₀) ∝ q(x_t | x_{t−1}) q(x_{t−1} | x₀): a product of Gaussians with
  // precision 1/(1−ᾱ_{t−1}) + α_t/β_t and mean var·(√ᾱ_{t−1} x₀/(1−ᾱ_{t−1}) + √α_t x_t/β_t).
  for (const std::string kind : {"linear", "cosine", "sigmoid"}) {
    for (bool ztsnr : {false, true}) {
      NoiseSchedule s = make(kind, ztsnr);
      const int64_t B = 6;
      const at::Tensor t = at::tensor(std::vector<int64_t>{1, 2, 17, 500, 998, 999});
      const at::Tensor x0 = at::rand({B, 1, 2, 2}, at::kDouble) * 2 - 1;
      const at::Tensor xt = at::randn({B, 1, 2, 2}, at::kDouble);
      const ddpm::Posterior p = ddpm::q_posterior(s, x0.to(at::kFloat), xt.to(at::kFloat), t);
      ASSERT_EQ(p.mean.sizes(), x0.sizes());
      ASSERT_EQ(p.variance.dim(), 4);
      for (int64_t b = 0; b < B; ++b) {
        const int64_t i = t[b].item<int64_t>();
        const double beta = s.beta64[i].item<double>(), ab_prev = s.alpha_bar64[i - 1].item<double>();
        const double alpha = 1 - beta;
        const double var = 1.0 / (1.0 / (1 - ab_prev) + alpha / beta);
        const at::Tensor mean = var * (std::sqrt(ab_prev) * x0[b] / (1 - ab_prev) + std::sqrt(alpha) * xt[b] / beta);
        SCOPED_TRACE(kind + (ztsnr ? "+ztsnr" : "") + " t=" + std::to_string(i));
        EXPECT_NEAR(p.variance[b].item<double>(), var, 1e-5 * var);
        EXPECT_NEAR(p.log_variance[b].item<double>(), std::log(var), 1e-5);
        EXPECT_TRUE(at::allclose(p.mean[b].to(at::kDouble), mean, 1e-5, 1e-6))
            << p.mean[b] << "\nvs\n" << mean;
      }
    }
  }
}

TEST(Posterior, AtStepZeroReturnsX0WithClippedLogVariance) {
  NoiseSchedule s = make("linear");
  const at::Tensor x0 = at::randn({2, 3});
  const at::Tensor xt = at::randn({2, 3});
  const ddpm::Posterior p = ddpm::q_posterior(s, x0, xt, full_t(2, 0));
  EXPECT_TRUE(at::allclose(p.mean, x0, 1e-6, 1e-7));
  EXPECT_EQ(p.variance[0].item<float>(), 0.0f);
  // ln β̃_0 = −inf is replaced by ln β̃_1 (DDPM's posterior_log_variance_clipped).
  EXPECT_NEAR(p.log_variance[0].item<double>(), std::log(s.posterior_variance64[1].item<double>()), 1e-5);
}

// ---------------------------------------------------------------- parameterisations

struct Batch {
  at::Tensor x0, eps, t, ab, xt;
};
// t covers 0 and the last step (or T−2 when `avoid_last`, where ᾱ_{T−1} = 0 makes x₀ from ε undefined).
Batch make_batch(const NoiseSchedule& s, at::ScalarType dtype, int64_t B = 256, bool avoid_last = false) {
  Batch b;
  b.x0 = (at::rand({B, 3, 4, 4}) * 2 - 1).to(dtype);
  b.eps = at::randn({B, 3, 4, 4}).to(dtype);
  const int64_t last = s.num_timesteps() - (avoid_last ? 2 : 1);
  b.t = at::randint(0, last + 1, {B}, at::kLong);
  b.t[0] = 0;
  b.t[1] = last;
  b.ab = NoiseSchedule::extract(dtype == at::kDouble ? s.alpha_bar64 : s.alpha_bar, b.t, 4);
  const at::Tensor abd = b.ab.to(at::kDouble);
  // x_t from its definition, independently of q_sample.
  b.xt = (abd.sqrt() * b.x0.to(at::kDouble) + (1 - abd).sqrt() * b.eps.to(at::kDouble)).to(dtype);
  return b;
}

// max |a − b| / (scale · ulp) where ulp is float32's epsilon.
double ulps(const at::Tensor& a, const at::Tensor& b, const at::Tensor& scale) {
  return ((a.to(at::kDouble) - b.to(at::kDouble)).abs() / (scale.to(at::kDouble) * 1.1920929e-7)).max().item<double>();
}

TEST(Parameterisations, ExactInFloat64) {
  at::manual_seed(3);
  NoiseSchedule s = make("cosine");
  const Batch b = make_batch(s, at::kDouble);
  const at::Tensor v = ddpm::v_from_x0_eps(b.x0, b.eps, b.ab);
  EXPECT_EQ(v.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::allclose(ddpm::x0_from_v(b.xt, v, b.ab), b.x0, 0, 1e-12));
  EXPECT_TRUE(at::allclose(ddpm::eps_from_v(b.xt, v, b.ab), b.eps, 0, 1e-12));
  EXPECT_TRUE(at::allclose(ddpm::eps_from_x0(b.xt, b.x0, b.ab), b.eps, 0, 1e-8));
  // x₀ from ε divides by √ᾱ ≥ √ᾱ_{T−1} ≈ 5e-5.
  EXPECT_TRUE(at::allclose(ddpm::x0_from_eps(b.xt, b.eps, b.ab), b.x0, 0, 1e-9));
  // v = √ᾱ ε − √(1−ᾱ) x₀ by definition, and (ε, x₀) ↦ (x_t, v) is a rotation: |x_t|² + |v|² = |x₀|² + |ε|².
  const at::Tensor abd = b.ab;
  EXPECT_TRUE(at::allclose(v, abd.sqrt() * b.eps - (1 - abd).sqrt() * b.x0, 0, 1e-14));
  EXPECT_TRUE(at::allclose(b.xt.pow(2) + v.pow(2), b.x0.pow(2) + b.eps.pow(2), 0, 1e-12));
}

TEST(Parameterisations, RoundTripsToFloat32Precision) {
  at::manual_seed(5);
  for (bool ztsnr : {false, true}) {
    NoiseSchedule s = make("linear", ztsnr);
    const Batch b = make_batch(s, at::kFloat, 256, ztsnr);
    const at::Tensor abd = b.ab.to(at::kDouble);
    const at::Tensor mag = b.x0.abs() + b.eps.abs() + b.xt.abs() + 1;  // the size of the terms involved
    // v ↔ (x₀, ε): no divisions, a few ulps of the magnitudes.
    const at::Tensor v = ddpm::v_from_x0_eps(b.x0, b.eps, b.ab);
    EXPECT_EQ(v.scalar_type(), at::kFloat);
    EXPECT_LT(ulps(ddpm::v_from_x0_eps(ddpm::x0_from_v(b.xt, v, b.ab), ddpm::eps_from_v(b.xt, v, b.ab), b.ab), v, mag), 8);
    EXPECT_LT(ulps(ddpm::x0_from_v(b.xt, v, b.ab), b.x0, mag), 8);
    EXPECT_LT(ulps(ddpm::eps_from_v(b.xt, v, b.ab), b.eps, mag), 8);
    // ε ↔ x₀: one division by √ᾱ or √(1−ᾱ) scales the rounding error by its inverse.
    const at::Tensor x0e = ddpm::x0_from_eps(b.xt, b.eps, b.ab);
    EXPECT_LT(ulps(x0e, b.x0, mag / abd.sqrt()), 8);
    EXPECT_LT(ulps(ddpm::eps_from_x0(b.xt, x0e, b.ab), b.eps, mag / (abd * (1 - abd)).sqrt()), 16);
    const at::Tensor e0 = ddpm::eps_from_x0(b.xt, b.x0, b.ab);
    EXPECT_LT(ulps(e0, b.eps, mag / (1 - abd).sqrt()), 8);
    EXPECT_LT(ulps(ddpm::x0_from_eps(b.xt, e0, b.ab), b.x0, mag / (abd * (1 - abd)).sqrt()), 16);
    // predict_* and training_target agree for every parameterisation: a perfect network.
    for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
      const at::Tensor out = ddpm::training_target(p, b.x0, b.eps, b.ab);
      EXPECT_LT(ulps(ddpm::predict_eps(p, b.xt, out, b.ab), b.eps, mag / (1 - abd).sqrt()), 8) << ddpm::to_string(p);
      EXPECT_LT(ulps(ddpm::predict_x0(p, b.xt, out, b.ab), b.x0, mag / abd.sqrt()), 8) << ddpm::to_string(p);
    }
  }
}

TEST(Parameterisations, VPredictionWorksAtZeroTerminalSnr) {
  // At ᾱ = 0, x_t = ε and v = −x₀: v-prediction still recovers both.
  NoiseSchedule s = make("linear", true);
  const at::Tensor t = full_t(4, 999);
  const at::Tensor ab = NoiseSchedule::extract(s.alpha_bar, t, 2);
  const at::Tensor x0 = at::randn({4, 5}), eps = at::randn({4, 5});
  const at::Tensor xt = ddpm::q_sample(s, x0, t, eps);
  EXPECT_TRUE(at::equal(xt, eps));
  const at::Tensor v = ddpm::training_target(Prediction::V, x0, eps, ab);
  EXPECT_TRUE(at::allclose(v, -x0));
  EXPECT_TRUE(at::allclose(ddpm::predict_x0(Prediction::V, xt, v, ab), x0));
  EXPECT_TRUE(at::allclose(ddpm::predict_eps(Prediction::V, xt, v, ab), eps));
}

TEST(Parameterisations, ScoreOfAPointMassIsTheGaussianScore) {
  // With x₀ fixed, p(x_t) = N(√ᾱ x₀, (1−ᾱ) I), whose score is −(x_t − √ᾱ x₀)/(1 − ᾱ).
  NoiseSchedule s = make("cosine");
  const Batch b = make_batch(s, at::kDouble, 32);
  const at::Tensor score = ddpm::score_from_eps(b.eps, b.ab);
  EXPECT_TRUE(at::allclose(score, -(b.xt - b.ab.sqrt() * b.x0) / (1 - b.ab), 1e-9, 1e-9));
}

TEST(Parameterisations, ParseAndPrint) {
  for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V})
    EXPECT_EQ(ddpm::parse_prediction(ddpm::to_string(p)), p);
  EXPECT_EQ(ddpm::parse_prediction("eps"), Prediction::Epsilon);
  EXPECT_EQ(ddpm::parse_prediction("sample"), Prediction::X0);
  EXPECT_EQ(ddpm::parse_prediction("v_prediction"), Prediction::V);
  try {
    ddpm::parse_prediction("score");
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("prediction"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("score"), std::string::npos);
  }
  for (auto w : {ddpm::LossWeighting::None, ddpm::LossWeighting::MinSNR})
    EXPECT_EQ(ddpm::parse_loss_weighting(ddpm::to_string(w)), w);
  EXPECT_EQ(ddpm::parse_loss_weighting("simple"), ddpm::LossWeighting::None);
  EXPECT_THROW(ddpm::parse_loss_weighting("p2"), std::invalid_argument);
}

// ---------------------------------------------------------------- loss weights

TEST(LossWeights, MinSnrIsOneObjectiveInEveryParameterisation) {
  // Hang et al. 2023: each weight turns its loss into min(SNR, γ)·‖x̂₀ − x₀‖². Check it with the
  // library's own conversions: perturb x₀ by δ, map the prediction into ε and v space, and
  // compare the weighted squared errors per sample.
  at::manual_seed(9);
  NoiseSchedule s = make("cosine");
  const Batch b = make_batch(s, at::kDouble, 64);
  const at::Tensor delta = 1e-3 * at::randn_like(b.x0);
  const at::Tensor x0_hat = b.x0 + delta;
  const at::Tensor eps_hat = ddpm::eps_from_x0(b.xt, x0_hat, b.ab);
  const at::Tensor v_hat = ddpm::v_from_x0_eps(x0_hat, eps_hat, b.ab);
  const at::Tensor snr = b.ab / (1 - b.ab);
  const double gamma = 5.0;
  const at::Tensor expected = at::clamp_max(snr, gamma).flatten() * delta.pow(2).sum({1, 2, 3});
  auto weighted = [&](Prediction p, const at::Tensor& pred) {
    const at::Tensor w = ddpm::loss_weight(p, ddpm::LossWeighting::MinSNR, b.ab, gamma);
    EXPECT_EQ(w.sizes(), b.ab.sizes());
    const at::Tensor target = ddpm::training_target(p, b.x0, b.eps, b.ab);
    return w.flatten() * (pred - target).pow(2).sum({1, 2, 3});
  };
  EXPECT_TRUE(at::allclose(weighted(Prediction::X0, x0_hat), expected, 1e-6, 0));
  EXPECT_TRUE(at::allclose(weighted(Prediction::Epsilon, eps_hat), expected, 1e-6, 0));
  EXPECT_TRUE(at::allclose(weighted(Prediction::V, v_hat), expected, 1e-6, 0));
}

TEST(LossWeights, ShapeOfTheWeights) {
  NoiseSchedule s = make("linear", true);
  const at::Tensor ab = s.alpha_bar;  // float32, includes ᾱ = 0 at the end
  const at::Tensor snr = ab.to(at::kDouble) / (1 - ab.to(at::kDouble));
  for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
    const at::Tensor none = ddpm::loss_weight(p, ddpm::LossWeighting::None, ab);
    EXPECT_TRUE(at::equal(none, at::ones_like(ab)));
    const at::Tensor w = ddpm::loss_weight(p, ddpm::LossWeighting::MinSNR, ab, 5.0);
    EXPECT_EQ(w.scalar_type(), at::kFloat);
    EXPECT_FALSE(w.isnan().any().item<bool>()) << ddpm::to_string(p);
    EXPECT_FALSE(w.isinf().any().item<bool>()) << ddpm::to_string(p);
  }
  const at::Tensor we = ddpm::loss_weight(Prediction::Epsilon, ddpm::LossWeighting::MinSNR, ab, 5.0).to(at::kDouble);
  const at::Tensor wx = ddpm::loss_weight(Prediction::X0, ddpm::LossWeighting::MinSNR, ab, 5.0).to(at::kDouble);
  const at::Tensor wv = ddpm::loss_weight(Prediction::V, ddpm::LossWeighting::MinSNR, ab, 5.0).to(at::kDouble);
  const at::Tensor low = snr <= 5.0, high = snr > 5.0;
  ASSERT_TRUE(low.any().item<bool>() && high.any().item<bool>());
  // ε: 1 where SNR ≤ γ (including SNR = 0), γ/SNR above; x₀: SNR below γ, γ above; v: ≤ 1, < 1 everywhere.
  EXPECT_TRUE(at::allclose(we.masked_select(low), at::ones_like(we.masked_select(low))));
  EXPECT_TRUE(at::allclose(we.masked_select(high), 5.0 / snr.masked_select(high), 1e-6));
  EXPECT_TRUE(at::allclose(wx.masked_select(low), snr.masked_select(low), 1e-6));
  EXPECT_TRUE(at::allclose(wx.masked_select(high), at::full_like(wx.masked_select(high), 5.0)));
  EXPECT_TRUE((wv < 1).all().item<bool>());
  EXPECT_EQ(we[999].item<double>(), 1.0);
  EXPECT_EQ(wv[999].item<double>(), 0.0);
  EXPECT_THROW(ddpm::loss_weight(Prediction::V, ddpm::LossWeighting::MinSNR, ab, 0.0), std::invalid_argument);
}

// The trainer's target and weight take ᾱ from alpha_bar_at (float64). At small t of the
// linear schedule ᾱ ≈ 1 − 1e-4: float32 ᾱ keeps ~3 digits of 1 − ᾱ, so a float32 route is
// off by ~1e-4 relative, while the float64 route matches the closed forms to 1e-6.
TEST(TrainingCoefficients, ComeFromTheFloat64Table) {
  const NoiseSchedule s = make("linear");
  const at::Tensor t = at::tensor(std::vector<int64_t>{0, 1, 4, 20}, at::kLong);
  const at::Tensor ab = ddpm::alpha_bar_at(s, t, 4, c10::kCPU);
  ASSERT_EQ(ab.sizes(), at::IntArrayRef({4, 1, 1, 1}));
  ASSERT_EQ(ab.scalar_type(), at::kDouble);
  const at::Tensor x0 = at::ones({4, 1, 1, 1}), eps = at::zeros({4, 1, 1, 1});
  // ᾱ_i = Π_{j≤i}(1 − β_j), β_j = 1e-4 + (0.02 − 1e-4)·j/999: computed here from the definition.
  std::vector<double> one_minus(4);
  const int64_t idx[] = {0, 1, 4, 20};
  for (int k = 0; k < 4; ++k) {
    double prod = 1.0;
    for (int64_t j = 0; j <= idx[k]; ++j) prod *= 1.0 - (1e-4 + (0.02 - 1e-4) * static_cast<double>(j) / 999.0);
    one_minus[k] = 1.0 - prod;
  }
  auto max_rel = [&](const at::Tensor& ab_used) {
    // v = √ᾱ ε − √(1−ᾱ) x₀ = −√(1−ᾱ); min-SNR ε weight = min(1, γ/SNR) = γ(1−ᾱ)/ᾱ here.
    const at::Tensor v = ddpm::training_target(Prediction::V, x0, eps, ab_used).to(at::kDouble).flatten();
    const at::Tensor w = ddpm::loss_weight(Prediction::Epsilon, ddpm::LossWeighting::MinSNR, ab_used, 5.0)
                             .to(at::kDouble)
                             .flatten();
    double worst = 0.0;
    for (int k = 0; k < 4; ++k) {
      const double om = one_minus[k];
      worst = std::max(worst, std::abs(v[k].item<double>() / -std::sqrt(om) - 1.0));
      worst = std::max(worst, std::abs(w[k].item<double>() / (5.0 * om / (1.0 - om)) - 1.0));
    }
    return worst;
  };
  EXPECT_LT(max_rel(ab), 1e-6);
  // The float32 table (what the trainer used before) cannot pass that bar: the check discriminates.
  EXPECT_GT(max_rel(NoiseSchedule::extract(s.alpha_bar, t, 4)), 1e-5);
}

}  // namespace
