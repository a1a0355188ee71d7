#pragma once
// The forward process, its posterior, and the parameterisations of the network output.
// Functions taking `alpha_bar` accept any tensor that broadcasts against x
// (a scalar, or [B,1,1,1] from NoiseSchedule::extract).
#include <ATen/Tensor.h>

#include <string>

#include "ddpm/math/schedule.hpp"

namespace ddpm {

/// What the network predicts.
enum class Prediction { Epsilon, X0, V };
Prediction parse_prediction(const std::string& text);  ///< "epsilon"|"eps", "x0"|"sample", "v"|"v_prediction"
/// "epsilon", "x0" or "v".
std::string to_string(Prediction prediction);

/// q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)  (DDPM eq. 4), reparameterised with `noise`. t: int64 [B].
at::Tensor q_sample(const NoiseSchedule& s, const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise);

/// ᾱ_t gathered from the float64 table: [B, 1, ..., 1] (ndim dims) float64 on `device`. The
/// training-side coefficients (target, loss weight) take ᾱ from here, as q_sample takes its
/// from the float64-derived √ᾱ, √(1−ᾱ): the float32 table keeps few digits of 1 − ᾱ where ᾱ ≈ 1.
at::Tensor alpha_bar_at(const NoiseSchedule& s, const at::Tensor& t, int64_t ndim, c10::Device device);

/// One Markov step q(x_t | x_{t−1}) = N(√(1 − β_t) x_{t−1}, β_t I)  (DDPM eq. 2).
at::Tensor q_step(const NoiseSchedule& s, const at::Tensor& x_prev, const at::Tensor& t, const at::Tensor& noise);

/// q(x_{t−1} | x_t, x_0) = N(μ̃, β̃_t I)  (DDPM eqs. 6–7). Tensors broadcast against x.
struct Posterior {
  /// μ̃ (mean), β̃_t (variance) and its logarithm.
  ///@{
  at::Tensor mean, variance, log_variance;  ///< log_variance is the clipped one
  ///@}
};
/// The posterior at timesteps t (int64 [B]) given x₀ and x_t.
Posterior q_posterior(const NoiseSchedule& s, const at::Tensor& x0, const at::Tensor& xt, const at::Tensor& t);

// Conversions between ε, x₀ and v given x_t = √ᾱ x₀ + √(1−ᾱ) ε and v = √ᾱ ε − √(1−ᾱ) x₀.
/// Conversions between ε, x₀ and v (named target_from_given), given x_t and ᾱ.
///@{
at::Tensor x0_from_eps(const at::Tensor& xt, const at::Tensor& eps, const at::Tensor& alpha_bar);
at::Tensor eps_from_x0(const at::Tensor& xt, const at::Tensor& x0, const at::Tensor& alpha_bar);
at::Tensor v_from_x0_eps(const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& alpha_bar);
at::Tensor x0_from_v(const at::Tensor& xt, const at::Tensor& v, const at::Tensor& alpha_bar);
at::Tensor eps_from_v(const at::Tensor& xt, const at::Tensor& v, const at::Tensor& alpha_bar);
///@}
/// Model output of kind `p` → ε̂ / x̂₀.
/// Model output of kind `p` → ε̂ / x̂₀.
///@{
at::Tensor predict_eps(Prediction p, const at::Tensor& xt, const at::Tensor& out, const at::Tensor& alpha_bar);
at::Tensor predict_x0(Prediction p, const at::Tensor& xt, const at::Tensor& out, const at::Tensor& alpha_bar);
///@}
/// The score ∇ log p(x_t) = −ε / √(1 − ᾱ_t).
at::Tensor score_from_eps(const at::Tensor& eps, const at::Tensor& alpha_bar);

/// The regression target for prediction type p.
at::Tensor training_target(Prediction p, const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& alpha_bar);

/// Per-sample loss weighting. None: DDPM's L_simple (weight 1).
/// MinSNR (Hang et al. 2023), SNR = ᾱ/(1−ᾱ): ε: min(SNR,γ)/SNR, v: min(SNR,γ)/(SNR+1), x₀: min(SNR,γ).
enum class LossWeighting { None, MinSNR };
LossWeighting parse_loss_weighting(const std::string& text);  ///< "none"|"simple", "min-snr"
/// "none" or "min-snr".
std::string to_string(LossWeighting w);
/// The per-sample weight of the loss for prediction type p and weighting w (γ = `gamma`).
at::Tensor loss_weight(Prediction p, LossWeighting w, const at::Tensor& alpha_bar, double gamma = 5.0);

}  // namespace ddpm
