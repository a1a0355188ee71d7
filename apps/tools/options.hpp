#pragma once
// Command-line options generated from the library's key table (ddpm/pipeline/config_keys.hpp):
// one option per key, `--NAME`, with the key's help, default and checks; flags get --no-NAME.
// Bad values are CLI11 validation errors "--NAME: must be >= 1 (got 0)".
#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ddpm/pipeline/config.hpp"
#include "ddpm/pipeline/config_keys.hpp"

namespace ddpm::cli {

/// Binds every key of `area` to `target` (the area's part of a Config), options renamed by
/// `rename` (key name → option name, without dashes). Keys whose option `app` already has are
/// skipped (the tool's own option of that name wins, e.g. ddpm-train's --seed).
void add_area_options(CLI::App& app, KeyArea area, UNetConfig& target);
void add_area_options(CLI::App& app, KeyArea area, ScheduleConfig& target);
void add_area_options(CLI::App& app, KeyArea area, DataConfig& target);
void add_area_options(CLI::App& app, KeyArea area, TrainConfig& target);
void add_area_options(CLI::App& app, SamplerConfig& target, const std::map<std::string, std::string>& rename);

inline void add_model_options(CLI::App& app, UNetConfig& c) { add_area_options(app, KeyArea::Model, c); }
inline void add_schedule_options(CLI::App& app, ScheduleConfig& c) { add_area_options(app, KeyArea::Schedule, c); }
inline void add_data_options(CLI::App& app, DataConfig& c) { add_area_options(app, KeyArea::Data, c); }
inline void add_train_options(CLI::App& app, TrainConfig& c) { add_area_options(app, KeyArea::Train, c); }
/// ddpm-sample's names: --steps and --seed (the grids' keys are sample-steps, sample-seed).
inline void add_sampler_options(CLI::App& app, SamplerConfig& c) {
  add_area_options(app, c, {{"sample-steps", "steps"}, {"sample-seed", "seed"}});
}

/// Every key of Config, under its own name; ddpm-distill's keys (teacher, start-steps, ...) only
/// when `distill`; what a distilled student records (distilled-steps, ...) never.
void add_config_options(CLI::App& app, Config& config, bool distill = false);

/// `--config FILE`: reads the TOML file (config_from_file) and hands it to `apply` before any
/// other option is applied, so options on the command line override it. Call it before the
/// other add_*_options.
CLI::Option* add_config_file_option(CLI::App& app, std::function<void(const Config&)> apply, const std::string& help);
/// The same, replacing `config` by the file's.
CLI::Option* add_config_file_option(CLI::App& app, Config& config, const std::string& help);

/// The key names (without --) that were given on the command line of a parsed `app`.
std::vector<std::string> given_keys(const CLI::App& app);

/// Parses command-line style arguments (without the program name), e.g.
/// {"--config", "run.toml", "--lr", "1e-3"}: --config reads a TOML file and options given
/// as arguments override it. Throws std::invalid_argument (one line).
Config config_from_args(const std::vector<std::string>& args);

}  // namespace ddpm::cli
