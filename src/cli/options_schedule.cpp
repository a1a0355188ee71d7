#include "cli/options_schedule.hpp"

namespace ddpm::cli {

void add_schedule_options(CLI::App& app, ScheduleConfig& c) {
  const std::string g = "Schedule";
  app.add_option("--schedule", c.kind, "linear | quadratic | cosine | sigmoid | cosine-logsnr | sigmoid-logsnr")
      ->capture_default_str()
      ->group(g);
  app.add_option("--timesteps", c.timesteps, "number of diffusion steps T (>= 2)")->capture_default_str()->group(g);
  app.add_option("--beta-start", c.beta_start, "β₀ (linear, quadratic)")->capture_default_str()->group(g);
  app.add_option("--beta-end", c.beta_end, "β₁ (linear, quadratic)")->capture_default_str()->group(g);
  app.add_option("--cosine-s", c.cosine_s, "offset s (cosine)")->capture_default_str()->group(g);
  app.add_option("--sigmoid-start", c.sigmoid_start, "start s (sigmoid)")->capture_default_str()->group(g);
  app.add_option("--sigmoid-end", c.sigmoid_end, "end e (sigmoid)")->capture_default_str()->group(g);
  app.add_option("--sigmoid-tau", c.sigmoid_tau, "temperature k > 0 (sigmoid)")->capture_default_str()->group(g);
  // Optional: unset means the kind's default (±15 cosine-logsnr, ±10 sigmoid-logsnr).
  app.add_option_function<double>(
         "--logsnr-max", [&c](const double& v) { c.logsnr_max = v; },
         "largest log SNR (logsnr kinds; default 15 cosine-logsnr, 10 sigmoid-logsnr)")
      ->group(g);
  app.add_option_function<double>(
         "--logsnr-min", [&c](const double& v) { c.logsnr_min = v; },
         "smallest log SNR (logsnr kinds; default -15 cosine-logsnr, -10 sigmoid-logsnr)")
      ->group(g);
  app.add_option("--logsnr-shift", c.logsnr_shift, "shift added to log SNR (cosine-logsnr)")->capture_default_str()->group(g);
  app.add_option("--input-scale", c.input_scale, "input scaling b > 0 (Chen 2023): log SNR shifted by 2 ln b")
      ->capture_default_str()
      ->group(g);
  app.add_flag("--zero-terminal-snr", c.zero_terminal_snr, "rescale so that ᾱ_{T-1} = 0 (Lin et al. 2024)")->group(g);
}

}  // namespace ddpm::cli
