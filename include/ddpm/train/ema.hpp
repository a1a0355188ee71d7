#pragma once
// Exponential moving average of a model's weights (Polyak averaging; DDPM §4 uses decay 0.9999).
// The average lives in a second module of the same architecture (the "shadow"), so it can be
// saved, loaded and sampled from exactly like the model. The noise schedule is plain tensors
// held outside the network, so it is never averaged.
#include <torch/nn/module.h>

#include "ddpm/pipeline/ema_options.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace ddpm {

/// The exponential moving average of a model's weights, kept in a shadow module.
class EMA {
 public:
  /// `shadow` must have the same architecture as `model`; it is overwritten with the model's
  /// weights and switched to eval mode with gradients off.
  EMA(std::shared_ptr<torch::nn::Module> model, std::shared_ptr<torch::nn::Module> shadow, EmaOptions options);

  /// The decay used by update number n (0-based).
  double decay_at(int64_t n) const;
  /// shadow ← decay_n · shadow + (1 − decay_n) · model for every parameter; buffers are copied.
  void update();
  /// Sets the shadow to the model's current weights (restarts nothing else).
  void copy_from_model();

  /// The number of updates applied so far (restored from checkpoints).
  ///@{
  int64_t num_updates() const { return num_updates_; }
  void set_num_updates(int64_t n) { num_updates_ = n; }
  ///@}
  /// The settings it was made with.
  const EmaOptions& options() const { return options_; }
  /// The module holding the averaged weights.
  std::shared_ptr<torch::nn::Module> shadow() const { return shadow_; }

 private:
  std::shared_ptr<torch::nn::Module> model_, shadow_;
  EmaOptions options_;
  int64_t num_updates_ = 0;
};

}  // namespace ddpm
