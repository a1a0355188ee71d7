#pragma once
// The JSON side of the diffusers interop (include/ddpm/interop/diffusers.hpp): a UNet2DModel
// config.json and a DDPMScheduler scheduler_config.json <-> a libddpm Config. Internal: the JSON
// reader (io/json.hpp) is not installed; import_diffusers/export_diffusers are the public way in.
#include <string>

#include "ddpm/interop/diffusers.hpp"
#include "io/json.hpp"

namespace ddpm::interop {

/// The run config of a UNet2DModel config.json (`unet`) and, when given, its scheduler config
/// (DDPMScheduler keys: num_train_timesteps, beta_start/end, beta_schedule, variance_type,
/// clip_sample, prediction_type). `what` names the source in errors.
Config diffusers_config(const json::Value& unet, const json::Value* scheduler, const std::string& what);

/// config.json and scheduler_config.json for a libddpm config. Throws std::invalid_argument
/// naming the key for what diffusers cannot express (avgpool resampling, several heads whose
/// width differs between levels, a schedule without closed form is written as trained_betas).
json::Value diffusers_unet_json(const Config& config);
/// The scheduler_config.json (DDPMScheduler) for `config`; errors as diffusers_unet_json.
json::Value diffusers_scheduler_json(const Config& config);

}  // namespace ddpm::interop
