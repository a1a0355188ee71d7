#pragma once
// What the Trainer's files share (trainer.cpp: the loop; trainer_state.cpp: checkpoints of the
// trainer's state; trainer_log.cpp: metrics, TensorBoard and sample grids; trainer_eval.cpp:
// evaluations): the generators, bf16 autocast and the Trainer's private State.
#include <ATen/Tensor.h>
#include <ATen/core/Generator.h>
#include <c10/core/Device.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "ddpm/eval/evaluator.hpp"
#include "ddpm/train/tensorboard.hpp"
#include "ddpm/train/trainer.hpp"

namespace ddpm {
namespace trainer_detail {

/// The global CPU generator (weight init, dropout on the CPU).
at::Generator& global_cpu_generator();
/// The device's default generator (dropout on CUDA draws from it); device-generic, so no
/// CUDA headers are needed.
at::Generator device_generator(c10::Device device);
/// A generator's state, read or set under its lock.
at::Tensor get_state(at::Generator& gen);
/// Sets a generator's state under its lock.
void set_state(at::Generator& gen, const at::Tensor& state);

/// Every checkpoint was checked finite before it was written, so the latest is the last good
/// one: "the last good checkpoint is PATH" or "no checkpoint was saved".
std::string last_good_checkpoint(const std::string& run_dir);

/// bf16 autocast for a forward pass on `device` while alive (the loss is computed in fp32).
class Autocast {
 public:
  /// Enables autocast when `enabled`.
  Autocast(bool enabled, c10::Device device);
  /// Restores the previous autocast setting.
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool enabled_, cuda_, previous_ = false;
};

}  // namespace trainer_detail

struct Trainer::State {
  State(const std::vector<at::Tensor>& params, const TrainConfig& t)
      : optimizer(params, torch::optim::AdamWOptions(t.lr)
                              .betas(std::make_tuple(t.adam_beta1, t.adam_beta2))
                              .eps(t.adam_eps)
                              .weight_decay(t.weight_decay)) {}
  torch::optim::AdamW optimizer;
  std::unique_ptr<DataLoader> loader;
  std::ofstream metrics;
  std::unique_ptr<TensorBoardLog> tensorboard;  // rank 0, when config.train.tensorboard
  // Evaluation (eval-every): the feature network and the reference, loaded at the first one.
  std::unique_ptr<eval::Evaluator> evaluator;
  // Metrics window since the last line.
  double window_loss = 0;
  int64_t window_steps = 0, window_images = 0;
  std::chrono::steady_clock::time_point window_start = std::chrono::steady_clock::now();
  dist::ReducerStats window_reducer;  // the all-reduce totals when the window began

  // Opens the run directory's files (config.toml, metrics.jsonl), the evaluator (eval-every)
  // and the TensorBoard log as `config` says, for a run at `step` (trainer_log.cpp); starts
  // the first metrics window.
  void open_run(const Config& config, int64_t step, bool writes, c10::Device device, const TrainerOptions& options);
  // The metrics of the window that ends with `stats` (trainer_log.cpp); starts the next one.
  TrainingScalars end_window(const StepStats& stats, const TrainerOptions& options);

  // Starts a metrics window after `now`.
  void start_window(std::chrono::steady_clock::time_point now, const TrainerOptions& options) {
    window_loss = 0;
    window_steps = window_images = 0;
    window_start = now;
    if (options.reducer_stats) window_reducer = options.reducer_stats();
  }
};

}  // namespace ddpm
