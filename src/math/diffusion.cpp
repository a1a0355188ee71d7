// The forward process, its posterior, and conversions between the network's parameterisations.
// DDPM = Ho et al. 2020; v-prediction: Salimans & Ho 2022 (§4); min-SNR-γ: Hang et al. 2023.
#include "ddpm/math/diffusion.hpp"
#include "util/enum_names.hpp"

#include <ATen/ATen.h>

#include <stdexcept>

namespace ddpm {
namespace {

// √ᾱ and √(1−ᾱ) from a broadcastable ᾱ, computed in float64 (1 − ᾱ loses most of its digits
// in float32 where ᾱ ≈ 1) and returned in the dtype of x, so that ops on x keep its dtype.
struct Coefs {
  at::Tensor sqrt_ab, sqrt_om;
};
Coefs coefs(const at::Tensor& alpha_bar, const at::Tensor& like) {
  const at::Tensor ab = alpha_bar.to(at::kDouble);
  return {ab.sqrt().to(like.scalar_type()), (1.0 - ab).sqrt().to(like.scalar_type())};
}

int64_t ndim_of(const at::Tensor& x) { return std::max<int64_t>(x.dim(), 1); }

}  // namespace

namespace {
// Canonical names first; diffusers' spellings (sample, v_prediction) as aliases.
constexpr util::EnumName<Prediction> kPredictions[] = {
    {Prediction::Epsilon, "epsilon"}, {Prediction::X0, "x0"},     {Prediction::V, "v"},
    {Prediction::Epsilon, "eps"},     {Prediction::X0, "sample"}, {Prediction::V, "v_prediction"},
    {Prediction::V, "v-prediction"}};
constexpr util::EnumName<LossWeighting> kLossWeightings[] = {{LossWeighting::None, "none"},
                                                             {LossWeighting::MinSNR, "min-snr"},
                                                             {LossWeighting::None, "simple"},
                                                             {LossWeighting::MinSNR, "min_snr"}};
}  // namespace

Prediction parse_prediction(const std::string& text) { return util::parse_enum(kPredictions, text, "prediction"); }

std::string to_string(Prediction prediction) { return util::enum_name(kPredictions, prediction); }

LossWeighting parse_loss_weighting(const std::string& text) {
  return util::parse_enum(kLossWeightings, text, "loss-weighting");
}

std::string to_string(LossWeighting w) { return util::enum_name(kLossWeightings, w); }

at::Tensor q_sample(const NoiseSchedule& s, const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) {
  // x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε   (DDPM eq. 4, reparameterised)
  const int64_t nd = ndim_of(x0);
  return NoiseSchedule::extract(s.sqrt_alpha_bar, t, nd).to(x0.scalar_type()) * x0 +
         NoiseSchedule::extract(s.sqrt_one_minus_alpha_bar, t, nd).to(x0.scalar_type()) * noise;
}

at::Tensor alpha_bar_at(const NoiseSchedule& s, const at::Tensor& t, int64_t ndim, c10::Device device) {
  return NoiseSchedule::extract(s.alpha_bar64, t.to(at::kCPU), ndim).to(device);
}

at::Tensor q_step(const NoiseSchedule& s, const at::Tensor& x_prev, const at::Tensor& t, const at::Tensor& noise) {
  // x_t = √(1 − β_t) x_{t−1} + √β_t ε   (DDPM eq. 2)
  const int64_t nd = ndim_of(x_prev);
  return NoiseSchedule::extract(s.alpha, t, nd).sqrt().to(x_prev.scalar_type()) * x_prev +
         NoiseSchedule::extract(s.beta, t, nd).sqrt().to(x_prev.scalar_type()) * noise;
}

Posterior q_posterior(const NoiseSchedule& s, const at::Tensor& x0, const at::Tensor& xt, const at::Tensor& t) {
  // μ̃_t = coef_x0 x₀ + coef_xt x_t, variance β̃_t   (DDPM eqs. 6–7)
  const int64_t nd = ndim_of(xt);
  Posterior p;
  p.mean = NoiseSchedule::extract(s.posterior_mean_coef_x0, t, nd).to(xt.scalar_type()) * x0 +
           NoiseSchedule::extract(s.posterior_mean_coef_xt, t, nd).to(xt.scalar_type()) * xt;
  p.variance = NoiseSchedule::extract(s.posterior_variance, t, nd);
  p.log_variance = NoiseSchedule::extract(s.posterior_log_variance_clipped, t, nd);
  return p;
}

at::Tensor x0_from_eps(const at::Tensor& xt, const at::Tensor& eps, const at::Tensor& alpha_bar) {
  // x₀ = (x_t − √(1−ᾱ) ε) / √ᾱ   (DDPM eq. 15)
  const Coefs c = coefs(alpha_bar, xt);
  return (xt - c.sqrt_om * eps) / c.sqrt_ab;
}

at::Tensor eps_from_x0(const at::Tensor& xt, const at::Tensor& x0, const at::Tensor& alpha_bar) {
  // ε = (x_t − √ᾱ x₀) / √(1−ᾱ)
  const Coefs c = coefs(alpha_bar, xt);
  return (xt - c.sqrt_ab * x0) / c.sqrt_om;
}

at::Tensor v_from_x0_eps(const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& alpha_bar) {
  // v = √ᾱ ε − √(1−ᾱ) x₀   (Salimans & Ho 2022, §4)
  const Coefs c = coefs(alpha_bar, eps);
  return c.sqrt_ab * eps - c.sqrt_om * x0;
}

at::Tensor x0_from_v(const at::Tensor& xt, const at::Tensor& v, const at::Tensor& alpha_bar) {
  // x₀ = √ᾱ x_t − √(1−ᾱ) v   (the rotation (x_t, v) ↔ (x₀, ε) is orthogonal)
  const Coefs c = coefs(alpha_bar, xt);
  return c.sqrt_ab * xt - c.sqrt_om * v;
}

at::Tensor eps_from_v(const at::Tensor& xt, const at::Tensor& v, const at::Tensor& alpha_bar) {
  // ε = √(1−ᾱ) x_t + √ᾱ v
  const Coefs c = coefs(alpha_bar, xt);
  return c.sqrt_om * xt + c.sqrt_ab * v;
}

at::Tensor predict_eps(Prediction p, const at::Tensor& xt, const at::Tensor& out, const at::Tensor& alpha_bar) {
  switch (p) {
    case Prediction::Epsilon: return out;
    case Prediction::X0: return eps_from_x0(xt, out, alpha_bar);
    case Prediction::V: return eps_from_v(xt, out, alpha_bar);
  }
  throw std::invalid_argument("prediction: invalid enum value");
}

at::Tensor predict_x0(Prediction p, const at::Tensor& xt, const at::Tensor& out, const at::Tensor& alpha_bar) {
  switch (p) {
    case Prediction::Epsilon: return x0_from_eps(xt, out, alpha_bar);
    case Prediction::X0: return out;
    case Prediction::V: return x0_from_v(xt, out, alpha_bar);
  }
  throw std::invalid_argument("prediction: invalid enum value");
}

at::Tensor score_from_eps(const at::Tensor& eps, const at::Tensor& alpha_bar) {
  // ∇ log p(x_t) = −ε / √(1 − ᾱ_t)   (Song et al. 2021, eq. for the VP SDE's Gaussian kernel)
  return -eps / coefs(alpha_bar, eps).sqrt_om;
}

at::Tensor training_target(Prediction p, const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& alpha_bar) {
  switch (p) {
    case Prediction::Epsilon: return eps;  // L_simple (DDPM eq. 14)
    case Prediction::X0: return x0;
    case Prediction::V: return v_from_x0_eps(x0, eps, alpha_bar);
  }
  throw std::invalid_argument("prediction: invalid enum value");
}

at::Tensor loss_weight(Prediction p, LossWeighting w, const at::Tensor& alpha_bar, double gamma) {
  const auto dtype = at::isFloatingType(alpha_bar.scalar_type()) ? alpha_bar.scalar_type() : at::kFloat;
  if (w == LossWeighting::None) return at::ones_like(alpha_bar, alpha_bar.options().dtype(dtype));
  if (!(gamma > 0)) throw std::invalid_argument("min-snr-gamma must be > 0 (got " + std::to_string(gamma) + ")");
  // SNR = ᾱ / (1 − ᾱ). All three weights make the loss the same objective, min(SNR, γ)·‖x̂₀ − x₀‖²,
  // since ‖ε̂ − ε‖² = SNR·‖x̂₀ − x₀‖² and ‖v̂ − v‖² = (SNR + 1)·‖x̂₀ − x₀‖² (Hang et al. 2023, §3.4).
  const at::Tensor ab = alpha_bar.to(at::kDouble);
  const at::Tensor snr = ab / (1.0 - ab);
  const at::Tensor clipped = at::clamp_max(snr, gamma);  // min(SNR, γ)
  at::Tensor weight;
  switch (p) {
    // min(SNR, γ)/SNR written as min(1, γ/SNR): 1 (not 0/0) at SNR = 0 (zero terminal SNR).
    case Prediction::Epsilon: weight = at::clamp_max(gamma / snr, 1.0); break;
    case Prediction::V: weight = clipped / (snr + 1.0); break;
    case Prediction::X0: weight = clipped; break;
  }
  return weight.to(dtype);
}

}  // namespace ddpm
