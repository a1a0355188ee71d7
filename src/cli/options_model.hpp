#pragma once
// CLI/config binding of the U-Net architecture (UNetConfig). Image size and channels
// are not bound here: ddpm-train owns --image-size/--channels and fills them in.
#include <CLI/CLI.hpp>

#include "ddpm/models/unet.hpp"

namespace ddpm::cli {

/// Adds --base-channels --channel-mult --num-res-blocks --attention-resolutions
/// --num-heads --dropout --groups --norm-eps --resample --learned-variance --channels-last.
/// Lists are comma-separated on the command line ("1,2,2,2"; "" for none) and TOML
/// arrays or strings in a config file (an empty list is written "", as CLI11 rejects []). Values are checked by UNetConfig::validate().
void add_model_options(CLI::App& app, UNetConfig& config);

}  // namespace ddpm::cli
