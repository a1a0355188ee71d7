// ddpm-train: trains a DDPM on a folder of images or an IDX file into a run directory.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <thread>
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
#include "tools/local_launch.hpp"
#include "tools/options.hpp"
#include "ddpm/io/read_file.hpp"
#include "ddpm/util/errors.hpp"
#include "ddpm/util/limits.hpp"
#include "tools/progress.hpp"
#include "ddpm/pipeline/checkpoint.hpp"
#include "tools/tools.hpp"
#include "tools/train_tool.hpp"
#include "ddpm/pipeline/config.hpp"
#include "ddpm/data/dataset.hpp"
#include "ddpm/train/trainer.hpp"
#include "ddpm/models/unet.hpp"
#include "ddpm/pipeline/config_keys.hpp"
#include "ddpm/train/run_lock.hpp"
#include "ddpm/train/data_parallel.hpp"
#include "ddpm/dist/launch.hpp"
#include "ddpm/dist/process_group.hpp"

namespace ddpm::cli {
namespace {

std::atomic<bool> g_stop{false};

// First SIGINT/SIGTERM/SIGHUP (a closed terminal or ssh session): finish the step, save, exit 0
// (a save is never cut off midway, leaving a ckpt-*.pt.tmp). A second one: die at once.
extern "C" void on_signal(int sig) {
  if (g_stop.exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

struct Flags {
  bool resume = false;
  bool resume_auto = false;  // --resume auto: resume if the run has a checkpoint, else start
  std::string resume_mode;   // the value of --resume ("" or "auto")
  CLI::Option* resume_option = nullptr;
  double dist_timeout = 1800;
  int nproc_per_node = 0;
  bool dry_run = false;
  std::string resume_from;  // an explicit (possibly older) checkpoint
  bool allow_config_change = false;  // --resume-from another run's checkpoint, knowingly
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
void add_all_options(CLI::App& app, Config& config, RuntimeOptions& runtime, Flags& flags, bool config_file,
                     bool distill) {
  add_runtime_options(app, runtime);
  if (config_file)
    add_config_file_option(app, config,
                           "TOML config file (keys = the long options without --); options given on the command "
                           "line override it");
  else
    app.add_option("--config", "");
  flags.resume_option = app.add_option("--resume", flags.resume_mode,
                 "Continue the run in --run-dir from its latest checkpoint, exactly, with the config stored in it "
                 "(options on the command line override it, e.g. --steps to train longer). '--resume auto': "
                 "resume when the run directory has a checkpoint, start the run otherwise (for torchrun "
                 "--max-restarts and requeued jobs; the command line may repeat the run's own options)")
      ->expected(0, 1)
      ->configurable(false)
      ->check([](const std::string& v) {
        return v.empty() || v == "auto" ? std::string() : "expected no value or 'auto' (got '" + v + "')";
      });
  app.add_option("--dist-timeout", flags.dist_timeout,
                 "Data parallel: seconds a rank waits for the others in the rendezvous and in every collective "
                 "(a lost rank is reported at once; a hung one after this). Must exceed rank 0's sampling and "
                 "evaluation time")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e6))
      ->configurable(false);
  add_nproc_option(app, flags.nproc_per_node,
                   "Start this many local ranks (processes) on this machine, as torchrun --nproc-per-node does; "
                   "CPU threads are shared out between them");
  app.add_option("--resume-from", flags.resume_from,
                 "Continue the run in --run-dir from this checkpoint (may be older than the latest: the newer "
                 "ones are moved to checkpoints/abandoned-<time>/)")
      ->configurable(false);
  app.add_flag("--allow-config-change", flags.allow_config_change,
               "With --resume-from: accept a checkpoint whose config differs from the run's own config.toml in "
               "non-operational keys (another run's checkpoint): the run continues from it with its config; "
               "its run directory is never written to")
      ->configurable(false);
  app.add_flag("--dry-run", flags.dry_run, "Build the model, print its summary and exit")->configurable(false);
  add_config_options(app, config, distill);
}

// The resume pass: the checkpoint's config with the command line on top.
// `automatic` (--resume auto, where a restarted job repeats its whole command line): --config is
// not read, and model/data options may be given if they equal the run's.
Config config_for_resume(const std::string& toml, int argc, char** argv, bool automatic, bool distill) {
  Config config = config_from_toml(toml);
  const Config stored = config;
  RuntimeOptions runtime;
  Flags flags;
  CLI::App app;
  add_all_options(app, config, runtime, flags, /*config_file=*/false, distill);
  try {
    app.parse(argc, argv);
    for (const CLI::Option* o : app.get_options()) {
      if (o->count() == 0 || operational(*o)) continue;
      if (automatic) {
        const ConfigKey* key = find_config_key(o->get_single_name());
        if (!key) continue;  // --config: the run's stored config is used instead
        if (key->get(config) == key->get(stored)) continue;
        throw std::invalid_argument("--resume auto: --" + key->name + " " + key->get(config) +
                                    " differs from the run's own (" + key->get(stored) +
                                    "); a resumed run cannot change it (start a new --run-dir)");
      }
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

// The run's own config (run_dir/config.toml), if it has one.
std::unique_ptr<Config> own_config(const std::string& run_dir) {
  const std::string path = (std::filesystem::path(run_dir) / "config.toml").string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return nullptr;
  return std::make_unique<Config>(config_from_file(path));
}

// The non-operational keys in which `other` differs from `own`, as "key (own → other)".
std::vector<std::string> differing_keys(const Config& own, const Config& other) {
  std::vector<std::string> out;
  for (const ConfigKey& k : config_keys())
    if (!k.operational && k.get(own) != k.get(other))
      out.push_back(k.name + " ('" + k.get(own) + "' here, '" + k.get(other) + "' there)");
  return out;
}

// --resume-from a checkpoint whose config is not the run's: another run's. Refused (before
// anything in the run directory moves) unless --allow-config-change.
void check_foreign_checkpoint(const std::string& run_dir, const CheckpointReader& reader, bool allowed) {
  const std::unique_ptr<Config> own = own_config(run_dir);
  if (!own) return;  // a new run directory: nothing of its own to protect
  const std::vector<std::string> diff = differing_keys(*own, reader.config());
  if (diff.empty()) return;
  std::string list = diff[0];
  for (size_t i = 1; i < std::min<size_t>(diff.size(), 3); ++i) list += ", " + diff[i];
  if (diff.size() > 3) list += fmt::format(" and {} more", diff.size() - 3);
  if (!allowed)
    throw std::invalid_argument("--resume-from '" + reader.path() + "': another run's checkpoint: its config differs "
                                "from " + run_dir + "/config.toml in " + list +
                                "; pass --allow-config-change to continue this run from it, or use another --run-dir");
  spdlog::warn("--resume-from {}: --allow-config-change: the run continues with that checkpoint's config (it differs "
               "in {})", reader.path(), list);
}

// The checkpoint a resume starts from: --resume-from, or the newest one that is intact (a
// corrupt newest one is reported and skipped). Checkpoints after it are moved aside, so that
// "latest" and pruning see only this run's trajectory.
std::string pick_resume_checkpoint(const std::string& run_dir, const std::string& explicit_path,
                                   bool allow_config_change) {
  std::string chosen;
  if (!explicit_path.empty()) {
    const CheckpointReader reader(explicit_path);
    check_foreign_checkpoint(run_dir, reader, allow_config_change);
    chosen = reader.path();
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

// What rank 0 decided about the run directory, sent to the other ranks (they share its file
// system): resume from step N, start afresh, or stop (rank 0 reports why).
constexpr int64_t kStartFresh = -1, kRankZeroFailed = -2;

int64_t agree(dist::ProcessGroup& group, int64_t value) {
  if (group.world_size() == 1) return value;
  at::Tensor t = at::full({1}, value, at::TensorOptions().dtype(at::kLong));
  group.broadcast(t, 0);
  return t.item<int64_t>();
}

int train(const Config& parsed, const RuntimeOptions& runtime_in, Flags& flags, int argc, char** argv,
          const TrainTool& tool) {
  const dist::LaunchInfo launch = dist::launch_from_environment();
  const bool leader = launch.rank == 0;
  RuntimeOptions runtime = runtime_in;
  if (launch.distributed() && runtime.threads == 0)  // share the cores between this machine's ranks
    runtime.threads = static_cast<int>(std::max<int64_t>(
        1, static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency())) / launch.local_world_size));
  if (!leader && runtime.log_level == "info") runtime.log_level = "warn";  // one log: rank 0's
  const c10::Device device = apply_runtime(runtime);
  if (launch.distributed() && device.is_cuda())
    throw std::invalid_argument("--device " + device.str() + ": data parallel on CUDA needs NCCL, which this build "
                                "does not have yet; use --device cpu (Gloo)");
  Config config = parsed;
  std::string resume_from;
  const std::string run_dir = config.train.run_dir;
  flags.resume = flags.resume_option && flags.resume_option->count() > 0;
  flags.resume_auto = flags.resume && flags.resume_mode == "auto";
  bool resume = flags.resume || !flags.resume_from.empty();
  if (flags.resume_auto && flags.resume_from.empty() && list_checkpoints(run_dir).empty()) {
    resume = false;
    if (leader) spdlog::info("--resume auto: run directory {} has no checkpoint; starting the run", run_dir);
  }
  std::unique_ptr<RunLock> lock;
  if (resume && !std::filesystem::is_directory(run_dir))
    throw std::invalid_argument("--resume: run directory '" + run_dir + "' does not exist");

  std::unique_ptr<dist::ProcessGroup> group;
  if (!flags.dry_run) {
    if (launch.distributed())
      spdlog::info("rank {} of {} ({}): joining the group at {}:{}", launch.rank, launch.world_size,
                   dist::to_string(launch.launcher), launch.master_addr, launch.master_port);
    group = launch.distributed()
                ? std::make_unique<dist::ProcessGroup>(
                      launch, std::chrono::milliseconds(static_cast<int64_t>(flags.dist_timeout * 1000)))
                : std::make_unique<dist::ProcessGroup>();
  }

  // Rank 0 alone locks the run directory, picks the checkpoint (moving later ones aside) and
  // refuses a run that would overwrite another; the others follow its decision.
  int64_t decision = kStartFresh;
  try {
    if (leader && !flags.dry_run) {
      lock = std::make_unique<RunLock>(run_dir);
      if (lock->stale_pid() > 0)
        spdlog::info("run directory {}: taking over the stale lock of pid {} (no longer running)", run_dir,
                     lock->stale_pid());
    }
    const std::string stored_config = (std::filesystem::path(run_dir) / "config.toml").string();
    if (resume && flags.resume_from.empty() && list_checkpoints(run_dir).empty() &&
        std::filesystem::is_regular_file(stored_config)) {
      // Stopped (killed) before its first checkpoint: start it again from step 0 with its config.
      if (leader)
        spdlog::warn("--resume: run directory {} has no checkpoint yet; starting it again from step 0 with its {}",
                     run_dir, stored_config);
      const std::string toml = io::read_regular_file(stored_config, "config file", limits::kMaxTomlBytes);
      try {
        config = config_for_resume(toml, argc, argv, flags.resume_auto, tool.distill);
      } catch (const std::invalid_argument& e) {
        if (std::string(e.what()).rfind("config: ", 0) != 0) throw;
        throw std::invalid_argument("'" + stored_config + "': " + e.what());
      }
    } else if (resume) {
      if (leader) {
        resume_from = pick_resume_checkpoint(run_dir, flags.resume_from, flags.allow_config_change);
        decision = CheckpointReader(resume_from).step();
      }
    } else if (leader && !flags.dry_run && !latest_checkpoint(run_dir).empty()) {
      throw std::invalid_argument("--run-dir '" + run_dir +
                                  "' already holds checkpoints: pass --resume to continue it, or choose another "
                                  "--run-dir");
    }
  } catch (...) {
    if (group) agree(*group, kRankZeroFailed);
    throw;
  }
  if (group) decision = agree(*group, decision);
  if (decision == kRankZeroFailed)
    throw std::invalid_argument("rank 0 could not start the run (its log says why)");
  if (resume && decision >= 0) {
    if (!leader) resume_from = flags.resume_from.empty() ? checkpoint_path(run_dir, decision) : flags.resume_from;
    const CheckpointReader reader(resume_from);
    std::string toml = reader.config_toml();
    if (!flags.resume_from.empty())
      if (const std::unique_ptr<Config> own = own_config(run_dir);
          own && !differing_keys(*own, reader.config()).empty()) {
        // Another run's checkpoint (--allow-config-change): its model and data, this run's
        // operational keys (keep-last, save-every, ...), never the other run's.
        Config merged = reader.config();
        for (const ConfigKey& k : config_keys())
          if (k.operational) k.set(merged, k.get(*own));
        toml = config_to_toml(merged);
      }
    try {
      config = config_for_resume(toml, argc, argv, flags.resume_auto, tool.distill);
    } catch (const std::invalid_argument& e) {
      if (std::string(e.what()).rfind("config: ", 0) != 0) throw;
      throw std::invalid_argument("checkpoint '" + resume_from + "': " + e.what());
    }
    // The run directory is the one locked above, never the one stored in the checkpoint.
    config.train.run_dir = run_dir;
    if (config.train.steps < reader.step())
      throw std::invalid_argument(fmt::format("--steps {}: the run is already at step {} ({}); pass --steps greater "
                                              "than {} to train longer",
                                              config.train.steps, reader.step(), resume_from, reader.step()));
  }
  const bool resuming = !resume_from.empty();
  if (config.distill.active() != tool.distill) {
    if (!resume)
      throw std::invalid_argument(tool.distill ? "--teacher: no teacher checkpoint given (a checkpoint or run directory)"
                                               : "teacher: only ddpm-distill distils (this config names a teacher)");
    throw std::invalid_argument(tool.distill ? "--resume: the run in '" + run_dir +
                                                   "' is not a distillation; continue it with ddpm-train --resume"
                                             : "--resume: the run in '" + run_dir +
                                                   "' is a distillation; continue it with ddpm-distill --resume");
  }
  // A resumed run (or one restarted from its stored config.toml) has its final config already.
  if (!resume && tool.fresh_config) config = tool.fresh_config(config, device);
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

  DataParallel data_parallel(*group);
  TrainerOptions options;
  if (tool.objective) options.objective = tool.objective(config, device, resuming);
  data_parallel.configure(options);
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
  if (resuming)
    trainer.resume(resume_from);
  else if (tool.fresh_start)
    tool.fresh_start(trainer);
  data_parallel.attach(trainer);

  const auto& t = trainer.config().train;
  spdlog::info("model: {} parameters, {}×{}×{} images; {} steps of batch {}{}{} on {}; run directory {}",
               count_parameters(*trainer.model()), config.model.image_channels, config.model.image_height,
               config.model.image_width, t.steps, t.batch_size,
               t.grad_accum > 1 ? fmt::format(" × {} accumulated", t.grad_accum) : std::string(),
               launch.distributed() ? fmt::format(" ({} per rank × {} ranks, {} threads each)",
                                                  t.batch_size / launch.world_size, launch.world_size,
                                                  at::get_num_threads())
                                    : std::string(),
               device.str(), t.run_dir);

  g_stop = false;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGHUP, on_signal);
  if (leader)
    progress = std::make_unique<Progress>(tool.distill ? "distill" : "train", t.steps, trainer.step(), t.batch_size * t.grad_accum, t.log_every);
  const auto fit_start = std::chrono::steady_clock::now();
  const int64_t done = trainer.fit();
  const double fit_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - fit_start).count();
  if (progress) progress->finish();
  progress.reset();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGHUP, SIG_DFL);
  if (launch.distributed() && done > 0) {
    const dist::ReducerStats r = data_parallel.stats();
    spdlog::info("data parallel: {} ranks, {:.1f} ms per step; gradient all-reduce in {} buckets, {:.1f} ms per step "
                 "on the wire, {:.0f}% of it hidden behind backward",
                 launch.world_size, 1000.0 * fit_seconds / static_cast<double>(done), data_parallel.bucket_count(),
                 r.steps > 0 ? 1000.0 * r.window_seconds / static_cast<double>(r.steps) : 0.0,
                 100.0 * r.hidden_fraction());
  }
  if (!leader) return 0;
  if (g_stop && latest_checkpoint(t.run_dir).empty()) {
    spdlog::info("interrupted before the first step finished: nothing saved");
  } else if (g_stop || trainer.step() < t.steps) {
    spdlog::info("interrupted at step {}: checkpoint saved; continue with --resume --run-dir {}", trainer.step(),
                 t.run_dir);
  } else {
    spdlog::info("done: {} steps; checkpoint {}", trainer.step(), latest_checkpoint(t.run_dir));
  }
  return 0;
}

}  // namespace

int run_train_tool(int argc, char** argv, const TrainTool& tool) {
  tune_cpu_environment(argv);  // may re-execute the program (see cpu_env.hpp)
  CLI::App app{tool.description};
  app.footer(tool.footer);
  Config config;
  RuntimeOptions runtime;
  Flags flags;
  add_all_options(app, config, runtime, flags, /*config_file=*/true, tool.distill);
  return run_app(app, argc, argv, [&] {
    if (flags.nproc_per_node > 0) return run_local_ranks(flags.nproc_per_node, argc, argv);
    return train(config, runtime, flags, argc, argv, tool);
  });
}

int train_main(int argc, char** argv) {
  TrainTool tool;
  tool.description =
      "ddpm-train: trains a denoising diffusion probabilistic model (Ho et al. 2020) on a folder of "
      "images or an MNIST-family IDX file";
  tool.footer =
      "The run directory gets config.toml (the resolved config), checkpoints/ckpt-<step>.pt, samples/step-<step>.png, "
      "metrics.jsonl and TensorBoard events files (tensorboard --logdir RUN-DIR).\nSIGINT/SIGTERM/SIGHUP: finishes the current step, saves a checkpoint and exits 0.\n"
      "A closed log stream (ddpm-train ... 2>&1 | head) does not end the run: logging to it stops, training goes on.\n"
      "Example: ddpm-train --config configs/fashion-mnist-28.toml --run-dir runs/fmnist";
  return run_train_tool(argc, argv, tool);
}

}  // namespace ddpm::cli
