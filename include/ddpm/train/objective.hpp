#pragma once
// What the Trainer minimises, per image of a micro-batch: the denoising loss by default (DDPM's
// L_simple and its ε/x₀/v, min-SNR variants), or another objective on the same loop — the same
// data, draws, checkpoints, resume, data parallelism and metrics (e.g. distillation, distill.hpp).
#include <ATen/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "ddpm/math/schedule.hpp"
#include "ddpm/models/unet.hpp"
#include "ddpm/pipeline/config.hpp"

namespace ddpm {

/// One micro-batch as the trainer draws it (training_draws in trainer.hpp), on the device.
struct ObjectiveBatch {
  at::Tensor x0;         ///< clean images [B, C, H, W]
  at::Tensor noise;      ///< ε ~ N(0, I), same shape
  at::Tensor timesteps;  ///< int64 [B], t = ⌊u·T⌋ from the image's own stream
  at::Tensor labels;     ///< int64 [B] (kNoClass where cond-drop dropped it), undefined if unconditional
};

/// The network being trained, forward under the trainer's autocast; float32 output.
using ModelForward = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& t, const at::Tensor& labels)>;

/// What the trainer minimises (the denoising loss by default; ddpm-distill's objective): the
/// trainer owns the loop, checkpoints and data, the objective the loss and its own state.
class TrainingObjective {
 public:
  virtual ~TrainingObjective() = default;
  /// Called with the steps done (0 before the first step, after each step, after a resume),
  /// the EMA weights and the run's config, which it may update (what checkpoints record, the
  /// sampler of the grids). Must be a function of (its state, step, EMA weights): resume relies on it.
  virtual void at_step(int64_t /*step*/, const UNet& /*ema_model*/, Config& /*config*/) {}
  /// Weighted loss of each image, float [B]; the trainer sums them over the global batch.
  virtual at::Tensor loss(const ObjectiveBatch& batch, const ModelForward& model) = 0;
  /// State beyond the trainer's that a checkpoint holds for an exact resume (name → tensor).
  virtual std::map<std::string, at::Tensor> state() const { return {}; }
  /// Restores state(): `read(name)` gives the saved tensor (undefined when absent).
  virtual void load_state(const std::function<at::Tensor(const std::string&)>& /*read*/) {}
};

/// DDPM's denoising loss: x_t = q_sample(x₀, t, ε) (DDPM eq. 4), the network's output against
/// the target of train.prediction, weighted by train.loss-weighting.
class DenoisingObjective : public TrainingObjective {
 public:
  /// The prediction target and loss weighting of `train`, on `schedule`.
  DenoisingObjective(const TrainConfig& train, const NoiseSchedule& schedule);
  at::Tensor loss(const ObjectiveBatch& batch, const ModelForward& model) override;

 private:
  TrainConfig train_;
  const NoiseSchedule& schedule_;
};

}  // namespace ddpm
