#pragma once
// Checkpoints: one file holds everything a run needs to continue exactly, or to sample.
//
// Layout (a torch::serialize archive, i.e. a zip of pickled tensors):
//   libddpm          "libddpm-checkpoint"       (marker: tells our files from foreign archives)
//   format_version   int                         (kCheckpointFormatVersion)
//   config           string                      (the resolved config as TOML, config.hpp)
//   step             int                         (optimizer steps done)
//   model/           the network's parameters and buffers (Module::save layout)
//   ema/             the EMA weights, same layout (absent when there is no EMA)
//   ema_updates      int
//   optimizer/       optimizer state (absent in sampling-only files)
//   rng/<name>       uint8 generator states (exact resume)
//   data_epoch, data_position   the loader's LoaderState
//   objective/<name>  tensors of the training objective's own state (objective.hpp; absent when none)
// Files are serialized in memory, written to "<path>.tmp" (every write checked), fsynced, renamed,
// and the directory fsynced: a crash or a full disk mid-save never leaves a half-written
// checkpoint under a checkpoint's name, and the previous one stays. Files are read without
// LibTorch's loader (src/io/torch_archive.hpp: the bounded zip reader and the restricted
// unpickler; nothing in a file is run): the CRC-32 of every record is verified, every tensor
// must lie inside its storage, and anything outside the layout above is refused.
#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddpm/pipeline/config.hpp"
#include "ddpm/math/schedule.hpp"
#include "ddpm/models/unet.hpp"

namespace torch::optim {
class Optimizer;
}
namespace ddpm::io {
struct TorchArchive;
}

namespace ddpm {

/// The checkpoint format this library writes and reads (other versions are refused).
inline constexpr int64_t kCheckpointFormatVersion = 1;

/// What save_checkpoint writes. Null members are left out.
struct CheckpointContents {
  /// The resolved run config as TOML.
  std::string config_toml;
  /// Optimizer steps done.
  int64_t step = 0;
  const torch::nn::Module* model = nullptr;  ///< required
  /// The EMA weights (optional).
  const torch::nn::Module* ema = nullptr;
  /// EMA updates applied (its warm-up depends on it).
  int64_t ema_updates = 0;
  /// The optimizer state (optional: sampling-only files have none).
  const torch::optim::Optimizer* optimizer = nullptr;
  std::map<std::string, at::Tensor> rng;  ///< generator states by name
  /// The data loader's position.
  LoaderState data_state;
  std::map<std::string, at::Tensor> objective;  ///< the training objective's state by name
};

/// A checkpoint whose bytes are damaged (CRC-32 mismatch, damaged zip directory, unreadable
/// archive): an older checkpoint of the run may still be good.
class CorruptCheckpointError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// The first floating-point tensor of `contents` (model, EMA, optimizer state) holding NaN or
/// infinity, named (e.g. "model weight down.0.conv.weight"); "" when every one is finite.
std::string first_non_finite(const CheckpointContents& contents);

/// Writes `path` atomically and durably (see above), creating its directory. Throws
/// std::runtime_error (one line, naming the file and the reason, e.g. no space left on device,
/// or a weight that is NaN/inf: a checkpoint is never written from non-finite weights);
/// nothing is left behind and an existing `path` is unchanged.
void save_checkpoint(const std::string& path, const CheckpointContents& contents);

/// "<run_dir>/checkpoints/ckpt-<step, 8 digits>.pt"
std::string checkpoint_path(const std::string& run_dir, int64_t step);
/// The checkpoint with the highest step in run_dir/checkpoints ("" if none). Only names
/// `ckpt-<digits>.pt` count: temporary files of an interrupted save are ignored.
std::string latest_checkpoint(const std::string& run_dir);
/// All checkpoints of a run, by ascending step.
std::vector<std::string> list_checkpoints(const std::string& run_dir);
/// Deletes all but the `keep_last` newest checkpoints (keep_last <= 0: keeps all),
/// and stale temporary files of interrupted saves. Call it only after the newest is durable.
void prune_checkpoints(const std::string& run_dir, int64_t keep_last);
/// Moves the checkpoints of steps after `step` into `run_dir/checkpoints/abandoned-<UTC time>/`
/// (a run resumed from an older checkpoint must not mix them with its own). Returns that
/// directory, or "" when there were none.
std::string abandon_checkpoints_after(const std::string& run_dir, int64_t step);

/// An opened checkpoint. Every failure is a std::invalid_argument with a one-line
/// message naming the file and what is wrong (missing, not a regular file, truncated, foreign,
/// unknown version, weights that do not fit the model); damaged bytes and files outside the
/// checkpoint layout are a CorruptCheckpointError.
class CheckpointReader {
 public:
  /// `path`: a checkpoint file, or a run directory (its latest checkpoint).
  /// Tensors are loaded onto `device`.
  explicit CheckpointReader(const std::string& path, c10::Device device = c10::kCPU);
  ~CheckpointReader();
  /// Movable.
  CheckpointReader(CheckpointReader&&) noexcept;

  /// The checkpoint file read (a run directory resolved to its latest).
  const std::string& path() const { return path_; }
  /// The file's format version.
  int64_t format_version() const { return format_version_; }
  /// Optimizer steps done when it was saved.
  int64_t step() const { return step_; }
  /// The run config as TOML.
  const std::string& config_toml() const { return config_toml_; }
  Config config() const;  ///< config_from_toml(config_toml())

  /// Copies the saved weights into `model` (std::invalid_argument when they do not fit).
  void load_model(torch::nn::Module& model) const;
  /// Whether the file holds EMA weights.
  bool has_ema() const;
  /// Copies the EMA weights into `shadow`.
  void load_ema(torch::nn::Module& shadow) const;
  /// EMA updates applied when it was saved.
  int64_t ema_updates() const;
  /// Whether the file holds optimizer state.
  bool has_optimizer() const;
  /// Restores the optimizer state into `optimizer`.
  void load_optimizer(torch::optim::Optimizer& optimizer) const;
  /// The generator state saved under `name` (undefined tensor if absent), on the CPU.
  at::Tensor rng_state(const std::string& name) const;
  /// The data loader's saved position.
  LoaderState data_state() const;
  /// The training objective's tensor saved under `name` (undefined tensor if absent), on the reader's device.
  at::Tensor objective_state(const std::string& name) const;

 private:
  void load_module(const std::string& key, torch::nn::Module& module) const;
  std::string path_;
  std::unique_ptr<const io::TorchArchive> archive_;
  c10::Device device_;  ///< where the optimizer state goes
  int64_t format_version_ = 0, step_ = 0;
  std::string config_toml_;
};

/// A trained network ready to sample from: the config, the U-Net (eval mode, on `device`,
/// EMA weights when asked and present), and the noise schedule on `device`.
struct LoadedModel {
  /// The run config the checkpoint holds.
  Config config;
  /// The network, in eval mode.
  UNet model;
  /// The noise schedule of the config.
  NoiseSchedule schedule;
  /// Optimizer steps the weights were trained for.
  int64_t step;
  bool ema;  ///< whether the EMA weights were loaded
  std::string path;  ///< the checkpoint file read
};
/// `path`: a checkpoint file or a run directory. use_ema: the EMA weights if the checkpoint
/// has them (else the raw weights). Throws std::invalid_argument (one line) as CheckpointReader.
LoadedModel load_model_for_sampling(const std::string& path, c10::Device device = c10::kCPU, bool use_ema = true);

}  // namespace ddpm
