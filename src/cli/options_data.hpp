#pragma once
// --data --hflip --workers --prefetch --cache (TOML keys: data, hflip, workers, prefetch, cache).
// --image-size and --channels belong to ddpm-train, which fills DataConfig's
// height/width/channels itself.
#include <CLI/CLI.hpp>

#include "ddpm/data/dataset.hpp"

namespace ddpm::cli {

void add_data_options(CLI::App& app, DataConfig& config);

}  // namespace ddpm::cli
