#include "cli/options_sampler.hpp"

#include <algorithm>
#include <string>

namespace ddpm::cli {

void add_sampler_options(CLI::App& app, SamplerConfig& config) {
  const std::string group = "Sampling";
  app.add_option("--sampler", config.kind, "ddpm (ancestral) | ddim | dpm++2m")
      ->capture_default_str()
      ->check(CLI::IsMember({"ddpm", "ddim", "dpm++2m"}))
      ->group(group);
  app.add_option("--steps", config.steps,
                 "sampling steps (0 = default: all T for ddpm, 50 for ddim, 20 for dpm++2m; "
                 "ddpm with fewer than T respaces the process)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(group);
  app.add_option("--spacing", config.spacing, "timestep spacing for fewer steps: leading | trailing | linspace")
      ->capture_default_str()
      ->check(CLI::IsMember({"leading", "trailing", "linspace"}))
      ->group(group);
  app.add_option("--eta", config.eta, "DDIM eta in [0, 1] (0 = deterministic)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->group(group);
  app.add_option("--variance", config.variance, "ddpm variance: fixed_small (posterior) | fixed_large (beta)")
      ->capture_default_str()
      ->transform([](std::string v) {
        std::replace(v.begin(), v.end(), '-', '_');
        return v;
      })
      ->check(CLI::IsMember({"fixed_small", "fixed_large"}))
      ->group(group);
  app.add_flag("--clip-x0", config.clip_x0, "clip the predicted x0 to [-1, 1]")->group(group);
  app.add_flag("--dynamic-threshold", config.dynamic_threshold,
               "dynamic thresholding of the predicted x0 (Saharia et al. 2022)")
      ->group(group);
  app.add_option("--dynamic-threshold-percentile", config.dynamic_threshold_percentile,
                 "percentile of |x0| used by --dynamic-threshold")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->group(group);
  app.add_flag("--corrector", config.corrector, "annealed Langevin corrector after each step (Song et al. 2021)")
      ->group(group);
  app.add_option("--corrector-snr", config.corrector_snr, "corrector signal-to-noise ratio r")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group(group);
  app.add_option("--corrector-steps", config.corrector_steps, "Langevin steps per sampling step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group(group);
  if (app.get_option_no_throw("--seed") == nullptr)
    app.add_option("--seed", config.seed, "seed; image k of a run is the same whatever the batch size")
        ->capture_default_str()
        ->group(group);
}

}  // namespace ddpm::cli
