#pragma once
// Hugging Face diffusers' UNet2DModel folders (config.json, diffusion_pytorch_model.safetensors
// or .bin, and a pipeline's scheduler/scheduler_config.json) ↔ libddpm. Supported: the DDPM
// family of UNet2DModel configs — DownBlock2D / AttnDownBlock2D (and the mirrored up blocks),
// UNetMidBlock2D with attention, positional time embedding, conv resampling with
// downsample_padding 0, SiLU, resnet_time_scale_shift "default", no class embedding.
// Anything else is an error naming the config key.
#include <string>

#include "ddpm/pipeline/config.hpp"
#include "ddpm/interop/state_dict.hpp"

namespace ddpm::interop {

/// diffusers' name of a libddpm parameter, for a model of `levels` levels. legacy_attention:
/// the pre-0.13 attention names (query/key/value/proj_attn) instead of to_q/to_k/to_v/to_out.0.
std::string diffusers_name(const std::string& ours, int64_t levels, bool legacy_attention = false);

/// A model read from a foreign format: its libddpm config and the network (CPU, eval mode).
struct Imported {
  /// The run config the model corresponds to (model, schedule, sampler defaults).
  Config config;
  /// The network with the imported weights.
  UNet model{nullptr};
};
/// Reads a diffusers folder (a UNet2DModel folder, or a pipeline folder with unet/).
Imported import_diffusers(const std::string& dir);
/// Builds the model of `config` and fills it from diffusers-named `weights`.
UNet import_diffusers_weights(const StateDict& weights, const Config& config, const std::string& what);

/// The model's parameters under diffusers' names, attention projections as Linear weights;
/// an interleaved time embedding is reordered to diffusers' [sin | cos] (see the .cpp).
StateDict export_diffusers_weights(const UNetImpl& model);
/// Writes DIR/config.json, DIR/diffusion_pytorch_model.safetensors, DIR/scheduler/scheduler_config.json.
void export_diffusers(const Config& config, const UNetImpl& model, const std::string& dir);

}  // namespace ddpm::interop
