#pragma once
// The training tools' one command line and run loop (train.cpp): ddpm-train, and ddpm-distill on
// top of it with a distillation objective (distill.cpp) — the same run directory, resume, data
// parallel, signals and progress.
#include <functional>
#include <memory>
#include <string>

#include <c10/core/Device.h>

#include "ddpm/pipeline/config.hpp"
#include "ddpm/train/objective.hpp"

namespace ddpm {
class Trainer;
}

namespace ddpm::cli {

struct TrainTool {
  std::string name = "ddpm-train";
  std::string description, footer;
  /// Binds ddpm-distill's keys (teacher, start-steps, ...); a run is a distillation exactly when
  /// its config names a teacher, so each tool refuses to start or resume the other's runs.
  bool distill = false;
  /// A fresh run's config from the parsed one (ddpm-distill: the student's, from the teacher).
  std::function<Config(const Config& parsed, c10::Device device)> fresh_config;
  /// The objective of a run (null: the denoising loss); `resuming`: it will be loaded from the checkpoint.
  std::function<std::shared_ptr<TrainingObjective>(const Config& config, c10::Device device, bool resuming)>
      objective;
  /// After the Trainer is built, in fresh runs only (ddpm-distill: the student's first weights).
  std::function<void(Trainer& trainer)> fresh_start;
};

int run_train_tool(int argc, char** argv, const TrainTool& tool);

}  // namespace ddpm::cli
