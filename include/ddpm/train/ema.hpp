#pragma once
// Exponential moving average of a model's weights (Polyak averaging; DDPM §4 uses decay 0.9999).
// The average lives in a second module of the same architecture (the "shadow"), so it can be
// saved, loaded and sampled from exactly like the model. The noise schedule is plain tensors
// held outside the network, so it is never averaged.
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>

namespace ddpm {

/// How the decay grows while the average is young (n = number of updates already applied):
///   none:     decay_n = decay
///   rational: decay_n = min(decay, (1 + n) / (10 + n))          (diffusers EMAModel's default)
///   power:    decay_n = min(decay, 1 − (1 + n)^(−power))        (ema-pytorch, diffusers use_ema_warmup;
///                                                                power 2/3 suits ~1M steps, 3/4 ~100k)
/// The first update under rational uses 0.1 and under power 0, so a young average follows the weights.
enum class EmaWarmup { None, Rational, Power };
EmaWarmup parse_ema_warmup(const std::string& text);  ///< "none" | "rational" | "power"
/// "none", "rational" or "power".
std::string to_string(EmaWarmup warmup);

/// The EMA's settings (ema-decay, ema-warmup, ema-power).
struct EmaOptions {
  /// The decay once the average is old (DDPM: 0.9999).
  double decay = 0.9999;
  /// How the decay grows while the average is young.
  EmaWarmup warmup = EmaWarmup::Rational;
  /// The exponent of the power warm-up.
  double power = 2.0 / 3.0;
};

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
