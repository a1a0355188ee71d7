#pragma once
// CLI / config-file binding of ScheduleConfig. Keys are the long option names without "--",
// so `--beta-start 1e-4` and `beta-start = 1e-4` in a TOML config are the same setting.
#include <CLI/CLI.hpp>

#include "ddpm/math/schedule.hpp"

namespace ddpm::cli {

/// Binds --schedule --timesteps --beta-start --beta-end --cosine-s --sigmoid-start
/// --sigmoid-end --sigmoid-tau --logsnr-max --logsnr-min --logsnr-shift --input-scale
/// --zero-terminal-snr to `config` (which must outlive `app`), in an option group "Schedule".
/// Values are checked by ScheduleConfig::validate(), not here, so the CLI and the library
/// report bad values the same way.
void add_schedule_options(CLI::App& app, ScheduleConfig& config);

}  // namespace ddpm::cli
