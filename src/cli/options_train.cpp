#include "cli/options_train.hpp"

#include <fmt/format.h>

#include <map>
#include <optional>
#include <memory>
#include <utility>

#include "cli/options_data.hpp"
#include "cli/options_model.hpp"
#include "cli/options_sampler.hpp"
#include "cli/options_schedule.hpp"

namespace ddpm::cli {
namespace {

// CLI11 writes doubles with 6 significant digits and flags as "false" whatever their value;
// a config must round-trip exactly, so these bindings give exact default strings.
std::string exact(double v) { return fmt::format("{}", v); }

CLI::Option* add_double(CLI::App& app, const std::string& name, double& v, const std::string& help) {
  return app.add_option(name, v, help)->default_function([&v] { return exact(v); })->capture_default_str();
}

template <class T>
CLI::Option* add_value(CLI::App& app, const std::string& name, T& v, const std::string& help) {
  return app.add_option(name, v, help)->capture_default_str();
}

CLI::Option* add_bool(CLI::App& app, const std::string& name, bool& v, const std::string& help) {
  return app.add_flag(name, v, help)->default_function([&v] { return std::string(v ? "true" : "false"); })
      ->capture_default_str();
}

// Options bound elsewhere whose default string CLI11 would write inexactly: point them at the field.
void exact_default(CLI::App& app, const std::string& name, double& v) {
  if (auto* opt = app.get_option_no_throw(name)) opt->default_function([&v] { return exact(v); })->capture_default_str();
}
void exact_default(CLI::App& app, const std::string& name, bool& v) {
  if (auto* opt = app.get_option_no_throw(name))
    opt->default_function([&v] { return std::string(v ? "true" : "false"); })->capture_default_str();
}

// Re-binds every option of `from` into `app` (renamed per `rename`, keyed by long name
// without dashes): the value is handed to the original option, which validates and stores it.
void forward_options(CLI::App& app, const std::shared_ptr<CLI::App>& from,
                     const std::map<std::string, std::string>& rename) {
  for (CLI::Option* o : from->get_options()) {
    if (o == from->get_help_ptr() || o == from->get_help_all_ptr()) continue;
    std::string name = o->get_single_name();
    if (auto it = rename.find(name); it != rename.end()) name = it->second;
    CLI::Option* f;
    if (o->get_expected_min() == 0) {
      f = app.add_flag_function(
          "--" + name,
          [from, o](int64_t count) {
            o->clear();
            o->add_result(std::string(count > 0 ? "true" : "false"));
            o->run_callback();
          },
          o->get_description());
    } else {
      f = app.add_option(
          "--" + name,
          [from, o](const CLI::results_t& results) {
            o->clear();
            o->add_result(results);
            o->run_callback();
            return true;
          },
          o->get_description());
      f->type_name(o->get_type_name())->expected(o->get_expected_min(), o->get_expected_max());
    }
    f->default_function([o] {
       o->capture_default_str();
       return o->get_default_str();
     })
        ->capture_default_str()
        ->group(o->get_group());
  }
}

void exact_default(CLI::App& app, const std::string& name, std::optional<double>& v) {
  if (auto* opt = app.get_option_no_throw(name))
    opt->default_function([&v] { return v ? exact(*v) : std::string(); })->capture_default_str();
}

}  // namespace

void add_train_options(CLI::App& app, TrainConfig& c) {
  const std::string g = "Training";
  add_value(app, "--steps", c.steps, "Optimizer steps in all")->check(CLI::PositiveNumber)->group(g);
  add_value(app, "--batch-size", c.batch_size, "Images per micro-batch (per step: × grad-accum)")
      ->check(CLI::PositiveNumber)->group(g);
  add_double(app, "--lr", c.lr, "Peak learning rate of AdamW")->check(CLI::NonNegativeNumber)->group(g);
  add_double(app, "--adam-beta1", c.adam_beta1, "AdamW β₁")->check(CLI::Range(0.0, 1.0))->group(g);
  add_double(app, "--adam-beta2", c.adam_beta2, "AdamW β₂")->check(CLI::Range(0.0, 1.0))->group(g);
  add_double(app, "--adam-eps", c.adam_eps, "AdamW ε")->check(CLI::PositiveNumber)->group(g);
  add_double(app, "--weight-decay", c.weight_decay, "AdamW decoupled weight decay")
      ->check(CLI::NonNegativeNumber)->group(g);
  add_value(app, "--warmup-steps", c.warmup_steps, "Linear learning-rate warm-up over this many steps (0 = none)")
      ->check(CLI::NonNegativeNumber)->group(g);
  add_double(app, "--grad-clip", c.grad_clip, "Clip the gradient's global L2 norm to this (0 = no clipping)")
      ->check(CLI::NonNegativeNumber)->group(g);
  add_value(app, "--grad-accum", c.grad_accum, "Micro-batches accumulated per optimizer step")
      ->check(CLI::PositiveNumber)->group(g);
  add_double(app, "--ema-decay", c.ema_decay, "Decay of the EMA of the weights (sample grids and checkpoints)")
      ->check(CLI::Range(0.0, 1.0))->group(g);
  add_value(app, "--ema-warmup", c.ema_warmup,
          "EMA decay warm-up after n updates: none | rational: min(decay, (1+n)/(10+n)) | "
          "power: min(decay, 1-(1+n)^-ema-power)")
      ->check(CLI::IsMember({"none", "rational", "power"}))->group(g);
  add_double(app, "--ema-power", c.ema_power, "Exponent of the power EMA warm-up (2/3: ~1M steps, 3/4: ~100k)")
      ->check(CLI::PositiveNumber)->group(g);
  add_value(app, "--ema-update-every", c.ema_update_every, "Steps between EMA updates")
      ->check(CLI::PositiveNumber)->group(g);
  app.add_option_function<std::string>(
         "--prediction", [&c](const std::string& s) { c.prediction = parse_prediction(s); },
         "What the network predicts: epsilon | x0 | v")
      ->check(CLI::IsMember({"epsilon", "eps", "x0", "sample", "v", "v_prediction"}))
      ->default_function([&c] { return to_string(c.prediction); })->capture_default_str()->group(g);
  app.add_option_function<std::string>(
         "--loss-weighting", [&c](const std::string& s) { c.loss_weighting = parse_loss_weighting(s); },
         "Per-timestep loss weight: none (DDPM's L_simple) | min-snr (Hang et al. 2023)")
      ->check(CLI::IsMember({"none", "simple", "min-snr"}))
      ->default_function([&c] { return to_string(c.loss_weighting); })->capture_default_str()->group(g);
  add_double(app, "--min-snr-gamma", c.min_snr_gamma, "γ of min-SNR-γ weighting")->check(CLI::PositiveNumber)->group(g);
  add_value(app, "--seed", c.seed, "Seed of model init, timesteps, noise, dropout and data order")->group(g);
  add_bool(app, "--bf16", c.bf16, "bf16 autocast (CUDA, and CPUs that support it); fp32 otherwise")->group(g);
  add_value(app, "--sample-every", c.sample_every,
          "Steps between PNG sample grids from the EMA weights in run-dir/samples (and one at the end); 0 = none")
      ->check(CLI::NonNegativeNumber)->group(g);
  add_value(app, "--sample-n", c.sample_n, "Images per sample grid")->check(CLI::PositiveNumber)->group(g);
  add_value(app, "--save-every", c.save_every, "Steps between checkpoints (one is always saved at the end)")
      ->check(CLI::PositiveNumber)->group(g);
  add_value(app, "--keep-last", c.keep_last, "Checkpoints kept in run-dir/checkpoints (0 = all)")
      ->check(CLI::NonNegativeNumber)->group(g);
  add_value(app, "--log-every", c.log_every, "Steps per line of metrics.jsonl (and per log line when not a terminal)")
      ->check(CLI::PositiveNumber)->group(g);
  add_value(app, "--run-dir", c.run_dir, "Run directory: config.toml, checkpoints/, samples/, metrics.jsonl")->group(g);
}

void add_config_options(CLI::App& app, Config& c) {
  app.add_option("--image-size", c.image_size, "Image size N or HxW (default: the data's size)")
      ->capture_default_str()->group("Data");
  app.add_option("--channels", c.channels, "Image channels 1, 3 or 4, converting the data (0 = the data's)")
      ->check(CLI::IsMember({0, 1, 3, 4}))->capture_default_str()->group("Data");
  add_data_options(app, c.data);
  add_model_options(app, c.model);
  add_schedule_options(app, c.schedule);
  add_train_options(app, c.train);
  // The sampler of the sample grids. Its --steps and --seed would collide with training's,
  // so they become --sample-steps and --sample-seed; the rest keep their names.
  auto sampler = std::make_shared<CLI::App>();
  add_sampler_options(*sampler, c.sample);
  forward_options(app, sampler, {{"steps", "sample-steps"}, {"seed", "sample-seed"}});

  for (auto [name, field] : {std::pair<const char*, bool*>{"--hflip", &c.data.hflip}, {"--cache", &c.data.cache},
                             {"--learned-variance", &c.model.learned_variance},
                             {"--channels-last", &c.model.channels_last},
                             {"--zero-terminal-snr", &c.schedule.zero_terminal_snr},
                             {"--clip-x0", &c.sample.clip_x0},
                             {"--dynamic-threshold", &c.sample.dynamic_threshold},
                             {"--corrector", &c.sample.corrector}})
    exact_default(app, name, *field);
  for (auto [name, field] : {std::pair<const char*, double*>{"--dropout", &c.model.dropout},
                             {"--norm-eps", &c.model.norm_eps},
                             {"--beta-start", &c.schedule.beta_start},
                             {"--beta-end", &c.schedule.beta_end},
                             {"--cosine-s", &c.schedule.cosine_s},
                             {"--sigmoid-start", &c.schedule.sigmoid_start},
                             {"--sigmoid-end", &c.schedule.sigmoid_end},
                             {"--sigmoid-tau", &c.schedule.sigmoid_tau},
                             {"--logsnr-shift", &c.schedule.logsnr_shift},
                             {"--input-scale", &c.schedule.input_scale},
                             {"--eta", &c.sample.eta},
                             {"--dynamic-threshold-percentile", &c.sample.dynamic_threshold_percentile},
                             {"--corrector-snr", &c.sample.corrector_snr}})
    exact_default(app, name, *field);
  exact_default(app, "--logsnr-max", c.schedule.logsnr_max);
  exact_default(app, "--logsnr-min", c.schedule.logsnr_min);
  recapture_defaults(app);
}

void recapture_defaults(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) opt->capture_default_str();
}

}  // namespace ddpm::cli
