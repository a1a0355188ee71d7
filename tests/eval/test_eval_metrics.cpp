// Evaluation metrics against closed forms: the Fréchet distance, KID's unbiasedness and
// known values, precision/recall on hand-computed and clustered sets, streaming statistics.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ddpm/eval/kid.hpp"
#include "ddpm/eval/precision_recall.hpp"
#include "ddpm/eval/stats.hpp"
#include "test_util.hpp"

using namespace ddpm::eval;

namespace {

at::Tensor f64(std::vector<double> v) { return at::tensor(v, at::kDouble); }

// A random rotation (Q of a QR factorisation of a Gaussian matrix).
at::Tensor random_rotation(int64_t d) {
  return std::get<0>(at::linalg_qr(at::randn({d, d}, at::kDouble)));
}

}  // namespace

TEST(FrechetDistance, DiagonalCovariancesMatchTheFormula) {
  // FD² = |μ₁ − μ₂|² + Σ (√aᵢ − √bᵢ)² when Σ₁ = diag(a), Σ₂ = diag(b).
  at::Tensor mu1 = f64({0.5, -1.0, 2.0, 0.0}), mu2 = f64({1.5, 1.0, 2.0, -3.0});
  std::vector<double> a = {1.0, 4.0, 0.25, 9.0}, b = {4.0, 1.0, 0.25, 0.01};
  double expected = 1.0 + 4.0 + 0.0 + 9.0;
  for (size_t i = 0; i < a.size(); ++i) expected += std::pow(std::sqrt(a[i]) - std::sqrt(b[i]), 2);
  EXPECT_NEAR(frechet_distance(mu1, at::diag(f64(a)), mu2, at::diag(f64(b))), expected, 1e-10);

  // The same in a rotated basis (commuting, non-diagonal covariances): FD is rotation invariant.
  at::manual_seed(1);
  at::Tensor q = random_rotation(4);
  EXPECT_NEAR(frechet_distance(q.mv(mu1), q.mm(at::diag(f64(a))).mm(q.t()), q.mv(mu2),
                               q.mm(at::diag(f64(b))).mm(q.t())),
              expected, 1e-9);
}

TEST(FrechetDistance, NonCommutingTwoByTwo) {
  // For 2×2 matrices with positive eigenvalues, tr √M = √(tr M + 2 √det M); with M = Σ₁Σ₂.
  at::Tensor s1 = at::tensor({2.0, 0.7, 0.7, 1.0}, at::kDouble).view({2, 2});
  at::Tensor s2 = at::tensor({0.5, -0.2, -0.2, 3.0}, at::kDouble).view({2, 2});
  at::Tensor m = s1.mm(s2);
  const double tr_sqrt = std::sqrt(m.trace().item<double>() + 2 * std::sqrt(m.det().item<double>()));
  at::Tensor mu1 = f64({0, 0}), mu2 = f64({1, 2});
  const double expected = 5.0 + s1.trace().item<double>() + s2.trace().item<double>() - 2 * tr_sqrt;
  EXPECT_NEAR(frechet_distance(mu1, s1, mu2, s2), expected, 1e-12);
  // Symmetric in its arguments.
  EXPECT_NEAR(frechet_distance(mu2, s2, mu1, s1), expected, 1e-12);
}

TEST(FrechetDistance, SameFeaturesGiveZero) {
  at::manual_seed(2);
  // Rank-deficient features (D = 16 > N − 1 = 9) exercise the clamping of tiny negative eigenvalues.
  for (int64_t n : {10, 500}) {
    at::Tensor x = at::randn({n, 16}) * 3 + 1;
    FeatureStats s = compute_stats(x);
    EXPECT_NEAR(frechet_distance(s, s), 0.0, 1e-9) << "n = " << n;
  }
}

TEST(FrechetDistance, SampledGaussiansApproachTheFormula) {
  // Features drawn from N(μ₁, diag a) and N(μ₂, diag b): the sample FD converges to the formula.
  at::manual_seed(3);
  const int64_t n = 200000, d = 3;
  at::Tensor a = f64({1.0, 4.0, 0.5}), b = f64({2.0, 1.0, 0.5});
  at::Tensor mu1 = f64({0, 0, 0}), mu2 = f64({1, 0, -1});
  at::Tensor x = at::randn({n, d}, at::kDouble) * a.sqrt() + mu1;
  at::Tensor y = at::randn({n, d}, at::kDouble) * b.sqrt() + mu2;
  const double expected = 2.0 + (a.sqrt() - b.sqrt()).pow(2).sum().item<double>();
  EXPECT_NEAR(frechet_distance(compute_stats(x), compute_stats(y)), expected, 0.03);
}

TEST(FrechetDistance, DimensionMismatchIsAnError) {
  FeatureStats a = compute_stats(at::randn({5, 3})), b = compute_stats(at::randn({5, 4}));
  EXPECT_NE(ddpm::test::error_of([&] { frechet_distance(a, b); }).find("dimensions differ"), std::string::npos);
}

TEST(FeatureStats, StreamingEqualsTwoPassWhateverTheBatching) {
  at::manual_seed(4);
  // A large common offset: Σxxᵀ/n − μμᵀ would lose most digits of the variance here.
  at::Tensor x = (at::randn({103, 5}, at::kDouble) + 1e6);
  at::Tensor centred = x - x.mean(0);
  at::Tensor cov = centred.t().mm(centred) / 102.0;
  StatsAccumulator acc(5);
  for (int64_t start = 0; start < 103; start += 7) acc.add(x.narrow(0, start, std::min<int64_t>(7, 103 - start)));
  FeatureStats s = acc.finish("test");
  EXPECT_EQ(s.count, 103);
  EXPECT_EQ(s.features, "test");
  EXPECT_TRUE(at::allclose(s.mu, x.mean(0), 0, 1e-8));
  EXPECT_TRUE(at::allclose(s.sigma, cov, 1e-9, 1e-9));
  // float32 input is accumulated in float64 too.
  FeatureStats f = compute_stats(at::tensor({1.0f, 2.0f, 3.0f, 5.0f}).view({4, 1}));
  EXPECT_EQ(f.sigma.scalar_type(), at::kDouble);
  EXPECT_DOUBLE_EQ(f.sigma.item<double>(), (1.75 * 1.75 + 0.75 * 0.75 + 0.25 * 0.25 + 2.25 * 2.25) / 3.0);  // mean 2.75
}

TEST(FeatureStats, ErrorsNameTheProblem) {
  StatsAccumulator acc(3);
  EXPECT_NE(ddpm::test::error_of([&] { acc.add(at::zeros({2, 4})); }).find("[N, 3]"), std::string::npos);
  acc.add(at::zeros({1, 3}));
  EXPECT_NE(ddpm::test::error_of([&] { acc.finish(); }).find("at least 2"), std::string::npos);
  FeatureStats bad{f64({1, 2}), at::eye(3, at::kDouble)};
  EXPECT_NE(ddpm::test::error_of([&] { bad.validate("x.npz"); }).find("x.npz: sigma must be [2, 2]"),
            std::string::npos);
}

namespace {

// A discrete distribution on a few points of R^d: exact population moments by enumeration.
struct Discrete {
  std::vector<std::vector<double>> points;
  std::vector<double> probs;
  at::Tensor draw(int64_t n, std::mt19937_64& rng) const {
    std::discrete_distribution<int> pick(probs.begin(), probs.end());
    const int64_t d = static_cast<int64_t>(points[0].size());
    at::Tensor out = at::empty({n, d}, at::kDouble);
    auto acc = out.accessor<double, 2>();
    for (int64_t i = 0; i < n; ++i) {
      const auto& p = points[static_cast<size_t>(pick(rng))];
      for (int64_t j = 0; j < d; ++j) acc[i][j] = p[static_cast<size_t>(j)];
    }
    return out;
  }
};

double kernel(const std::vector<double>& x, const std::vector<double>& y) {
  double dot = 0;
  for (size_t i = 0; i < x.size(); ++i) dot += x[i] * y[i];
  return std::pow(dot / static_cast<double>(x.size()) + 1.0, 3);
}

// E k(u, v) for independent u ~ P, v ~ Q.
double expected_kernel(const Discrete& p, const Discrete& q) {
  double e = 0;
  for (size_t i = 0; i < p.points.size(); ++i)
    for (size_t j = 0; j < q.points.size(); ++j) e += p.probs[i] * q.probs[j] * kernel(p.points[i], q.points[j]);
  return e;
}

double expected_self_kernel(const Discrete& p) {  // E k(u, u)
  double e = 0;
  for (size_t i = 0; i < p.points.size(); ++i) e += p.probs[i] * kernel(p.points[i], p.points[i]);
  return e;
}

struct MeanAndError {
  double mean, standard_error;
};

MeanAndError average_mmd(const Discrete& p, const Discrete& q, int64_t m, int draws, uint64_t seed) {
  std::mt19937_64 rng(seed);
  double sum = 0, sum2 = 0;
  for (int i = 0; i < draws; ++i) {
    const double v = mmd2_unbiased(p.draw(m, rng), q.draw(m, rng));
    sum += v;
    sum2 += v * v;
  }
  const double mean = sum / draws;
  return {mean, std::sqrt((sum2 / draws - mean * mean) / draws)};
}

const Discrete kP{{{0, 0, 0}, {1, 0, 2}, {0, -1, 1}, {2, 2, 0}}, {0.4, 0.3, 0.2, 0.1}};
const Discrete kQ{{{1, 1, 1}, {0, 0, 0}, {3, 0, -1}}, {0.5, 0.25, 0.25}};

}  // namespace

TEST(Kid, UnbiasedForTheSameDistribution) {
  // Small subsets (m = 8) make the bias of the plug-in (V-statistic) estimator large:
  // E[biased] − MMD² = 2 (E k(x,x) − E k(x,x')) / m. The unbiased one must average to 0.
  const int64_t m = 8;
  MeanAndError r = average_mmd(kP, kP, m, 4000, 11);
  const double bias_of_plugin = 2 * (expected_self_kernel(kP) - expected_kernel(kP, kP)) / m;
  ASSERT_GT(bias_of_plugin, 20 * r.standard_error) << "the test could not tell a biased estimator apart";
  EXPECT_LT(std::abs(r.mean), 4 * r.standard_error) << "mean " << r.mean << " ± " << r.standard_error;
}

TEST(Kid, ExpectationIsThePopulationMmdForDifferentDistributions) {
  const double truth = expected_kernel(kP, kP) + expected_kernel(kQ, kQ) - 2 * expected_kernel(kP, kQ);
  ASSERT_GT(truth, 0.05);
  MeanAndError r = average_mmd(kP, kQ, 8, 4000, 12);
  EXPECT_LT(std::abs(r.mean - truth), 4 * r.standard_error) << r.mean << " vs " << truth;
}

TEST(Kid, SubsetsOfLargeSetsEstimateTheMmd) {
  std::mt19937_64 rng(13);
  at::Tensor x = kP.draw(3000, rng), y = kP.draw(2000, rng), z = kQ.draw(2500, rng);
  const double truth = expected_kernel(kP, kP) + expected_kernel(kQ, kQ) - 2 * expected_kernel(kP, kQ);
  KidOptions opt;
  opt.subsets = 20;  // of the default size 1000 (not capped here: both sets are larger)
  KidResult same = kernel_inception_distance(x, y, opt);
  EXPECT_EQ(same.subset_size, 1000);
  EXPECT_EQ(same.subsets, 20);
  EXPECT_LT(std::abs(same.mean), 3 * same.std) << same.mean << " ± " << same.std;
  KidResult shifted = kernel_inception_distance(x, z, opt);
  EXPECT_NEAR(shifted.mean, truth, 0.1 * truth);
  EXPECT_GT(shifted.mean, 10 * shifted.std);
  // Deterministic for a seed, and the subset size is capped by the smaller set.
  EXPECT_EQ(kernel_inception_distance(x, z, opt).mean, shifted.mean);
  KidResult capped = kernel_inception_distance(x.narrow(0, 0, 50), z, {10, 1000, 0});
  EXPECT_EQ(capped.subset_size, 50);
}

TEST(PrecisionRecall, HandComputedOneDimensional) {
  // k = 1. Real {0,1,2,3,10}: radii 1,1,1,1,7. Fake {0.5,5,20}: radii 4.5,4.5,15.
  // 0.5 is within 0's ball, 5 within 10's (5 <= 7), 20 in none → precision 2/3;
  // every real point is in some fake ball (10 in 20's: 10 <= 15) → recall 1.
  at::Tensor real = f64({0, 1, 2, 3, 10}).view({5, 1}), fake = f64({0.5, 5, 20}).view({3, 1});
  for (int64_t block : {1, 2, 1024}) {
    PrecisionRecall r = precision_recall(real, fake, 1, block);
    EXPECT_DOUBLE_EQ(r.precision, 2.0 / 3.0) << "block " << block;
    EXPECT_DOUBLE_EQ(r.recall, 1.0) << "block " << block;
  }
  // k = 2: real radii 2,1,1,2,8; fake radii 14.5,15,15 → precision 2/3 (20: 10 away from 10 > 8), recall 1.
  PrecisionRecall r2 = precision_recall(real, fake, 2);
  EXPECT_DOUBLE_EQ(r2.precision, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(r2.recall, 1.0);
}

TEST(PrecisionRecall, SeparatedOverlappingAndDroppedModes) {
  at::manual_seed(5);
  const int64_t n = 1000;
  at::Tensor real = at::randn({n, 2}, at::kDouble);
  at::Tensor far = at::randn({n, 2}, at::kDouble) + 100;
  PrecisionRecall separated = precision_recall(real, far);
  EXPECT_EQ(separated.precision, 0.0);
  EXPECT_EQ(separated.recall, 0.0);
  EXPECT_EQ(separated.k, 3);

  PrecisionRecall same = precision_recall(real, at::randn({n, 2}, at::kDouble));
  EXPECT_GT(same.precision, 0.85);
  EXPECT_GT(same.recall, 0.85);

  // Real: two equal clusters; fake: only the first one. Every fake point is realistic
  // (precision ≈ 1), half the real points are not covered (recall ≈ 1/2).
  at::Tensor shift = at::zeros({n, 2}, at::kDouble);
  shift.narrow(0, n / 2, n / 2).fill_(50);
  at::Tensor two = at::randn({n, 2}, at::kDouble) + shift;
  at::Tensor one = at::randn({n, 2}, at::kDouble);
  PrecisionRecall dropped = precision_recall(two, one);
  EXPECT_GT(dropped.precision, 0.9);
  EXPECT_GT(dropped.recall, 0.4);
  EXPECT_LT(dropped.recall, 0.55);
}

TEST(PrecisionRecall, TooFewPointsIsAnError) {
  EXPECT_NE(ddpm::test::error_of([] { precision_recall(at::zeros({3, 2}), at::zeros({10, 2})); }).find("more than k"),
            std::string::npos);
}
