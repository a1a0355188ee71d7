#pragma once
// Training loop of a DDPM: L_simple (DDPM eq. 14) or its ε/x₀/v and min-SNR variants,
// AdamW with linear warm-up, gradient clipping and accumulation, EMA of the weights,
// checkpoints, sample grids and a metrics log in a run directory.
//
// Run directory (written by rank 0 only):
//   config.toml      the resolved config
//   metrics.jsonl    {"step":…, "loss":…, "lr":…, "grad_norm":…, "images_per_s":…, "step_time":…} every
//                    log-every steps (data parallel: and "allreduce_hidden")
//   checkpoints/     ckpt-<step>.pt, the last keep-last of them
//   samples/         step-<step>.png grids from the EMA weights
//   events.out.tfevents.*   the same numbers, the grids and the config for TensorBoard (tensorboard.hpp)
//
// Determinism: on the CPU, a run is a pure function of the config (seed included) and of the
// thread count; N steps, then resume() and M more steps reproduce N + M steps bitwise.
#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddpm/dist/gradient_reducer.hpp"
#include "ddpm/pipeline/config.hpp"
#include "ddpm/data/dataset.hpp"
#include "ddpm/train/ema.hpp"
#include "ddpm/math/schedule.hpp"
#include "ddpm/models/unet.hpp"
#include "ddpm/train/objective.hpp"
#include "ddpm/train/tensorboard.hpp"

namespace ddpm {

/// One optimizer step's numbers.
struct StepStats {
  int64_t step = 0;         ///< 1-based: steps done after this one
  double loss = 0;          ///< mean over the step's micro-batches
  double lr = 0;            ///< the learning rate used
  double grad_norm = 0;     ///< global L2 norm before clipping
  double images_per_s = 0;  ///< this step's throughput
};

/// Thrown when the loss or gradient is NaN or infinite; nothing is saved for that step.
class NonFiniteLossError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown by train_step when the stop flag is seen between micro-batches: the step is undone
/// (gradients, loader and generators back to where it began), step() is unchanged.
class StepInterrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How a Trainer fits into its surroundings: data parallelism, stop requests, callbacks.
struct TrainerOptions {
  /// Data parallel (see docs/distributed.md): `batch-size` is the GLOBAL
  /// batch of a micro-batch; rank r of W loads images [r·B/W, (r+1)·B/W) of it, and each image's
  /// timestep and noise come from a stream keyed by (seed, step, its index in the global batch),
  /// so a step's gradient is the same whatever W (up to summation order) and checkpoints resume
  /// at any world size. Only rank 0 writes files.
  int rank = 0;
  /// The number of ranks (rank: this process's).
  int world_size = 1;
  /// Called after the backward of a step's last micro-batch, before clipping, with the model
  /// whose .grad() hold this rank's part: must leave in every .grad() the SUM over the ranks
  /// (the loss is already scaled by 1/global batch).
  std::function<void(torch::nn::Module&)> reduce_gradients;
  /// Called before each micro-batch's backward: whether it is the one whose gradients are
  /// reduced (the last of the step; earlier ones only accumulate).
  std::function<void(bool)> set_sync;
  /// Sum over the ranks, in place, of a small float64 CPU tensor (the loss and the stop and
  /// non-finite flags, which every rank must agree on or one would wait forever in a collective).
  /// Required when world_size > 1.
  std::function<void(at::Tensor&)> all_reduce_sum;
  /// Waits for every rank (around rank 0's checkpoint saves). Required when world_size > 1.
  std::function<void()> barrier;
  /// Data parallel: the gradient all-reduce's timings so far (metrics report the fraction of
  /// each log window's all-reduce hidden behind backward). Optional.
  std::function<dist::ReducerStats()> reducer_stats;
  /// When set and true, fit() stops after the current step (or between its micro-batches,
  /// undoing the step) and saves a checkpoint. With world_size > 1, a stop on any rank stops
  /// all of them after the same step.
  const std::atomic<bool>* stop = nullptr;
  /// Called after each step (rank 0 included or not: every rank).
  std::function<void(const StepStats&)> on_step;
  /// Called with a message for the log (checkpoints saved, samples written).
  std::function<void(const std::string&)> on_event;
  bool write_files = true;  ///< false: nothing is written (tests of the arithmetic)
  /// What is minimised (objective.hpp); null: the denoising loss of config.train.
  std::shared_ptr<TrainingObjective> objective;
};

/// The timesteps, noise and label-drop numbers of `count` images of a micro-batch, starting at
/// `first` in the global batch: image i draws from its own stream keyed by
/// (seed, step, micro_batch · batch_size + first + i) — first u → t = ⌊u·T⌋, then u_drop, then
/// the noise — so they do not depend on how the global batch is split between ranks.
struct TrainingDraws {
  at::Tensor timesteps;  ///< int64 [count]
  at::Tensor drop_u;     ///< float64 [count] in [0, 1): drop the class label when < cond-drop
  at::Tensor noise;      ///< float32 [count, shape...]
};
/// The draws described above, for images first .. first + count − 1 of micro-batch
/// `micro_batch` of step `step`.
TrainingDraws training_draws(uint64_t seed, int64_t step, int64_t micro_batch, int64_t batch_size, int64_t first,
                             int64_t count, const std::vector<int64_t>& image_shape, int64_t num_timesteps);

/// Trains a U-Net on a dataset as the config says: the loop of ddpm-train, with checkpoints,
/// sample grids, metrics and evaluations in the run directory.
class Trainer {
 public:
  /// `config` must be resolved to the dataset's shape (Config::set_shape).
  Trainer(Config config, std::shared_ptr<Dataset> dataset, c10::Device device = c10::kCPU,
          TrainerOptions options = {});
  ~Trainer();

  /// Loads model, EMA, optimizer, step, RNG and loader state from a checkpoint file or run
  /// directory. Model keys must match this trainer's config.
  void resume(const std::string& checkpoint_or_run_dir);
  /// Starts from another run's weights (its EMA weights if it has them): the model and its EMA
  /// both get them; the optimizer, step and data order stay fresh. Model keys must match.
  void init_weights(const std::string& checkpoint_or_run_dir);

  /// One optimizer step (grad-accum micro-batches). Throws NonFiniteLossError, StepInterrupted.
  StepStats train_step();
  /// Trains until config.train.steps (or the stop flag), saving, sampling and logging on the way;
  /// saves a final checkpoint. Returns the number of steps done by this call.
  int64_t fit();

  /// Writes `run-dir/checkpoints/ckpt-<step>.pt` and prunes old ones. Returns its path.
  std::string save_checkpoint();
  /// Writes `run-dir/samples/step-<step>.png` from the EMA weights. Returns its path.
  std::string save_samples();
  /// Samples n images from the EMA weights (float [n,C,H,W] in [−1, 1], CPU).
  at::Tensor sample_images(int64_t n);
  /// Samples eval-n images (noise indices 0..n−1) and measures them against eval-ref with the
  /// eval-features network (see TrainConfig). Appends {"step", "fid", ...} to metrics.jsonl
  /// and returns that JSON line. Rank 0 only; others return "".
  std::string evaluate();

  /// Optimizer steps done.
  int64_t step() const { return step_; }
  double lr_at(int64_t step) const;  ///< learning rate of the step after `step` steps
  /// The run config.
  const Config& config() const { return config_; }
  /// The network being trained.
  UNet model() const { return model_; }
  /// The network holding the EMA weights (what sample grids and ddpm-sample use).
  UNet ema_model() const { return ema_model_; }
  /// The EMA that updates ema_model().
  const EMA& ema() const { return *ema_; }
  /// The noise schedule (on the trainer's device).
  const NoiseSchedule& schedule() const { return *schedule_; }
  /// The data loader's position (saved in checkpoints).
  LoaderState loader_state() const;

 private:
  void write_metrics(const TrainingScalars& m);
  void event(const std::string& message) const;
  bool writes() const { return options_.rank == 0 && options_.write_files; }
  bool distributed() const { return options_.world_size > 1; }
  bool stop_requested();  // the local flag, or (distributed) the one the ranks agreed on
  void barrier() const;

  Config config_;
  std::shared_ptr<Dataset> dataset_;
  c10::Device device_;
  TrainerOptions options_;
  std::unique_ptr<NoiseSchedule> schedule_;
  UNet model_{nullptr}, ema_model_{nullptr};
  std::unique_ptr<EMA> ema_;
  std::shared_ptr<TrainingObjective> objective_;
  struct State;  // optimizer, loader, metrics (heavy headers stay in trainer.cpp)
  std::unique_ptr<State> state_;
  int64_t step_ = 0;
  bool stop_agreed_ = false;  // distributed: some rank asked to stop (agreed in the last step)
};

}  // namespace ddpm
