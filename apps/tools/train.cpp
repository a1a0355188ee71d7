// ddpm-train: trains a DDPM on a folder of images or an IDX file into a run directory.
#include <ATen/Parallel.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "tools/common.hpp"
#include "tools/cpu_env.hpp"
#include "tools/options.hpp"
#include "ddpm/util/errors.hpp"
#include "tools/progress.hpp"
#include "ddpm/train/checkpoint.hpp"
#include "tools/tools.hpp"
#include "ddpm/train/config.hpp"
#include "ddpm/data/dataset.hpp"
#include "ddpm/train/trainer.hpp"
#include "ddpm/models/unet.hpp"

namespace ddpm::cli {
namespace {

std::atomic<bool> g_stop{false};

// First SIGINT/SIGTERM: finish the step, save, exit 0. A second one: die at once.
extern "C" void on_signal(int sig) {
  if (g_stop.exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

struct Flags {
  bool resume = false;
  bool dry_run = false;
};

// Everything ddpm-train accepts. `config_file` false: --config is a plain option (the resume
// pass reads the checkpoint's config instead of the file).
void add_all_options(CLI::App& app, Config& config, RuntimeOptions& runtime, Flags& flags, bool config_file) {
  add_runtime_options(app, runtime);
  if (config_file)
    add_config_file_option(app, config,
                           "TOML config file (keys = the long options without --); options given on the command "
                           "line override it");
  else
    app.add_option("--config", "");
  app.add_flag("--resume", flags.resume,
               "Continue the run in --run-dir from its latest checkpoint, exactly, with the config stored in it "
               "(options on the command line override it, e.g. --steps to train longer)")
      ->configurable(false);
  app.add_flag("--dry-run", flags.dry_run, "Build the model, print its summary and exit")->configurable(false);
  add_config_options(app, config);
}

// The resume pass: the checkpoint's config with the command line on top.
Config config_for_resume(const std::string& toml, int argc, char** argv) {
  Config config = config_from_toml(toml);
  RuntimeOptions runtime;
  Flags flags;
  CLI::App app;
  add_all_options(app, config, runtime, flags, /*config_file=*/false);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Error& e) {
    throw std::invalid_argument(std::string("--resume: ") + first_line(e.what()));
  }
  return config;
}

int train(const Config& parsed, const RuntimeOptions& runtime, const Flags& flags, int argc, char** argv) {
  const c10::Device device = apply_runtime(runtime);
  Config config = parsed;
  std::string resume_from;
  const std::string& run_dir = config.train.run_dir;
  if (flags.resume) {
    resume_from = latest_checkpoint(run_dir);
    if (resume_from.empty())
      throw std::invalid_argument("--resume: run directory '" + run_dir + "' has no checkpoint to resume from");
    config = config_for_resume(CheckpointReader(resume_from).config_toml(), argc, argv);
  } else if (!flags.dry_run && !latest_checkpoint(run_dir).empty()) {
    throw std::invalid_argument("--run-dir '" + run_dir +
                                "' already holds checkpoints: pass --resume to continue it, or choose another --run-dir");
  }
  config.resolve();

  if (flags.dry_run) {
    config.validate();
    UNet model(config.model);  // builds it for real: a config that cannot be built fails here
    std::printf("%s", summary(config.model).c_str());
    std::printf("built: %lld parameters; schedule %s, T = %lld; dry run, nothing trained\n",
                static_cast<long long>(count_parameters(*model)), config.schedule.kind.c_str(),
                static_cast<long long>(config.schedule.timesteps));
    return 0;
  }

  if (config.data.source.empty()) throw std::invalid_argument("--data: no training data given (a folder or idx:PATH)");
  config.data.validate();
  std::shared_ptr<Dataset> dataset = open_dataset(config.data);
  config.set_shape(dataset->channels(), dataset->height(), dataset->width());

  TrainerOptions options;
  options.stop = &g_stop;
  std::unique_ptr<Progress> progress;
  options.on_event = [&progress](const std::string& message) {
    if (progress)
      progress->message(message);
    else
      spdlog::info("{}", message);
  };
  options.on_step = [&progress](const StepStats& s) {
    if (progress) progress->update(s.step, {{"loss", s.loss}, {"lr", s.lr}, {"|g|", s.grad_norm}});
  };
  Trainer trainer(config, dataset, device, options);
  if (!resume_from.empty()) trainer.resume(resume_from);

  const auto& t = trainer.config().train;
  spdlog::info("model: {} parameters, {}×{}×{} images; {} steps of batch {}{} on {}; run directory {}",
               count_parameters(*trainer.model()), config.model.image_channels, config.model.image_height,
               config.model.image_width, t.steps, t.batch_size,
               t.grad_accum > 1 ? fmt::format(" × {} accumulated", t.grad_accum) : std::string(), device.str(),
               t.run_dir);

  g_stop = false;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  progress = std::make_unique<Progress>("train", t.steps, trainer.step(), t.batch_size * t.grad_accum, t.log_every);
  trainer.fit();
  progress->finish();
  progress.reset();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (g_stop) {
    spdlog::info("interrupted at step {}: checkpoint saved; continue with --resume --run-dir {}", trainer.step(),
                 t.run_dir);
  } else {
    spdlog::info("done: {} steps; checkpoint {}", trainer.step(), latest_checkpoint(t.run_dir));
  }
  return 0;
}

}  // namespace

int train_main(int argc, char** argv) {
  tune_cpu_environment(argv);  // may re-execute the program (see cpu_env.hpp)
  CLI::App app{"ddpm-train: trains a denoising diffusion probabilistic model (Ho et al. 2020) on a folder of "
               "images or an MNIST-family IDX file"};
  app.footer(
      "The run directory gets config.toml (the resolved config), checkpoints/ckpt-<step>.pt, samples/step-<step>.png "
      "and metrics.jsonl.\nSIGINT/SIGTERM: finishes the current step, saves a checkpoint and exits 0.\n"
      "Example: ddpm-train --config configs/fashion-mnist-28.toml --run-dir runs/fmnist");
  Config config;
  RuntimeOptions runtime;
  Flags flags;
  add_all_options(app, config, runtime, flags, /*config_file=*/true);
  return run_app(app, argc, argv, [&] { return train(config, runtime, flags, argc, argv); });
}

}  // namespace ddpm::cli
