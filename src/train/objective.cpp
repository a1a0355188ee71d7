#include "ddpm/train/objective.hpp"

#include <ATen/ATen.h>

#include "ddpm/math/diffusion.hpp"

namespace ddpm {

DenoisingObjective::DenoisingObjective(const TrainConfig& train, const NoiseSchedule& schedule)
    : train_(train), schedule_(schedule) {}

at::Tensor DenoisingObjective::loss(const ObjectiveBatch& b, const ModelForward& model) {
  // ᾱ in float64 (as q_sample's coefficients): float32 ᾱ = 0.9999 leaves 1 − ᾱ off by 2e-4.
  const at::Tensor alpha_bar = alpha_bar_at(schedule_, b.timesteps, b.x0.dim(), b.x0.device());
  const at::Tensor xt = q_sample(schedule_, b.x0, b.timesteps, b.noise);  // DDPM eq. 4
  const at::Tensor out = model(xt, b.timesteps, b.labels);
  const at::Tensor target = training_target(train_.prediction, b.x0, b.noise, alpha_bar);
  const at::Tensor mse = (out - target).pow(2).mean({1, 2, 3});
  const int64_t B = b.x0.size(0);
  return loss_weight(train_.prediction, train_.loss_weighting, alpha_bar, train_.min_snr_gamma).to(at::kFloat).reshape({B}) *
         mse;
}

}  // namespace ddpm
