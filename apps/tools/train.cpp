// ddpm-train: trains a DDPM on a folder of images or an IDX file into a run directory.
#include <ATen/Parallel.h>

#include <algorithm>
#include <csignal>
#include <iterator>
#include <cstdio>
#include <filesystem>
#include <fstream>
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
#include "ddpm/train/config_keys.hpp"
#include "ddpm/train/run_lock.hpp"

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
  std::string resume_from;  // an explicit (possibly older) checkpoint
};

// What a resumed run may change: the config keys marked operational in the key table (how long,
// how often it logs, saves and samples, workers), and the options that are not config keys
// (device, threads, log level, the resume flags) except --config. Everything else (schedule,
// model, prediction, data, optimizer, seed) is fixed by the checkpoint: changing it would
// silently continue another run's trajectory.
bool operational(const CLI::Option& o) {
  const std::string name = o.get_single_name();
  if (const ConfigKey* key = find_config_key(name)) return key->operational;
  return name != "config";
}

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
  app.add_option("--resume-from", flags.resume_from,
                 "Continue the run in --run-dir from this checkpoint (may be older than the latest: the newer "
                 "ones are moved to checkpoints/abandoned-<time>/)")
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
    for (const CLI::Option* o : app.get_options()) {
      if (o->count() == 0 || operational(*o)) continue;
      if (o->get_single_name() == "config")
        throw std::invalid_argument("--resume: --config is not read when resuming (the run's config is stored in its "
                                    "checkpoint); drop it, or start a new --run-dir");
      throw std::invalid_argument("--resume: --" + o->get_single_name() +
                                  " cannot change in a resumed run (it is fixed by the checkpoint); a resume may "
                                  "change only --steps, logging, saving, sample grids, workers, device and threads");
    }
  } catch (const CLI::Error& e) {
    throw std::invalid_argument(std::string("--resume: ") + first_line(e.what()));
  }
  return config;
}

// The checkpoint a resume starts from: --resume-from, or the newest one that is intact (a
// corrupt newest one is reported and skipped). Checkpoints after it are moved aside, so that
// "latest" and pruning see only this run's trajectory.
std::string pick_resume_checkpoint(const std::string& run_dir, const std::string& explicit_path) {
  std::string chosen;
  if (!explicit_path.empty()) {
    chosen = CheckpointReader(explicit_path).path();
  } else {
    const auto all = list_checkpoints(run_dir);
    if (all.empty())
      throw std::invalid_argument("--resume: run directory '" + run_dir + "' has no checkpoint to resume from");
    for (auto it = all.rbegin(); it != all.rend() && chosen.empty(); ++it) {
      try {
        CheckpointReader{*it};
        chosen = *it;
      } catch (const CorruptCheckpointError& e) {
        spdlog::warn("{}", e.what());
        if (std::next(it) != all.rend())
          spdlog::warn("--resume: skipping the corrupt checkpoint {}; falling back to {}", *it, *std::next(it));
      }
    }
    if (chosen.empty())
      throw std::invalid_argument("--resume: every checkpoint in '" + run_dir + "/checkpoints' is corrupt");
  }
  const int64_t step = CheckpointReader(chosen).step();
  if (const std::string aside = abandon_checkpoints_after(run_dir, step); !aside.empty())
    spdlog::warn("--resume: resuming from step {}: the run's later checkpoints were moved to {}", step, aside);
  return chosen;
}

int train(const Config& parsed, const RuntimeOptions& runtime, const Flags& flags, int argc, char** argv) {
  const c10::Device device = apply_runtime(runtime);
  Config config = parsed;
  std::string resume_from;
  const std::string run_dir = config.train.run_dir;
  const bool resume = flags.resume || !flags.resume_from.empty();
  std::unique_ptr<RunLock> lock;
  if (resume && !std::filesystem::is_directory(run_dir))
    throw std::invalid_argument("--resume: run directory '" + run_dir + "' does not exist");
  if (!flags.dry_run) {
    // One writer per run directory, before anything in it is read for writing or moved.
    lock = std::make_unique<RunLock>(run_dir);
    if (lock->stale_pid() > 0)
      spdlog::info("run directory {}: taking over the stale lock of pid {} (no longer running)", run_dir,
                   lock->stale_pid());
  }
  const std::string stored_config = (std::filesystem::path(run_dir) / "config.toml").string();
  if (resume && flags.resume_from.empty() && list_checkpoints(run_dir).empty() &&
      std::filesystem::is_regular_file(stored_config)) {
    // Stopped (killed) before its first checkpoint: start it again from step 0 with its config.
    spdlog::warn("--resume: run directory {} has no checkpoint yet; starting it again from step 0 with its {}",
                 run_dir, stored_config);
    std::ifstream in(stored_config);
    const std::string toml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    config = config_for_resume(toml, argc, argv);
  } else if (resume) {
    resume_from = pick_resume_checkpoint(run_dir, flags.resume_from);
    const CheckpointReader reader(resume_from);
    config = config_for_resume(reader.config_toml(), argc, argv);
    if (config.train.steps < reader.step())
      throw std::invalid_argument(fmt::format("--steps {}: the run is already at step {} ({}); pass --steps greater "
                                              "than {} to train longer",
                                              config.train.steps, reader.step(), resume_from, reader.step()));
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
  config.set_classes(*dataset);

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
  if (g_stop && latest_checkpoint(t.run_dir).empty()) {
    spdlog::info("interrupted before the first step finished: nothing saved");
  } else if (g_stop) {
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
