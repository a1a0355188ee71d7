#pragma once
// CLI11 bindings of TrainConfig and of the whole Config (every area's options composed).
#include <CLI/CLI.hpp>

#include <string>

#include "ddpm/train/config.hpp"

namespace ddpm::cli {

/// Binds the keys of TrainConfig (--steps, --batch-size, --lr, ...).
void add_train_options(CLI::App& app, TrainConfig& config);

/// Binds every key of Config: model, schedule, data, sampler, training, --image-size, --channels.
/// Every option gets a default string read from `config` at the time of the call
/// (capture_default_str), so app.config_to_str(true) writes the config.
void add_config_options(CLI::App& app, Config& config);

/// Re-reads every option's default string from its bound variable (after the variables changed).
void recapture_defaults(CLI::App& app);

}  // namespace ddpm::cli
