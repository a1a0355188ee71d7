#include "ddpm/pipeline/run_guidance.hpp"

namespace ddpm {

Guidance evaluation_guidance(const TrainConfig& train) {
  Guidance g;
  g.weight = train.eval_guidance;
  g.sigma_low = train.eval_guidance_sigma_low;
  g.sigma_high = train.eval_guidance_sigma_high;
  return g;
}

void set_evaluation_guidance(TrainConfig& train, const Guidance& g) {
  train.eval_guidance = g.weight;
  train.eval_guidance_sigma_low = g.sigma_low;
  train.eval_guidance_sigma_high = g.sigma_high;
}

Guidance teacher_guidance(const DistillConfig& distill) {
  Guidance g;
  g.weight = distill.guidance.value_or(0.0);
  g.sigma_low = distill.guidance_sigma_low;
  g.sigma_high = distill.guidance_sigma_high;
  return g;
}

void set_teacher_guidance(DistillConfig& distill, const Guidance& g) {
  distill.guidance = g.weight;
  distill.guidance_sigma_low = g.sigma_low;
  distill.guidance_sigma_high = g.sigma_high;
}

}  // namespace ddpm
