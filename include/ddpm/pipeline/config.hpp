#pragma once
// The whole configuration of a run: model, schedule, data, training and the sampler used for
// the sample grids. Every key is described once, in config_keys.hpp; from that table come the
// TOML reader/writer here (config files, run/config.toml, the checkpoint's copy) and the
// tools' command-line options. Keys are flat, equal to the long option names:
// `lr = 0.0002`, `base-channels = 32`.
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ddpm/data/dataset.hpp"
#include "ddpm/math/diffusion.hpp"
#include "ddpm/pipeline/ema_options.hpp"
#include "ddpm/samplers/guidance.hpp"
#include "ddpm/samplers/sampler.hpp"
#include "ddpm/math/schedule.hpp"
#include "ddpm/models/unet.hpp"

namespace ddpm {

/// Learning rate after the warm-up (lr-schedule): constant, or a cosine decay from lr to 0
/// at the last step (Loshchilov & Hutter 2017), which helps short runs most.
enum class LrSchedule { Constant, Cosine };
LrSchedule parse_lr_schedule(const std::string& text);  ///< "constant" | "cosine"
/// "constant" or "cosine".
std::string to_string(LrSchedule s);

/// Optimisation and bookkeeping. Keys in parentheses.
struct TrainConfig {
  static constexpr int64_t kMaxBatch = 1 << 16;    ///< upper bound of batch-size
  static constexpr int64_t kMaxSampleN = 1 << 12;  ///< upper bound of sample-n (one grid)
  int64_t steps = 10000;        ///< optimizer steps in all (steps)
  int64_t batch_size = 64;      ///< images per micro-batch (batch-size); per step: × grad-accum
  double lr = 2e-4;             ///< peak learning rate (lr)
  double adam_beta1 = 0.9;      ///< (adam-beta1)
  double adam_beta2 = 0.999;    ///< (adam-beta2)
  double adam_eps = 1e-8;       ///< (adam-eps)
  double weight_decay = 0.0;    ///< AdamW decoupled weight decay (weight-decay)
  int64_t warmup_steps = 0;     ///< linear warm-up from lr/warmup to lr (warmup-steps)
  LrSchedule lr_schedule = LrSchedule::Constant;  ///< after the warm-up (lr-schedule)
  double grad_clip = 1.0;       ///< max global L2 norm of the gradient; 0 = no clipping (grad-clip)
  int64_t grad_accum = 1;       ///< micro-batches per optimizer step (grad-accum)
  double ema_decay = 0.9999;    ///< (ema-decay)
  std::string ema_warmup = "rational";  ///< none | rational | power (ema-warmup), see ema.hpp
  double ema_power = 2.0 / 3.0;         ///< exponent of the power warm-up (ema-power)
  int64_t ema_update_every = 1;         ///< steps between EMA updates (ema-update-every)
  Prediction prediction = Prediction::Epsilon;  ///< what the network predicts (prediction)
  LossWeighting loss_weighting = LossWeighting::None;  ///< (loss-weighting)
  double min_snr_gamma = 5.0;   ///< γ of min-SNR weighting (min-snr-gamma)
  /// Probability of training a labelled image as "no class" (cond-drop; Ho & Salimans 2022),
  /// so that one network is both conditional and unconditional (classifier-free guidance).
  double cond_drop = 0.1;
  uint64_t seed = 0;            ///< model init, t, noise, dropout and data order (seed)
  bool bf16 = false;            ///< bf16 autocast (CUDA; CPU where supported) (bf16)
  int64_t sample_every = 0;     ///< steps between sample grids, and one at the end; 0 = none (sample-every)
  int64_t sample_n = 16;        ///< images per grid (sample-n)
  int64_t save_every = 1000;    ///< steps between checkpoints; one is always saved at the end (save-every)
  int64_t keep_last = 3;        ///< checkpoints kept; 0 = all (keep-last)
  int64_t log_every = 100;      ///< steps per metrics line / log line (log-every)
  std::string run_dir = "runs/ddpm";  ///< (run-dir)
  bool tensorboard = true;      ///< TensorBoard events files in run-dir, rank 0 (tensorboard)
  /// Sample quality during training (ddpm-eval's metrics, rank 0): every eval-every steps,
  /// eval-n samples from the EMA weights against eval-ref with the eval-features network;
  /// FID (and KID, precision/recall when eval-ref is an image set) go to metrics.jsonl.
  int64_t eval_every = 0;       ///< 0 = never (eval-every)
  int64_t eval_n = 1000;        ///< samples per evaluation (eval-n)
  /// Class-conditional runs: the guidance of those samples, weight (eval-guidance) and σ interval
  /// (eval-guidance-interval "LOW,HIGH"; the default, 0 and ∞, guides every step), as ddpm-eval's
  /// --guidance and --guidance-interval.
  Guidance eval_guidance;
  std::string eval_features;    ///< a ddpm-eval classifier or a TorchScript file (eval-features)
  std::string eval_ref;         ///< a statistics .npz, or images: a folder or idx:FILE (eval-ref)

  /// The EMA settings of this config (ema-decay, ema-warmup, ema-power).
  EmaOptions ema_options() const;
  /// Throws std::invalid_argument naming the key.
  void validate() const;
};

/// Progressive distillation (ddpm-distill, distill.hpp; Salimans & Ho 2022): how a student is
/// distilled, and what it was distilled for. Empty `teacher`: not a distillation run.
struct DistillConfig {
  std::string teacher;              ///< the teacher's checkpoint or run directory (teacher)
  std::string student_init;         ///< the student's first weights (student-init); "" = the teacher's
  int64_t start_steps = 64;         ///< DDIM steps of the teacher in the first round (start-steps)
  int64_t final_steps = 1;          ///< the student's DDIM steps after the last round (final-steps)
  int64_t steps_per_round = 1000;   ///< optimizer steps per round (steps-per-round)
  /// Class-conditional teachers: the teacher is guided with weight w (guidance) where σ is in
  /// (low, high] (guidance-interval).
  Guidance guidance;
  /// Whether `guidance` was given; unset, the teacher's eval-guidance and its interval are used
  /// (and guidance-interval alone is refused).
  bool guidance_given = false;
  /// Recorded in the student's checkpoints: the DDIM steps it is distilled for (0 = not
  /// distilled; during a round, that round's target) and the rounds done.
  int64_t distilled_steps = 0;
  int64_t distilled_rounds = 0;  ///< rounds done

  /// Whether this is a distillation run (a teacher is named).
  bool active() const { return !teacher.empty(); }
  /// log2(start-steps / final-steps): N halves every round.
  int64_t rounds() const;
  /// Throws BadInput naming the key: final-steps must be start-steps / 2^k with k >= 1.
  void validate() const;
};

/// A run's whole configuration: what config.toml and a checkpoint hold; every field is a
/// config key and a ddpm-train option.
struct Config {
  /// The network ([model]).
  UNetConfig model;
  /// The noise schedule ([schedule]).
  ScheduleConfig schedule;
  /// The training data ([data]).
  DataConfig data;
  /// Optimisation and bookkeeping ([training]).
  TrainConfig train;
  DistillConfig distill;  ///< distillation runs and distilled students
  SamplerConfig sample;  ///< the sampler for the sample grids; its prediction follows train.prediction
  std::string image_size;  ///< "N" or "HxW" (image-size); "" = the data's size
  int64_t channels = 0;    ///< 1, 3 or 4 (channels); 0 = the data's channel count

  /// Copies image-size and channels into model and data (where set), and
  /// train.prediction into sample.prediction. Throws std::invalid_argument naming the key.
  void resolve();
  /// Fixes the shape to the data's (sets image-size "HxW", channels, model and data).
  void set_shape(int64_t channels, int64_t height, int64_t width);
  /// Takes the classes from the data's labels: num-classes inferred when 0 (else it must
  /// match), class-names from class folders (a resumed run must see the same ones). A
  /// conditional model needs labelled data. Throws std::invalid_argument naming the option.
  void set_classes(const Dataset& data);
  /// resolve() + every area's validate().
  void validate() const;
};

inline constexpr int64_t kMaxImageSide = 4096;  ///< upper bound of each side of image-size
/// "32" → {32, 32}; "28x32" → {28, 32} (height × width). Throws std::invalid_argument naming --image-size.
std::pair<int64_t, int64_t> parse_image_size(const std::string& text);

/// The config as TOML text (every key, defaults included), as written to run/config.toml.
std::string config_to_toml(const Config& config);
/// Parses TOML text; keys absent keep their defaults. Keys are flat, or inside a table named
/// after their group ([data], [model], [schedule], [training], [sampling]).
/// Throws std::invalid_argument (one line, with the line number) for malformed TOML, an
/// unknown key or a bad value.
Config config_from_toml(const std::string& text);
/// The same over `base` instead of the defaults: keys absent keep base's values.
Config config_from_toml(const std::string& text, Config base);
/// Reads a TOML file (a regular file of at most 1 MiB). Throws std::invalid_argument naming the file.
Config config_from_file(const std::string& path);

}  // namespace ddpm
