// Noise schedules: reference values, invariants, validation, timestep subsets, respacing.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <string>

#include "ddpm/math/schedule.hpp"
#include "schedule_reference.hpp"
#include "test_util.hpp"

namespace {

using ddpm::NoiseSchedule;
using ddpm::ScheduleConfig;

std::vector<double> to_vec(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU, at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

const std::vector<ddpm::test::ReferenceCase>& reference() {
  static const auto cases = ddpm::test::load_reference(ddpm::test::data_dir() + "/schedules.json");
  return cases;
}

TEST(ScheduleReference, FileHasTheDocumentedCases) {
  // README lists 11 cases, each at 9 indices with 6 quantities.
  ASSERT_EQ(reference().size(), 11u);
  for (const auto& rc : reference()) {
    ASSERT_EQ(rc.rows.size(), 9u) << rc.name;
    for (const auto& [i, row] : rc.rows) ASSERT_EQ(row.size(), 6u) << rc.name << " i=" << i;
  }
}

TEST(ScheduleReference, Float64AndFloat32TablesMatchEveryCase) {
  for (const auto& rc : reference()) {
    NoiseSchedule s(rc.config);
    ASSERT_EQ(s.num_timesteps(), rc.config.timesteps);
    const std::map<std::string, std::pair<at::Tensor, at::Tensor>> tables = {
        {"beta", {s.beta64, s.beta}},
        {"alpha_bar", {s.alpha_bar64, s.alpha_bar}},
        {"posterior_variance", {s.posterior_variance64, s.posterior_variance}},
        {"posterior_mean_coef_x0", {s.posterior_mean_coef_x064, s.posterior_mean_coef_x0}},
        {"posterior_mean_coef_xt", {s.posterior_mean_coef_xt64, s.posterior_mean_coef_xt}},
        {"logsnr", {s.logsnr64, s.logsnr}},
    };
    for (const auto& [name, pair] : tables) {
      EXPECT_EQ(pair.first.scalar_type(), at::kDouble) << name;
      EXPECT_EQ(pair.second.scalar_type(), at::kFloat) << name;
      ASSERT_EQ(pair.first.numel(), rc.config.timesteps) << name;
      ASSERT_EQ(pair.second.numel(), rc.config.timesteps) << name;
    }
    for (const auto& [i, row] : rc.rows) {
      for (const auto& [key, expected] : row) {
        const auto& pair = tables.at(key);
        const double v64 = pair.first[i].item<double>();
        const double v32 = pair.second[i].item<double>();
        EXPECT_TRUE(ddpm::test::matches_reference(key, v64, expected, 1e-6))
            << rc.name << " " << key << "[" << i << "] float64 " << v64 << " vs reference " << expected;
        EXPECT_TRUE(ddpm::test::matches_reference(key, v32, expected, 1e-4))
            << rc.name << " " << key << "[" << i << "] float32 " << v32 << " vs reference " << expected;
      }
    }
  }
}

TEST(ScheduleReference, DerivedTablesAreConsistent) {
  for (const auto& rc : reference()) {
    NoiseSchedule s(rc.config);
    const auto beta = to_vec(s.beta64), ab = to_vec(s.alpha_bar64), pv = to_vec(s.posterior_variance64);
    const auto alpha = to_vec(s.alpha), ab_prev = to_vec(s.alpha_bar_prev), sab = to_vec(s.sqrt_alpha_bar),
               somab = to_vec(s.sqrt_one_minus_alpha_bar), plv = to_vec(s.posterior_log_variance_clipped),
               ab32 = to_vec(s.alpha_bar);
    const int64_t T = rc.config.timesteps;
    double prod = 1.0;
    for (int64_t i = 0; i < T; ++i) {
      prod *= 1.0 - beta[i];  // ᾱ_i = Π (1 − β_j)
      EXPECT_NEAR(prod, ab[i], 1e-12 + 1e-9 * ab[i]) << rc.name << " i=" << i;
      EXPECT_FLOAT_EQ(alpha[i], 1.0 - beta[i]) << rc.name << " i=" << i;
      EXPECT_FLOAT_EQ(ab_prev[i], i > 0 ? ab[i - 1] : 1.0) << rc.name << " i=" << i;
      EXPECT_FLOAT_EQ(sab[i], std::sqrt(ab[i])) << rc.name << " i=" << i;
      EXPECT_FLOAT_EQ(somab[i], std::sqrt(1.0 - ab[i])) << rc.name << " i=" << i;
      EXPECT_FLOAT_EQ(ab32[i], ab[i]) << rc.name << " i=" << i;
      // Clipped log variance: ln β̃_i, with β̃_0 = 0 replaced by β̃_1 (DDPM).
      EXPECT_NEAR(plv[i], std::log(i > 0 ? pv[i] : pv[1]), 1e-5) << rc.name << " i=" << i;
    }
    EXPECT_EQ(pv[0], 0.0) << rc.name;
  }
}

// Random valid parameters for every kind, with random T, input scale and zero terminal SNR.
TEST(ScheduleInvariants, HoldForRandomValidParameters) {
  std::mt19937_64 rng(1234);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  const std::vector<std::string> kinds = {"linear", "quadratic", "cosine", "sigmoid", "cosine-logsnr", "sigmoid-logsnr"};
  int checked = 0;
  for (const auto& kind : kinds) {
    for (int trial = 0; trial < 40; ++trial) {
      ScheduleConfig c;
      c.kind = kind;
      c.timesteps = 2 + static_cast<int64_t>(U(rng) * 1500);
      c.beta_start = std::pow(10.0, -5 + 3 * U(rng));                  // 1e-5 .. 1e-2
      // Up to 0.2: far larger β over 1500 steps underflows ᾱ in float64 (rejected as degenerate).
      c.beta_end = c.beta_start + (0.2 - c.beta_start) * U(rng) * U(rng) + 1e-6;
      c.cosine_s = 0.1 * U(rng);
      c.sigmoid_start = -6 + 8 * U(rng);
      c.sigmoid_end = c.sigmoid_start + 0.5 + 6 * U(rng);
      c.sigmoid_tau = 0.2 + 2 * U(rng);
      if (U(rng) < 0.7) c.logsnr_max = 4 + 16 * U(rng);
      if (U(rng) < 0.7) c.logsnr_min = -20 + 16 * U(rng);
      c.logsnr_shift = -3 + 6 * U(rng);
      const bool scaled = U(rng) < 0.5;
      if (scaled) c.input_scale = 0.1 + 2.9 * U(rng);
      c.zero_terminal_snr = U(rng) < 0.3;
      SCOPED_TRACE(kind + " T=" + std::to_string(c.timesteps) + " b=" + std::to_string(c.input_scale) +
                   " ztsnr=" + std::to_string(c.zero_terminal_snr) + " trial=" + std::to_string(trial));
      NoiseSchedule s(c);
      const auto beta = to_vec(s.beta64), ab = to_vec(s.alpha_bar64), lsnr = to_vec(s.logsnr64);
      const int64_t T = c.timesteps;
      for (int64_t i = 0; i < T; ++i) {
        const bool last = i == T - 1;
        ASSERT_GT(beta[i], 0.0) << "i=" << i;
        if (c.zero_terminal_snr && last) {
          ASSERT_EQ(beta[i], 1.0);
          ASSERT_EQ(ab[i], 0.0);
          ASSERT_TRUE(std::isinf(lsnr[i]) && lsnr[i] < 0);
        } else if (!scaled && !c.zero_terminal_snr) {
          // Discretised schedules are clipped at 0.999 (Nichol & Dhariwal 2021).
          ASSERT_LE(beta[i], 0.999) << "i=" << i;
        } else {
          // Rescaling ᾱ may push a clipped β slightly beyond 0.999, never to 1.
          ASSERT_LT(beta[i], 1.0) << "i=" << i;
        }
        if (!(c.zero_terminal_snr && last)) ASSERT_GT(ab[i], 0.0) << "i=" << i;
        ASSERT_LT(ab[i], 1.0) << "i=" << i;
        if (i > 0) {
          ASSERT_LT(ab[i], ab[i - 1]) << "i=" << i;
          ASSERT_LT(lsnr[i], lsnr[i - 1]) << "i=" << i;
        }
      }
      if (kind == "sigmoid-logsnr" && !scaled && !c.zero_terminal_snr) {
        // Defined by its log SNR: λ_i = λ((i+1)/T) exactly, inside [λmin, λmax].
        const double hi = c.logsnr_max.value_or(10.0), lo = c.logsnr_min.value_or(-10.0);
        for (int64_t i = 0; i < T; ++i)
          ASSERT_NEAR(lsnr[i], hi + (lo - hi) * static_cast<double>(i + 1) / static_cast<double>(T), 1e-6 * (1 + std::abs(hi)))
              << "i=" << i;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 240);
}

TEST(ScheduleInvariants, InputScaleShiftsLogSnrByTwoLnB) {
  for (const std::string kind : {"linear", "cosine", "sigmoid-logsnr"}) {
    ScheduleConfig c;
    c.kind = kind;
    c.timesteps = 300;
    NoiseSchedule base(c);
    c.input_scale = 0.3;
    NoiseSchedule scaled(c);
    const auto a = to_vec(base.logsnr64), b = to_vec(scaled.logsnr64);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i] + 2 * std::log(0.3), 1e-8) << kind << " i=" << i;
  }
}

TEST(ScheduleInvariants, ZeroTerminalSnrKeepsFirstAlphaBarAndIsAffineInSqrt) {
  ScheduleConfig c;
  c.kind = "cosine";
  c.timesteps = 200;
  NoiseSchedule base(c);
  c.zero_terminal_snr = true;
  NoiseSchedule z(c);
  const auto a = to_vec(base.alpha_bar64), b = to_vec(z.alpha_bar64);
  EXPECT_NEAR(b[0], a[0], 1e-14);
  EXPECT_EQ(b.back(), 0.0);
  // √ᾱ' = (√ᾱ − √ᾱ_{T−1})·√ᾱ_0/(√ᾱ_0 − √ᾱ_{T−1}) (Lin et al. 2024, Algorithm 1)
  const double s0 = std::sqrt(a[0]), sl = std::sqrt(a.back());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(std::sqrt(b[i]), (std::sqrt(a[i]) - sl) * s0 / (s0 - sl), 1e-12) << i;
}

TEST(ScheduleInvariants, DefaultLogSnrLimitsDependOnKind) {
  // Unset limits: ±15 for cosine-logsnr, ±10 for sigmoid-logsnr; explicit ones give the same tables.
  for (const auto& [kind, lim] : std::vector<std::pair<std::string, double>>{{"cosine-logsnr", 15}, {"sigmoid-logsnr", 10}}) {
    ScheduleConfig c;
    c.kind = kind;
    c.timesteps = 100;
    const auto implicit = to_vec(NoiseSchedule(c).alpha_bar64);
    c.logsnr_max = lim;
    c.logsnr_min = -lim;
    const auto explicit_ = to_vec(NoiseSchedule(c).alpha_bar64);
    ASSERT_EQ(implicit, explicit_) << kind;
    c.logsnr_max = lim + 1;
    EXPECT_NE(to_vec(NoiseSchedule(c).alpha_bar64), implicit) << kind;
  }
}

void expect_invalid(const ScheduleConfig& c, const std::string& param) {
  try {
    c.validate();
    ADD_FAILURE() << "validate() accepted a config with bad " << param;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(param), std::string::npos) << "message '" << e.what() << "' lacks " << param;
  }
  EXPECT_THROW(NoiseSchedule{c}, std::invalid_argument) << param;
}

TEST(ScheduleValidation, MessagesNameTheParameter) {
  ScheduleConfig ok;
  EXPECT_NO_THROW(ok.validate());
  auto with = [&](auto edit) {
    ScheduleConfig c = ok;
    edit(c);
    return c;
  };
  expect_invalid(with([](ScheduleConfig& c) { c.timesteps = 1; }), "timesteps");
  expect_invalid(with([](ScheduleConfig& c) { c.timesteps = -5; }), "timesteps");
  expect_invalid(with([](ScheduleConfig& c) { c.beta_start = 0.02, c.beta_end = 0.02; }), "beta-start");
  expect_invalid(with([](ScheduleConfig& c) { c.beta_start = 0.03; }), "beta-start");
  expect_invalid(with([](ScheduleConfig& c) { c.beta_start = 0; }), "beta-start");
  expect_invalid(with([](ScheduleConfig& c) { c.beta_start = -1e-3; }), "beta-start");
  expect_invalid(with([](ScheduleConfig& c) { c.beta_end = 1.0; }), "beta-end");
  expect_invalid(with([](ScheduleConfig& c) { c.kind = "quadratic", c.beta_end = 1.5; }), "beta-end");
  expect_invalid(with([](ScheduleConfig& c) { c.beta_start = std::nan(""); }), "beta-start");
  expect_invalid(with([](ScheduleConfig& c) { c.input_scale = 0; }), "input-scale");
  expect_invalid(with([](ScheduleConfig& c) { c.input_scale = -2; }), "input-scale");
  expect_invalid(with([](ScheduleConfig& c) { c.kind = "exponential"; }), "kind");
  expect_invalid(with([](ScheduleConfig& c) { c.kind = "exponential"; }), "exponential");
  expect_invalid(with([](ScheduleConfig& c) { c.kind = "cosine", c.cosine_s = -0.1; }), "cosine-s");
  expect_invalid(with([](ScheduleConfig& c) { c.kind = "sigmoid", c.sigmoid_tau = 0; }), "sigmoid-tau");
  expect_invalid(with([](ScheduleConfig& c) { c.kind = "sigmoid", c.sigmoid_tau = -1; }), "sigmoid-tau");
  expect_invalid(with([](ScheduleConfig& c) { c.kind = "sigmoid", c.sigmoid_start = 3; }), "sigmoid-start");
  expect_invalid(with([](ScheduleConfig& c) { c.kind = "cosine-logsnr", c.logsnr_max = -20.0; }), "logsnr-max");
  expect_invalid(with([](ScheduleConfig& c) { c.kind = "sigmoid-logsnr", c.logsnr_min = 12.0; }), "logsnr-min");
  expect_invalid(with([](ScheduleConfig& c) { c.kind = "cosine-logsnr", c.logsnr_shift = INFINITY; }), "logsnr-shift");
  // Parameters of other kinds are not looked at.
  EXPECT_NO_THROW(with([](ScheduleConfig& c) { c.kind = "cosine", c.beta_start = 5; }).validate());
}

TEST(ScheduleValidation, DegenerateInFloat64IsRejectedNamingTheParameters) {
  // Valid on paper, but σ(800) rounds to 1 so β_0 = 0 and ᾱ_0 = 1 (infinite log SNR).
  ScheduleConfig c;
  c.kind = "sigmoid-logsnr";
  c.logsnr_max = 800.0;
  try {
    NoiseSchedule s(c);
    ADD_FAILURE() << "accepted logsnr-max = 800";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("logsnr-max"), std::string::npos) << e.what();
  }
}

TEST(ScheduleTables, ExtractGathersAndBroadcasts) {
  NoiseSchedule s(ScheduleConfig{});
  at::Tensor t = at::tensor(std::vector<int64_t>{0, 5, 999, 5});
  at::Tensor e = NoiseSchedule::extract(s.alpha_bar, t, 4);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{4, 1, 1, 1}));
  for (int64_t k = 0; k < 4; ++k)
    EXPECT_EQ(e[k][0][0][0].item<float>(), s.alpha_bar[t[k].item<int64_t>()].item<float>());
  EXPECT_EQ(NoiseSchedule::extract(s.beta, t, 1).sizes(), (std::vector<int64_t>{4}));
  EXPECT_ANY_THROW(NoiseSchedule::extract(s.beta, at::tensor(std::vector<int64_t>{1000}), 2));
}

TEST(ScheduleTables, ToDeviceCopiesTheTables) {
  NoiseSchedule s(ScheduleConfig{});
  NoiseSchedule c = s.to(c10::Device(c10::kCPU));
  EXPECT_TRUE(c.device().is_cpu());
  EXPECT_TRUE(at::equal(c.posterior_mean_coef_xt, s.posterior_mean_coef_xt));
  EXPECT_EQ(c.num_timesteps(), 1000);
}

// ---------------------------------------------------------------- timestep subsets

TEST(TimestepSubset, PropertiesForEverySpacing) {
  for (auto spacing : {ddpm::Spacing::Leading, ddpm::Spacing::Trailing, ddpm::Spacing::Linspace}) {
    for (int64_t T : {2, 3, 10, 17, 100, 1000, 1001}) {
      for (int64_t steps = 1; steps <= T; steps += (T > 40 ? 7 : 1)) {
        const auto v = ddpm::timestep_subset(T, steps, spacing);
        SCOPED_TRACE(ddpm::to_string(spacing) + " T=" + std::to_string(T) + " steps=" + std::to_string(steps));
        ASSERT_EQ(static_cast<int64_t>(v.size()), steps);
        for (size_t k = 0; k < v.size(); ++k) {
          ASSERT_GE(v[k], 0);
          ASSERT_LT(v[k], T);
          if (k > 0) ASSERT_GT(v[k], v[k - 1]);
        }
        if (spacing == ddpm::Spacing::Leading) ASSERT_EQ(v.front(), 0);
        if (spacing == ddpm::Spacing::Trailing) ASSERT_EQ(v.back(), T - 1);
        if (spacing == ddpm::Spacing::Linspace) {
          ASSERT_EQ(v.front(), 0);
          if (steps > 1) ASSERT_EQ(v.back(), T - 1);
        }
      }
      // All T steps: the identity.
      const auto all = ddpm::timestep_subset(T, T, spacing);
      for (int64_t i = 0; i < T; ++i) ASSERT_EQ(all[i], i);
    }
  }
}

TEST(TimestepSubset, MatchesLinEtAl2024Table2) {
  // Lin et al. 2024, Table 2 (T = 1000, 10 steps; shifted there to 1-based), in 0-based indices:
  // linspace 0, 111, ..., 999; leading 0, 100, ..., 900; trailing 99, 199, ..., 999.
  const auto lin = ddpm::timestep_subset(1000, 10, ddpm::Spacing::Linspace);
  const auto lead = ddpm::timestep_subset(1000, 10, ddpm::Spacing::Leading);
  const auto trail = ddpm::timestep_subset(1000, 10, ddpm::Spacing::Trailing);
  for (int64_t k = 0; k < 10; ++k) {
    EXPECT_EQ(lin[k], 111 * k);
    EXPECT_EQ(lead[k], 100 * k);
    EXPECT_EQ(trail[k], 100 * k + 99);
  }
}

TEST(TimestepSubset, RejectsBadStepsAndSpacing) {
  EXPECT_THROW(ddpm::timestep_subset(10, 0, ddpm::Spacing::Leading), std::invalid_argument);
  EXPECT_THROW(ddpm::timestep_subset(10, 11, ddpm::Spacing::Trailing), std::invalid_argument);
  try {
    ddpm::timestep_subset(10, 11, ddpm::Spacing::Linspace);
    ADD_FAILURE() << "accepted steps = 11 > timesteps = 10";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("steps"), std::string::npos);
  }
  for (const std::string name : {"leading", "trailing", "linspace"}) EXPECT_EQ(ddpm::to_string(ddpm::parse_spacing(name)), name);
  try {
    ddpm::parse_spacing("uniform");
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("spacing"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("uniform"), std::string::npos);
  }
}

TEST(RespacedBetas, AllStepsReproduceBeta) {
  for (const auto& rc : reference()) {
    NoiseSchedule s(rc.config);
    const auto kept = ddpm::timestep_subset(rc.config.timesteps, rc.config.timesteps, ddpm::Spacing::Leading);
    const auto b = to_vec(ddpm::respaced_betas(s.alpha_bar64, kept));
    const auto ref = to_vec(s.beta64);
    ASSERT_EQ(b.size(), ref.size());
    for (size_t i = 0; i < b.size(); ++i) EXPECT_NEAR(b[i], ref[i], 1e-9 * ref[i]) << rc.name << " i=" << i;
  }
}

TEST(RespacedBetas, ProductOverTheSubsetGivesAlphaBar) {
  for (const auto& rc : reference()) {
    NoiseSchedule s(rc.config);
    const auto ab = to_vec(s.alpha_bar64);
    for (auto spacing : {ddpm::Spacing::Leading, ddpm::Spacing::Trailing, ddpm::Spacing::Linspace}) {
      const auto kept = ddpm::timestep_subset(rc.config.timesteps, 37, spacing);
      const at::Tensor bt = ddpm::respaced_betas(s.alpha_bar64, kept);
      EXPECT_EQ(bt.scalar_type(), at::kDouble);
      const auto b = to_vec(bt);
      double prod = 1.0;
      for (size_t k = 0; k < kept.size(); ++k) {
        ASSERT_GT(b[k], 0.0);
        ASSERT_LE(b[k], 1.0);
        prod *= 1.0 - b[k];
        EXPECT_NEAR(prod, ab[kept[k]], 1e-12 + 1e-10 * ab[kept[k]]) << rc.name << " k=" << k;
      }
      // Respaced steps are coarser, so each β' is at least the β at its own index.
      const auto beta = to_vec(s.beta64);
      for (size_t k = 0; k < kept.size(); ++k) EXPECT_GE(b[k], beta[kept[k]] - 1e-15);
    }
  }
  EXPECT_THROW(ddpm::respaced_betas(NoiseSchedule(ScheduleConfig{}).alpha_bar64, {5, 3}), std::invalid_argument);
  EXPECT_THROW(ddpm::respaced_betas(NoiseSchedule(ScheduleConfig{}).alpha_bar64, {5, 1000}), std::invalid_argument);
}

}  // namespace
