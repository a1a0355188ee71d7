#pragma once
// A run's classifier-free guidance settings as the one Guidance (samplers/steering.hpp) that
// sampling, ddpm-eval and the trainer's evaluations take: the config keeps them as flat keys
// (eval-guidance, eval-guidance-interval; distillation's guidance, guidance-interval).
#include "ddpm/pipeline/config.hpp"
#include "ddpm/samplers/steering.hpp"

namespace ddpm {

/// eval-guidance and eval-guidance-interval: how the trainer's evaluations guide their samples.
Guidance evaluation_guidance(const TrainConfig& train);
/// Sets eval-guidance and eval-guidance-interval from `g`.
void set_evaluation_guidance(TrainConfig& train, const Guidance& g);
/// guidance (unset: 0) and guidance-interval: how a distillation's teacher is guided.
Guidance teacher_guidance(const DistillConfig& distill);
/// Sets guidance and guidance-interval from `g`.
void set_teacher_guidance(DistillConfig& distill, const Guidance& g);

}  // namespace ddpm
