#pragma once
// A run's TensorBoard log: what ddpm-train (rank 0) and ddpm-eval --log-to write, under stable
// tags, into events files (io/event_file.hpp) that `tensorboard --logdir runs` shows.
//   train/loss train/lr train/grad_norm train/images_per_s train/step_time train/allreduce_hidden
//   eval/fid eval/kid eval/precision eval/recall      scalars
//   samples                                            the sample grids (PNG)
//   config                                             the resolved config.toml (text)
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "ddpm/data/image.hpp"
#include "ddpm/io/event_file.hpp"

namespace ddpm {

/// One metrics.jsonl line of training: the means over the log-every window that ends at `step`.
struct TrainingScalars {
  int64_t step = 0;         ///< the step the window ends at
  double loss = 0;          ///< mean loss of the window's steps
  double lr = 0;            ///< of the last step
  double grad_norm = 0;     ///< of the last step, before clipping
  double images_per_s = 0;  ///< global images per second over the window
  double step_time = 0;     ///< seconds per step over the window
  /// Data parallel: fraction of the window's gradient all-reduce time hidden behind backward.
  std::optional<double> allreduce_hidden;
};

/// Sample quality of the model at `step` (trainer's eval-every, or ddpm-eval compare).
struct EvalScores {
  int64_t step = 0;                  ///< the checkpoint's step
  std::optional<double> fid;         ///< eval/fid (absent: not measured)
  std::optional<double> kid;         ///< eval/kid
  std::optional<double> precision;   ///< eval/precision
  std::optional<double> recall;      ///< eval/recall
};

/// A run's TensorBoard log: the trainer's scalars, grids and config under stable tags
/// (train/*, eval/*, samples, config), one events file per start.
class TensorBoardLog {
 public:
  /// A new events file in `dir` (see io::EventFileWriter).
  explicit TensorBoardLog(const std::string& dir);
  /// Training (re)starts after `step` steps: a SessionLog START at step + 1, so that TensorBoard
  /// drops the points earlier files logged after the checkpoint a run resumed from (and its
  /// curves line up with an uninterrupted run's).
  void start(int64_t step);
  /// The resolved config (TOML), as a code block under the tag `config`.
  void config(int64_t step, const std::string& config_toml);
  /// The train/* scalars of one metrics.jsonl line.
  void train(const TrainingScalars& s);
  /// The eval/* scalars that were measured.
  void eval(const EvalScores& s);
  /// A sample grid under the tag `samples`.
  void samples(int64_t step, const Image& grid);
  /// The events file's path.
  const std::string& path() const { return writer_.path(); }

 private:
  io::EventFileWriter writer_;
};

}  // namespace ddpm
