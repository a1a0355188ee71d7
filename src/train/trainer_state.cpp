// The trainer's state in checkpoints: saving it (model, EMA, optimizer, generators, loader,
// objective), resuming from it, and starting from another run's weights.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

#include "ddpm/pipeline/checkpoint.hpp"
#include "train/trainer_internal.hpp"

namespace ddpm {
namespace trainer_detail {

at::Generator& global_cpu_generator() {
  static at::Generator gen = at::detail::getDefaultCPUGenerator();
  return gen;
}

at::Generator device_generator(c10::Device device) { return at::globalContext().defaultGenerator(device); }

at::Tensor get_state(at::Generator& gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_state(at::Generator& gen, const at::Tensor& state) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

std::string last_good_checkpoint(const std::string& run_dir) {
  const std::string latest = latest_checkpoint(run_dir);
  return latest.empty() ? "no checkpoint was saved" : "the last good checkpoint is " + latest;
}

}  // namespace trainer_detail

using namespace trainer_detail;

void Trainer::init_weights(const std::string& path) {
  const CheckpointReader reader(path, device_);
  if (reader.has_ema())
    reader.load_ema(*model_);
  else
    reader.load_model(*model_);
  ema_->copy_from_model();
  event(fmt::format("weights from {} ({})", reader.path(), reader.has_ema() ? "its EMA" : "its raw weights"));
}

void Trainer::resume(const std::string& path) {
  CheckpointReader reader(path, device_);
  reader.load_model(*model_);
  if (reader.has_ema()) {
    reader.load_ema(*ema_model_);
    ema_->set_num_updates(reader.ema_updates());
  } else {
    ema_->copy_from_model();
  }
  if (reader.has_optimizer()) reader.load_optimizer(state_->optimizer);
  step_ = reader.step();
  if (auto s = reader.rng_state("torch_cpu"); s.defined()) set_state(global_cpu_generator(), s);
  // Older checkpoints also hold a "trainer" generator: t and noise now come from per-image
  // streams keyed by (seed, step, index), so there is no state of theirs to restore.
  if (device_.is_cuda())
    if (auto s = reader.rng_state("torch_cuda"); s.defined()) {
      at::Generator gen = device_generator(device_);
      set_state(gen, s);
    }
  state_->loader->reset(reader.data_state());
  objective_->load_state([&reader](const std::string& name) { return reader.objective_state(name); });
  objective_->at_step(step_, ema_model_, config_);
  event(fmt::format("resumed from {} at step {}", reader.path(), step_));
}

std::string Trainer::save_checkpoint() {
  const std::string path = checkpoint_path(config_.train.run_dir, step_);
  if (!writes()) return path;
  CheckpointContents c;
  c.config_toml = config_to_toml(config_);
  c.step = step_;
  c.model = model_.get();
  c.ema = ema_model_.get();
  c.ema_updates = ema_->num_updates();
  c.optimizer = &state_->optimizer;
  c.rng["torch_cpu"] = get_state(global_cpu_generator());
  if (device_.is_cuda()) {
    at::Generator gen = device_generator(device_);
    c.rng["torch_cuda"] = get_state(gen);
  }
  c.data_state = state_->loader->state();
  c.objective = objective_->state();
  if (const std::string bad = first_non_finite(c); !bad.empty())
    throw NonFiniteLossError(fmt::format("step {}: the {} is NaN or infinite; training stopped and the step was not "
                                         "saved (try a lower --lr or --grad-clip); {}",
                                         step_, bad, last_good_checkpoint(config_.train.run_dir)));
  try {
    ddpm::save_checkpoint(path, c);
  } catch (const std::runtime_error& e) {
    const std::string previous = latest_checkpoint(config_.train.run_dir);
    throw std::runtime_error(std::string(e.what()) + (previous.empty() ? "; no earlier checkpoint"
                                                                       : "; the previous checkpoint " + previous +
                                                                             " is intact"));
  }
  // Only now that the new checkpoint is durable (renamed, directory synced) may older ones go.
  prune_checkpoints(config_.train.run_dir, config_.train.keep_last);
  event("saved " + path);
  return path;
}

}  // namespace ddpm
