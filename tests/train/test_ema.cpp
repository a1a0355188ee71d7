// EMA of model weights: the decay schedules and the update arithmetic.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <stdexcept>

#include "ddpm/train/ema.hpp"

namespace {

std::shared_ptr<torch::nn::LinearImpl> linear() { return std::make_shared<torch::nn::LinearImpl>(3, 2); }

void fill(torch::nn::Module& m, double value) {
  c10::NoGradGuard g;
  for (auto& p : m.parameters()) p.fill_(value);
}

}  // namespace

TEST(Ema, DecaySchedules) {
  auto m = linear(), s = linear();
  ddpm::EMA none(m, s, {0.999, ddpm::EmaWarmup::None, 2.0 / 3.0});
  EXPECT_EQ(none.decay_at(0), 0.999);
  EXPECT_EQ(none.decay_at(12345), 0.999);

  ddpm::EMA rational(m, s, {0.999, ddpm::EmaWarmup::Rational, 2.0 / 3.0});
  EXPECT_DOUBLE_EQ(rational.decay_at(0), 0.1);         // (1 + 0) / (10 + 0)
  EXPECT_DOUBLE_EQ(rational.decay_at(10), 11.0 / 20.0);
  EXPECT_DOUBLE_EQ(rational.decay_at(8990), 0.999);    // (1 + n)/(10 + n) = 0.999 exactly at n = 8990
  EXPECT_DOUBLE_EQ(rational.decay_at(100000), 0.999);  // capped

  ddpm::EMA power(m, s, {0.9999, ddpm::EmaWarmup::Power, 0.5});
  EXPECT_DOUBLE_EQ(power.decay_at(0), 0.0);
  EXPECT_DOUBLE_EQ(power.decay_at(3), 0.5);       // 1 − 4^(−1/2)
  EXPECT_DOUBLE_EQ(power.decay_at(99), 0.9);      // 1 − 100^(−1/2)
  EXPECT_DOUBLE_EQ(power.decay_at(1'000'000'000), 0.9999);
  EXPECT_EQ(ddpm::parse_ema_warmup("power"), ddpm::EmaWarmup::Power);
  EXPECT_THROW(ddpm::parse_ema_warmup("linear"), std::invalid_argument);
}

TEST(Ema, StartsAsACopyAndShadowHasNoGradients) {
  auto m = linear(), s = linear();
  ddpm::EMA ema(m, s, {});
  for (size_t i = 0; i < m->parameters().size(); ++i) {
    EXPECT_TRUE(at::equal(m->parameters()[i], s->parameters()[i]));
    EXPECT_FALSE(s->parameters()[i].requires_grad());
  }
  EXPECT_FALSE(s->is_training());
}

TEST(Ema, UpdateArithmeticIsExact) {
  // Dyadic values and decay 0.75 make every product and sum exact in float32,
  // so the shadow must equal the hand-computed average bitwise.
  auto m = linear(), s = linear();
  fill(*m, 1.0);
  ddpm::EMA ema(m, s, {0.75, ddpm::EmaWarmup::None, 1.0});
  fill(*m, 2.0);
  ema.update();  // 0.75·1 + 0.25·2 = 1.25
  for (auto& p : s->parameters()) EXPECT_TRUE(at::equal(p, at::full_like(p, 1.25)));
  fill(*m, -3.0);
  ema.update();  // 0.75·1.25 + 0.25·(−3) = 0.1875
  for (auto& p : s->parameters()) EXPECT_TRUE(at::equal(p, at::full_like(p, 0.1875)));
  EXPECT_EQ(ema.num_updates(), 2);
  // The model itself is untouched.
  for (auto& p : m->parameters()) EXPECT_TRUE(at::equal(p, at::full_like(p, -3.0)));
}

TEST(Ema, FollowsTheWarmupScheduleOverManyUpdates) {
  // Independent float64 recurrence with the rational warm-up, against random weights.
  auto m = linear(), s = linear();
  ddpm::EMA ema(m, s, {0.9, ddpm::EmaWarmup::Rational, 1.0});
  at::Tensor expected = m->weight.detach().to(at::kDouble).clone();
  at::manual_seed(3);
  for (int n = 0; n < 40; ++n) {
    {
      c10::NoGradGuard g;
      m->weight.copy_(at::randn_like(m->weight));
    }
    const double d = std::min(0.9, (1.0 + n) / (10.0 + n));
    expected = d * expected + (1.0 - d) * m->weight.detach().to(at::kDouble);
    ema.update();
  }
  EXPECT_LT((s->weight.to(at::kDouble) - expected).abs().max().item<double>(), 1e-6);
}

TEST(Ema, RejectsAMismatchedShadow) {
  auto m = linear();
  auto other = std::make_shared<torch::nn::LinearImpl>(4, 2);
  EXPECT_THROW(ddpm::EMA(m, other, {}), std::invalid_argument);
  EXPECT_THROW(ddpm::EMA(m, linear(), {1.5, ddpm::EmaWarmup::None, 1.0}), std::invalid_argument);
}
