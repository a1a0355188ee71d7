// Guidance and steering against exact truths, with the exact denoiser of a two-class Gaussian
// mixture (gaussian_mixture_denoiser.hpp): class-conditional sampling, classifier-free
// guidance, SDEdit, RePaint and ILVR, and the loop's RePaint path.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ddpm/models/unet.hpp"
#include "ddpm/runtime.hpp"
#include "ddpm/samplers/sampler.hpp"
#include "ddpm/samplers/steering.hpp"
#include "gaussian_denoiser.hpp"
#include "gaussian_mixture_denoiser.hpp"
#include "samplers/internal.hpp"

namespace {

using ddpm::NoiseSchedule;
using ddpm::Prediction;
using ddpm::test::MixtureDenoiser;

NoiseSchedule linear(int64_t T = 1000) {
  ddpm::ScheduleConfig c;
  c.kind = "linear";
  c.timesteps = T;
  return NoiseSchedule(c);
}

double alpha_bar(const NoiseSchedule& s, int64_t t) {
  return s.alpha_bar64.to(at::kCPU, at::kDouble)[t].item<double>();
}

ddpm::ConditionalDenoiser as_conditional(const MixtureDenoiser& d) {
  return [d](const at::Tensor& x, const at::Tensor& t, const at::Tensor& l) { return d(x, t, l); };
}

at::Tensor labels(int64_t n, int64_t c) { return at::full({n}, c, at::kLong); }

const char* name_of(Prediction p) { return p == Prediction::Epsilon ? "eps" : p == Prediction::X0 ? "x0" : "v"; }

// Class 0: N(−0.8, 1), class 1: N(+0.8, 1) on every pixel. With sd = 1 and σ² = β (fixed
// large) the reverse process of each class is exact (it is N(0, 1) shifted: Cov(x_{t−1}, x_t) = √α_t,
// Var = 1, so Var(x_{t−1} | x_t) = β_t); the output x̂₀ at kept[0] then has mean mu_c and
// variance ᾱ_{kept[0]} (the existing Gaussian sampler test, shifted).
const std::vector<double> kMu{-0.8, 0.8}, kSd{1.0, 1.0};

TEST(Guidance, ConditionalSamplingDrawsTheRequestedComponent) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = linear();
  const int64_t n = 1024, pixels = 16;
  const double N = static_cast<double>(n * pixels);
  for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
    ddpm::SamplerConfig config;
    config.kind = ddpm::SamplerKind::Ddpm;
    config.variance = ddpm::Variance::FixedLarge;
    config.steps = 100;
    config.prediction = p;
    config.seed = 5;
    const auto kept = ddpm::timestep_subset(1000, 100, config.spacing);
    const double ab0 = alpha_bar(schedule, kept.front());
    for (int64_t c : {0, 1}) {
      const at::Tensor out = ddpm::sample(
          schedule, ddpm::with_labels(as_conditional(MixtureDenoiser(schedule, kMu, kSd, p)), labels(n, c)), config,
          n, 1, 4, 4);
      const at::Tensor d = out.to(at::kDouble).flatten();
      const double mean = d.mean().item<double>(), var = d.var().item<double>();
      const double mu = kMu[static_cast<size_t>(c)];
      EXPECT_NEAR(mean, mu, 5 * std::sqrt(ab0 / N)) << name_of(p) << " class " << c;
      EXPECT_NEAR(var / ab0, 1.0, 5 * std::sqrt(2 / N)) << name_of(p) << " class " << c;
    }
  }
}

TEST(Guidance, WeightZeroIsConditionalSamplingBitForBit) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = linear();
  const int64_t n = 12;
  at::Tensor l = at::arange(n, at::kLong) % 2;  // both classes in one batch
  for (auto kind : {ddpm::SamplerKind::Ddpm, ddpm::SamplerKind::Ddim, ddpm::SamplerKind::DpmSolver2M}) {
    for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
      ddpm::SamplerConfig config;
      config.kind = kind;
      config.steps = 20;
      config.prediction = p;
      config.seed = 9;
      const MixtureDenoiser d(schedule, kMu, {0.5, 0.3}, p);
      const at::Tensor conditional = ddpm::sample(schedule, ddpm::with_labels(as_conditional(d), l), config, n, 1, 4, 4);
      const at::Tensor guided =
          ddpm::sample(schedule, ddpm::classifier_free_guidance(as_conditional(d), l, 0.0), config, n, 1, 4, 4);
      EXPECT_TRUE(at::equal(conditional, guided)) << ddpm::to_string(kind) << " " << name_of(p);
      // And guidance does something: w = 3 moves the samples away from the other class.
      const at::Tensor strong =
          ddpm::sample(schedule, ddpm::classifier_free_guidance(as_conditional(d), l, 3.0), config, n, 1, 4, 4);
      EXPECT_FALSE(at::allclose(conditional, strong)) << ddpm::to_string(kind) << " " << name_of(p);
    }
  }
}

// Guidance combines the raw outputs; the result must not depend on what the network predicts.
// The same exact mixture as an ε, x₀ or v model gives the same guided samples (up to float32).
TEST(Guidance, SameSamplesForEpsilonX0AndVModels) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = linear();
  const int64_t n = 16;
  const at::Tensor l = at::arange(n, at::kLong) % 2;
  ddpm::SamplerConfig config;
  config.kind = ddpm::SamplerKind::Ddim;
  config.steps = 25;
  config.seed = 4;
  std::vector<at::Tensor> out;
  for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V}) {
    config.prediction = p;
    out.push_back(ddpm::sample(
        schedule, ddpm::classifier_free_guidance(as_conditional(MixtureDenoiser(schedule, kMu, {0.5, 0.3}, p)), l, 2.0),
        config, n, 1, 4, 4));
  }
  EXPECT_LT((out[0] - out[1]).abs().max().item<double>(), 1e-3);
  EXPECT_LT((out[0] - out[2]).abs().max().item<double>(), 1e-3);
  // Guided class means lie beyond the conditional ones (w > 0 sharpens toward the class).
  const at::Tensor m = out[1].reshape({n, -1}).mean(1);
  for (int64_t b = 0; b < n; ++b) EXPECT_EQ(m[b].item<double>() > 0, b % 2 == 1) << b;
}

TEST(Guidance, RefusesBadWeightsAndLabelCounts) {
  const NoiseSchedule schedule = linear(100);
  const MixtureDenoiser d(schedule, kMu, kSd, Prediction::Epsilon);
  EXPECT_THROW(ddpm::classifier_free_guidance(as_conditional(d), labels(4, 0), -1.0), std::invalid_argument);
  ddpm::SamplerConfig config;
  config.steps = 2;
  EXPECT_THROW(ddpm::sample(schedule, ddpm::with_labels(as_conditional(d), labels(3, 0)), config, 4, 1, 4, 4),
               std::invalid_argument);
}

// ddpm-eval's sampled sets and the trainer's evaluations: an unconditional model gets no labels,
// a conditional one asks for class k mod K for image k of the whole set, with the guidance given.
TEST(Guidance, BalancedDenoiserAsksForClassKModKOrNone) {
  const NoiseSchedule schedule = linear(100);
  std::vector<at::Tensor> seen;
  const ddpm::ConditionalDenoiser spy = [&seen](const at::Tensor& x, const at::Tensor&, const at::Tensor& l) {
    seen.push_back(l);
    return at::zeros_like(x);
  };
  const at::Tensor x = at::zeros({4, 1, 2, 2}), t = at::full({4}, 50, at::kLong);
  ddpm::Guidance none;
  ddpm::balanced_denoiser(spy, 0, 3, 4, none, schedule)(x, t);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].defined());
  seen.clear();
  ddpm::balanced_denoiser(spy, 3, 3, 4, none, schedule)(x, t);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(at::equal(seen[0], at::tensor({0, 1, 2, 0}, at::kLong)));
  seen.clear();
  ddpm::Guidance w2;
  w2.weight = 2.0;
  // Guided: one forward of [conditional; "no class"], twice the batch.
  ddpm::balanced_denoiser(spy, 2, 3, 4, w2, schedule)(x, t);
  ASSERT_EQ(seen.size(), 1u);
  ASSERT_EQ(seen[0].numel(), 8);
  EXPECT_TRUE(at::equal(seen[0].narrow(0, 0, 4), at::tensor({1, 0, 1, 0}, at::kLong)));
  EXPECT_FALSE(seen[0].narrow(0, 4, 4).ge(0).logical_and(seen[0].narrow(0, 4, 4).lt(2)).any().item<bool>());
  // Guidance::validate names the option.
  ddpm::Guidance bad;
  bad.weight = -1.0;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
  bad.weight = 1.0;
  bad.sigma_low = 3.0;
  bad.sigma_high = 3.0;
  try {
    bad.validate();
    ADD_FAILURE() << "an empty interval passed";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--guidance-interval"), std::string::npos) << e.what();
  }
}

// ------------------------------------------------------------ SDEdit

// Guidance on a σ interval: at each t the output is the guided one where σ_t = √((1 − ᾱ_t)/ᾱ_t)
// is in (low, high] and the conditional one elsewhere, per image of a mixed batch too.
TEST(Guidance, IntervalGuidesExactlyTheStepsWhoseSigmaIsInside) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = linear();
  const MixtureDenoiser exact(schedule, kMu, kSd, Prediction::Epsilon);
  const at::Tensor c = labels(4, 1);
  const ddpm::Denoiser cond = ddpm::with_labels(as_conditional(exact), c);
  const ddpm::Denoiser cfg = ddpm::classifier_free_guidance(as_conditional(exact), c, 3.0);
  ddpm::Guidance g;
  g.weight = 3.0;
  g.sigma_low = 0.5;
  g.sigma_high = 2.0;
  EXPECT_EQ(g.describe(), "guidance 3 for σ in (0.5, 2]");
  const ddpm::Denoiser interval = ddpm::guided(as_conditional(exact), c, g, schedule);
  at::manual_seed(3);
  const at::Tensor x = at::randn({4, 1, 2, 2});
  int64_t inside = 0;
  std::vector<int64_t> ts;
  for (int64_t t = 0; t < 1000; t += 37) ts.push_back(t);
  for (int64_t t : ts) {
    const double ab = alpha_bar(schedule, t), sigma = std::sqrt((1 - ab) / ab);
    const bool in = sigma > 0.5 && sigma <= 2.0;
    inside += in;
    const at::Tensor tt = at::full({4}, t, at::kLong);
    EXPECT_TRUE(at::equal(interval(x, tt), in ? cfg(x, tt) : cond(x, tt))) << "t " << t << ", sigma " << sigma;
  }
  EXPECT_GT(inside, 3);
  EXPECT_LT(inside, static_cast<int64_t>(ts.size()) - 3);
  // A batch that mixes a guided and an unguided t keeps each image's own.
  int64_t t_in = -1, t_out = -1;
  for (int64_t t : ts) {
    const double ab = alpha_bar(schedule, t), sigma = std::sqrt((1 - ab) / ab);
    (sigma > 0.5 && sigma <= 2.0 ? t_in : t_out) = t;
  }
  const at::Tensor mixed = at::tensor({t_in, t_out, t_in, t_out}, at::kLong);
  const at::Tensor got = interval(x, mixed), want_in = cfg(x, mixed), want_out = cond(x, mixed);
  for (int64_t i = 0; i < 4; ++i)
    EXPECT_TRUE(at::allclose(got[i], (i % 2 == 0 ? want_in : want_out)[i], 0, 0)) << "image " << i;
  // The whole range is plain guidance, weight 0 is conditional sampling.
  ddpm::Guidance all;
  all.weight = 3.0;
  EXPECT_FALSE(all.limited());
  EXPECT_TRUE(at::equal(ddpm::guided(as_conditional(exact), c, all, schedule)(x, mixed), want_in));
  ddpm::Guidance none;
  EXPECT_TRUE(at::equal(ddpm::guided(as_conditional(exact), c, none, schedule)(x, mixed), want_out));
  g.sigma_low = 2.0;
  EXPECT_THROW(ddpm::guided(as_conditional(exact), c, g, schedule), std::invalid_argument);
}

TEST(Sdedit, StrengthZeroReturnsTheInputAndOneIsUnconditionalSampling) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = linear();
  const int64_t n = 6;
  const at::Tensor init = at::rand({n, 1, 4, 4}, at::kFloat) * 2 - 1;
  const ddpm::test::ExactDenoiser exact(schedule, {0.2}, {0.5}, Prediction::Epsilon);
  const ddpm::Denoiser d = ddpm::test::as_denoiser(exact);
  for (auto kind : {ddpm::SamplerKind::Ddpm, ddpm::SamplerKind::Ddim, ddpm::SamplerKind::DpmSolver2M}) {
    ddpm::SamplerConfig config;
    config.kind = kind;
    config.steps = 10;
    config.seed = 13;
    EXPECT_TRUE(at::equal(ddpm::sample(schedule, d, config, n, 1, 4, 4, 0, nullptr, nullptr, ddpm::sdedit(init, 0.0)), init));
    EXPECT_TRUE(at::equal(ddpm::sample(schedule, d, config, n, 1, 4, 4, 0, nullptr, nullptr, ddpm::sdedit(init, 1.0)),
                          ddpm::sample(schedule, d, config, n, 1, 4, 4)))
        << ddpm::to_string(kind);
  }
  EXPECT_THROW(ddpm::sdedit(init, 1.5), std::invalid_argument);
  EXPECT_THROW(ddpm::sdedit(init, -0.1), std::invalid_argument);
  ddpm::SamplerConfig config;
  EXPECT_THROW(ddpm::sample(schedule, d, config, n + 1, 1, 4, 4, 0, nullptr, nullptr, ddpm::sdedit(init, 0.5)),
               std::invalid_argument);  // init of another count
}

// x₀ ~ N(0, 1), σ² = β: the joint of (x_s, x_t) is Gaussian with Cov = √(ᾱ_t/ᾱ_s), Var = 1, and
// the ancestral sampler is exact. From x_a = √a init + √(1−a) z (a = ᾱ at SDEdit's start) the
// output x̂₀ = √ᾱ₀ x_{t₀} has mean a·init and variance ᾱ₀ − a².
TEST(Sdedit, StartsAtTheStepNearestStrengthTimesTAndKeepsTheExactMoments) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = linear();
  const int64_t n = 1024;
  const double N = static_cast<double>(n * 16);
  std::vector<int64_t> seen;
  ddpm::test::ExactDenoiser exact(schedule, {0.0}, {1.0}, Prediction::V);
  exact.timesteps = &seen;
  ddpm::SamplerConfig config;
  config.kind = ddpm::SamplerKind::Ddpm;
  config.variance = ddpm::Variance::FixedLarge;
  config.steps = 100;
  config.prediction = Prediction::V;
  const at::Tensor init = at::full({n, 1, 4, 4}, 1.5, at::kFloat);
  const at::Tensor out = ddpm::sample(schedule, ddpm::test::as_denoiser(exact), config, n, 1, 4, 4, 0, nullptr, nullptr,
                                      ddpm::sdedit(init, 0.3));
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front(), 299);  // trailing spacing of 100 steps: ..., 289, 299, 309, ...; 300 steps of 1000
  const double a = alpha_bar(schedule, seen.front()), ab0 = alpha_bar(schedule, seen.back());
  const at::Tensor x = out.to(at::kDouble).flatten();
  const double var = ab0 - a * a;
  EXPECT_NEAR(x.mean().item<double>(), a * 1.5, 5 * std::sqrt(var / N));
  EXPECT_NEAR(x.var().item<double>() / var, 1.0, 5 * std::sqrt(2 / N));
}

// ------------------------------------------------------------ RePaint

TEST(Repaint, KnownPixelsAreTheInitExactlyAndTheHoleFollowsThem) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = linear();
  const int64_t n = 64;
  // Known: the left half, from class 1 (mean +0.8); the right half is a hole (init there: −1).
  at::Tensor init = (at::randn({n, 1, 4, 4}, at::kFloat) * 0.3 + 0.8).clamp(-1, 1);
  at::Tensor keep = at::zeros({1, 1, 4, 4}, at::kBool);
  keep.narrow(3, 0, 2).fill_(true);
  init = at::where(keep, init, at::full_like(init, -1.0));
  for (Prediction p : {Prediction::Epsilon, Prediction::V}) {
    ddpm::SamplerConfig config;
    config.kind = ddpm::SamplerKind::Ddpm;
    config.steps = 50;
    config.prediction = p;
    config.seed = 3;
    const MixtureDenoiser d(schedule, kMu, {0.3, 0.3}, p);
    const ddpm::Denoiser uncond = ddpm::with_labels(as_conditional(d), labels(n, ddpm::kNoClass));
    int64_t calls = 0;
    const ddpm::Denoiser counted = [&](const at::Tensor& x, const at::Tensor& t) { ++calls; return uncond(x, t); };
    const at::Tensor out = ddpm::sample(schedule, counted, config, n, 1, 4, 4, 0, nullptr, nullptr,
                                        ddpm::repaint(schedule, init, keep, 10, 10));
    // Exactly: the last hook puts the init's own values back.
    EXPECT_TRUE(at::equal(out.masked_select(keep.expand_as(out)), init.masked_select(keep.expand_as(init))));
    // Time travel: 50 steps, jumps of 10 at s = 0, 10, 20, 30 (s + 10 <= 49), 9 each.
    EXPECT_EQ(calls, 50 + 4 * 9 * 10);
    // The hole takes the class of the known half: its mean is near +0.8 in nearly every image.
    const at::Tensor hole = out.narrow(3, 2, 2).reshape({n, -1}).mean(1);
    EXPECT_GE((hole > 0.3).sum().item<int64_t>(), n * 9 / 10) << name_of(p);
  }
  EXPECT_THROW(ddpm::repaint(schedule, init, at::ones({1, 1, 4, 5}, at::kBool)), std::invalid_argument);
}

TEST(Repaint, VisitPathFollowsThePaperSchedule) {
  const auto path = ddpm::detail::visit_path(19, 5, 3);
  int64_t downs = 0, ups = 0, s = 19;
  for (int64_t next : path) {
    if (next == s - 1) ++downs;
    else {
      EXPECT_EQ(next, s + 5);
      EXPECT_EQ(s % 5, 0);
      ++ups;
    }
    s = next;
  }
  EXPECT_EQ(s, -1);
  EXPECT_EQ(ups, 3 * 2);                // s = 0, 5, 10, twice each (15 + 5 > 19)
  EXPECT_EQ(downs, 20 + ups * 5);       // every jump re-samples its 5 steps
  EXPECT_EQ(ddpm::detail::visit_path(4, 0, 10), (std::vector<int64_t>{3, 2, 1, 0, -1}));
}

// ------------------------------------------------------------ ILVR

TEST(Ilvr, OutputDownsampledIsTheLowResolutionInput) {
  ddpm::set_threads(1);
  const NoiseSchedule schedule = linear();
  const int64_t n = 16, factor = 4;
  const at::Tensor low = at::rand({n, 1, 2, 2}, at::kFloat) * 1.6 - 0.8;
  const MixtureDenoiser d(schedule, kMu, {0.3, 0.3}, Prediction::Epsilon);
  for (auto kind : {ddpm::SamplerKind::Ddpm, ddpm::SamplerKind::Ddim}) {
    ddpm::SamplerConfig config;
    config.kind = kind;
    config.steps = 30;
    config.seed = 8;
    const at::Tensor out = ddpm::sample(schedule, ddpm::with_labels(as_conditional(d), labels(n, ddpm::kNoClass)),
                                        config, n, 1, 8, 8, 0, nullptr, nullptr, ddpm::ilvr(schedule, low, factor));
    // Stated tolerance: float32 rounding of the block means (values of size ~1): 1e-5.
    EXPECT_LT((at::avg_pool2d(out, {factor, factor}) - low).abs().max().item<double>(), 1e-5) << ddpm::to_string(kind);
    // Not the blocky upsampled input: the model's detail is there.
    EXPECT_GT((out - ddpm::low_pass(out, factor)).abs().max().item<double>(), 0.05) << ddpm::to_string(kind);
  }
  EXPECT_TRUE(at::allclose(ddpm::low_pass(ddpm::low_pass(low.repeat({1, 1, 2, 2}), 2), 2),
                           ddpm::low_pass(low.repeat({1, 1, 2, 2}), 2)));
}

// ------------------------------------------------------------ the class-conditional U-Net

ddpm::UNetConfig tiny(int64_t classes) {
  ddpm::UNetConfig c;
  c.image_channels = 1;
  c.image_height = c.image_width = 8;
  c.base_channels = 16;
  c.channel_mult = {1, 2};
  c.num_res_blocks = 1;
  c.attention_resolutions = {};
  c.groups = 8;
  c.dropout = 0.0;
  c.num_classes = classes;
  return c;
}

TEST(ConditionalUNet, UnconditionalModelIsUnchangedAndLabelsAreChecked) {
  at::manual_seed(0);
  ddpm::UNet plain(tiny(0));
  for (const auto& p : plain->named_parameters()) EXPECT_EQ(p.key().find("class"), std::string::npos) << p.key();
  ddpm::UNet cond(tiny(3));
  EXPECT_EQ(ddpm::count_parameters(*cond) - ddpm::count_parameters(*plain), 4 * cond->config().time_embed_dim());
  const at::Tensor x = at::randn({2, 1, 8, 8}), t = at::full({2}, 5, at::kLong);
  {  // conv_out starts at zero (every output 0): give it weights so that outputs differ
    at::NoGradGuard g;
    cond->named_parameters()["conv_out.weight"].normal_(0, 0.1);
  }
  // Fresh class rows are N(0, 1) (as diffusers' nn.Embedding): each label gives its own output.
  const at::Tensor a = cond->forward(x, t, at::tensor({0, 0}, at::kLong)), b = cond->forward(x, t, at::tensor({1, 1}, at::kLong));
  EXPECT_FALSE(at::allclose(a, b));
  EXPECT_TRUE(at::equal(cond->forward(x, t), cond->forward(x, t, at::full({2}, ddpm::kNoClass, at::kLong))));
  EXPECT_THROW(cond->forward(x, t, at::tensor({0, 3}, at::kLong)), std::invalid_argument);
  EXPECT_THROW(cond->forward(x, t, at::tensor({-2, 0}, at::kLong)), std::invalid_argument);
  EXPECT_THROW(plain->forward(x, t, at::tensor({0, 1}, at::kLong)), std::invalid_argument);
  EXPECT_TRUE(at::equal(plain->forward(x, t, at::full({2}, ddpm::kNoClass, at::kLong)), plain->forward(x, t)));
}

}  // namespace
