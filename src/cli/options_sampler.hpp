#pragma once
// CLI / config-file binding of SamplerConfig (ddpm-sample and the trainer's sample grids).
#include <CLI/CLI.hpp>

#include "ddpm/samplers/sampler.hpp"

namespace ddpm::cli {

/// Adds --sampler --steps --spacing --eta --variance --clip-x0 --dynamic-threshold
/// --dynamic-threshold-percentile --corrector --corrector-snr --corrector-steps --seed
/// (group "Sampling"). --seed is skipped when `app` already has one (e.g. the trainer's
/// own seed); the caller then sets config.seed itself. The prediction type is not an
/// option: it comes from the checkpoint.
void add_sampler_options(CLI::App& app, SamplerConfig& config);

}  // namespace ddpm::cli
