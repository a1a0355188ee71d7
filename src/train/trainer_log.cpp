// What a run leaves besides checkpoints: the run directory's config.toml, metrics.jsonl and
// TensorBoard events (train/* every log-every steps), and the sample grids.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "ddpm/data/image.hpp"
#include "ddpm/io/atomic_file.hpp"
#include "ddpm/io/read_file.hpp"
#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/samplers/sampler.hpp"
#include "train/trainer_internal.hpp"

namespace fs = std::filesystem;

namespace ddpm {
namespace {

// metrics.jsonl is a line of ~200 bytes a logged step: 4 GiB is twenty million of them.
constexpr uint64_t kMaxMetricsBytes = uint64_t{1} << 32;

// Drops metrics lines of steps after `step` (written after the checkpoint a run resumes from).
void truncate_metrics(const std::string& path, int64_t step) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  std::istringstream in(io::read_regular_file(path, "metrics file", kMaxMetricsBytes));
  std::string line, kept;
  while (std::getline(in, line)) {
    auto pos = line.find("\"step\":");
    if (pos == std::string::npos) continue;
    if (std::strtoll(line.c_str() + pos + 7, nullptr, 10) <= step) kept += line + "\n";
  }
  io::write_file_atomically(path, kept);
}

}  // namespace

using trainer_detail::Autocast;

void Trainer::State::open_run(const Config& config, int64_t step, bool writes, c10::Device device,
                              const TrainerOptions& options) {
  const auto& t = config.train;
  if (writes) {
    fs::create_directories(t.run_dir);
    // Temporary files of a save cut short by a kill would keep a full disk full.
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(t.run_dir, ec))
      if (entry.path().extension() == ".tmp") fs::remove(entry.path(), ec);
    prune_checkpoints(t.run_dir, 0);
    io::write_file_atomically((fs::path(t.run_dir) / "config.toml").string(), config_to_toml(config));
    const std::string metrics = (fs::path(t.run_dir) / "metrics.jsonl").string();
    truncate_metrics(metrics, step);
    this->metrics.open(metrics, std::ios::app);
    if (!this->metrics) throw std::runtime_error("'" + metrics + "': cannot be opened for appending");
  }
  // A bad eval-features or eval-ref fails here, before training rather than at the first evaluation.
  if (t.eval_every > 0 && writes && !evaluator) evaluator = eval::Evaluator::for_run(config, device);
  if (writes && t.tensorboard) {
    // A new events file per fit() (once the run could start); its START drops, in TensorBoard,
    // what older files logged after `step` (the checkpoint a resumed run continues from).
    tensorboard = std::make_unique<TensorBoardLog>(t.run_dir);
    tensorboard->start(step);
    tensorboard->config(step, config_to_toml(config));
  }
  start_window(std::chrono::steady_clock::now(), options);
}

TrainingScalars Trainer::State::end_window(const StepStats& stats, const TrainerOptions& options) {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - window_start).count();
  const int64_t steps = std::max<int64_t>(1, window_steps);
  TrainingScalars m;
  m.step = stats.step;
  m.loss = window_loss / steps;
  m.lr = stats.lr;
  m.grad_norm = stats.grad_norm;
  m.images_per_s = seconds > 0 ? window_images / seconds : 0.0;
  m.step_time = seconds / steps;
  if (options.reducer_stats) {
    const dist::ReducerStats r = options.reducer_stats(), &r0 = window_reducer;
    dist::ReducerStats window;
    window.window_seconds = r.window_seconds - r0.window_seconds;
    window.wait_seconds = r.wait_seconds - r0.wait_seconds;
    m.allreduce_hidden = window.hidden_fraction();
  }
  start_window(now, options);
  return m;
}

void Trainer::write_metrics(const TrainingScalars& m) {
  if (state_->tensorboard) state_->tensorboard->train(m);
  if (!state_->metrics.is_open()) return;
  state_->metrics << fmt::format("{{\"step\":{},\"loss\":{},\"lr\":{},\"grad_norm\":{},\"images_per_s\":{:.2f},"
                                 "\"step_time\":{:.6f}{}}}\n",
                                 m.step, m.loss, m.lr, m.grad_norm, m.images_per_s, m.step_time,
                                 m.allreduce_hidden ? fmt::format(",\"allreduce_hidden\":{:.4f}", *m.allreduce_hidden)
                                                    : std::string());
  state_->metrics.flush();
  // A full disk must stop the run, not let it train on with a log that silently ends.
  if (!state_->metrics)
    throw std::runtime_error("'" + (fs::path(config_.train.run_dir) / "metrics.jsonl").string() +
                             "': cannot be written (" + std::strerror(errno) + "); training stopped at step " +
                             std::to_string(m.step));
}

void Trainer::event(const std::string& message) const {
  if (options_.on_event)
    options_.on_event(message);
  else
    spdlog::info("{}", message);
}

at::Tensor Trainer::sample_images(int64_t n) {
  c10::NoGradGuard no_grad;
  ema_model_->eval();
  const auto& m = config_.model;
  const bool bf16 = config_.train.bf16;
  Denoiser denoiser = [this, bf16](const at::Tensor& x, const at::Tensor& t) {
    Autocast autocast(bf16, device_);
    return ema_model_->forward(x, t).to(at::kFloat);
  };
  return sample(*schedule_, denoiser, config_.sample, n, m.image_channels, m.image_height, m.image_width).cpu();
}

std::string Trainer::save_samples() {
  const std::string path =
      (fs::path(config_.train.run_dir) / "samples" / fmt::format("step-{:08}.png", step_)).string();
  if (options_.rank != 0) return path;  // grids are rank 0's alone
  const int64_t n = config_.train.sample_n;
  at::Tensor images = sample_images(n);
  if (!writes()) return path;
  fs::create_directories(fs::path(path).parent_path());
  const auto nrow = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  const Image grid = make_grid(images, nrow);
  save_png(path, grid);
  if (state_->tensorboard) state_->tensorboard->samples(step_, grid);
  event("samples " + path);
  return path;
}

}  // namespace ddpm
