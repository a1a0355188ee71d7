#pragma once
// ddpm-sample's steering options: --class/--guidance (classifier-free guidance), --init/--strength
// (SDEdit), --init/--mask (RePaint inpainting), --upscale (ILVR super-resolution).
#include <ATen/Tensor.h>
#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ddpm/models/unet.hpp"
#include "ddpm/samplers/steering.hpp"

namespace ddpm::cli {

struct GuideOptions {
  std::string cls;                 ///< --class NAME|ID|all
  std::optional<double> guidance;  ///< --guidance w
  std::vector<double> guidance_interval;  ///< --guidance-interval LOW,HIGH (σ)
  std::string init;                ///< --init IMG|DIR
  std::optional<double> strength;  ///< --strength s (SDEdit)
  std::string mask;                ///< --mask IMG: white (>= 128) = keep, black = fill in
  int64_t jump_length = 10, resample = 10;
  std::string upscale;             ///< --upscale IMG|DIR (low resolution)
};
void add_guide_options(CLI::App& app, GuideOptions& o);

/// --guidance-interval LOW,HIGH (ddpm-sample, ddpm-eval) and its check into g.
CLI::Option* add_guidance_interval_option(CLI::App& app, std::vector<double>& interval);
void set_guidance_interval(Guidance& g, const std::vector<double>& interval);

/// The options resolved against the checkpoint's model, before any sampling.
class Guide {
 public:
  /// Checks everything (one-line std::invalid_argument naming the option); may set n and nrow
  /// (--class all: one row of nrow images per class).
  Guide(const GuideOptions& o, const UNetConfig& model, int64_t& n, int64_t& nrow);
  /// The denoiser of images [first, first + count) of the run.
  Denoiser denoiser(const ConditionalDenoiser& model, const NoiseSchedule& schedule, int64_t first, int64_t count) const;
  Steering steering(const NoiseSchedule& schedule, int64_t first, int64_t count) const;
  std::string describe() const;  ///< one log line, "" for plain sampling

 private:
  std::vector<int64_t> labels_;  ///< per image; empty: unconditional
  Guidance guidance_;
  at::Tensor init_;    ///< [k, C, H, W] float in [−1, 1]; image j uses j % k
  double strength_ = 1.0;
  at::Tensor keep_;    ///< [1, 1, H, W] bool (RePaint)
  int64_t jump_length_ = 10, resample_ = 10;
  at::Tensor lowres_;  ///< [k, C, H/N, W/N] (ILVR)
  int64_t factor_ = 1;
  std::string what_;
};

}  // namespace ddpm::cli
