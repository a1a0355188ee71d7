#include "ddpm/train/trainer.hpp"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>

#include <fmt/format.h>

#include "ddpm/pipeline/checkpoint.hpp"
#include "train/trainer_internal.hpp"
#include "util/splitmix.hpp"

namespace ddpm {
using namespace trainer_detail;

namespace {

// The trainer's own stream (timesteps and noise) must not coincide with the global one
// (weight init, dropout), which is seeded with `seed` itself.
constexpr uint64_t kTrainerStream = 0x9E3779B97F4A7C15ull;

void seed_global(uint64_t seed) {
  auto& gen = global_cpu_generator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
}

std::string non_finite_text(double value, bool distributed) {
  return fmt::format("{}{}", value, distributed ? " (on at least one rank)" : "");
}

}  // namespace

TrainingDraws training_draws(uint64_t seed, int64_t step, int64_t micro_batch, int64_t batch_size, int64_t first,
                             int64_t count, const std::vector<int64_t>& image_shape, int64_t num_timesteps) {
  // One stream family per step; NoiseStream keys image streams by (family seed, index).
  const uint64_t family = mix64(mix64(seed ^ kTrainerStream) + static_cast<uint64_t>(step));
  NoiseStream stream(family, micro_batch * batch_size + first, count, image_shape);
  TrainingDraws d;
  // t ~ U{0, …, T−1} (DDPM Algorithm 1, line 3): ⌊u·T⌋ with u < 1 is < T.
  d.timesteps = at::floor(stream.uniform() * static_cast<double>(num_timesteps)).to(at::kLong);
  d.drop_u = stream.uniform();
  d.noise = stream.next();  // ε ~ N(0, I) (line 4)
  return d;
}

Trainer::Trainer(Config config, std::shared_ptr<Dataset> dataset, c10::Device device, TrainerOptions options)
    : config_(std::move(config)), dataset_(std::move(dataset)), device_(device), options_(std::move(options)) {
  if (!dataset_) throw std::invalid_argument("Trainer: no dataset");
  config_.resolve();
  config_.validate();
  const auto& m = config_.model;
  if (m.learned_variance)
    throw std::invalid_argument("learned-variance: training a learned variance (L_hybrid) is not supported");
  if (dataset_->channels() != m.image_channels || dataset_->height() != m.image_height ||
      dataset_->width() != m.image_width)
    throw std::invalid_argument(fmt::format(
        "image-size/channels: the model expects {}×{}×{} images but the data gives {}×{}×{}", m.image_channels,
        m.image_height, m.image_width, dataset_->channels(), dataset_->height(), dataset_->width()));
  if (m.conditional() && (!dataset_->labels().defined() || dataset_->num_classes() != m.num_classes))
    throw std::invalid_argument(fmt::format("num-classes: the model has {} classes but the data {}", m.num_classes,
                                            dataset_->labels().defined() ? std::to_string(dataset_->num_classes()) + " classes"
                                                                         : std::string("has no labels")));

  const auto& t = config_.train;
  seed_global(t.seed);
  if (device_.is_cuda()) {  // dropout on CUDA: a run is reproducible from its seed there too
    at::Generator gen = device_generator(device_);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(t.seed);
  }
  schedule_ = std::make_unique<NoiseSchedule>(config_.schedule, device_);
  model_ = UNet(config_.model);
  ema_model_ = UNet(config_.model);
  model_->to(device_);
  ema_model_->to(device_);
  ema_ = std::make_unique<EMA>(model_.ptr(), ema_model_.ptr(), t.ema_options());
  state_ = std::make_unique<State>(model_->parameters(), t);
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size)
    throw std::invalid_argument(fmt::format("Trainer: rank {} of world size {}", options_.rank, options_.world_size));
  if (t.batch_size % options_.world_size != 0)
    throw std::invalid_argument(fmt::format("batch-size: {} (the global batch) must be a multiple of the world size {}",
                                            t.batch_size, options_.world_size));
  if (distributed() && (!options_.reduce_gradients || !options_.all_reduce_sum || !options_.barrier))
    throw std::invalid_argument("Trainer: world size > 1 needs reduce_gradients, all_reduce_sum and barrier");
  const int64_t share = t.batch_size / options_.world_size;
  state_->loader = std::make_unique<DataLoader>(dataset_, t.batch_size, t.seed, config_.data, LoaderState{},
                                                LoaderSlice{options_.rank * share, share});
  objective_ = options_.objective ? options_.objective : std::make_shared<DenoisingObjective>(t, *schedule_);
  objective_->at_step(0, ema_model_, config_);
}

bool Trainer::stop_requested() {
  if (distributed()) return stop_agreed_;
  return options_.stop && options_.stop->load();
}

void Trainer::barrier() const {
  if (distributed()) options_.barrier();
}

Trainer::~Trainer() = default;

double Trainer::lr_at(int64_t step) const {
  const auto& t = config_.train;
  if (t.warmup_steps > 0 && step < t.warmup_steps)
    return t.lr * static_cast<double>(step + 1) / static_cast<double>(t.warmup_steps);
  if (t.lr_schedule == LrSchedule::Cosine) {
    // Step `step` (0-based) of the decay phase; the last of `steps` gets lr·(1 − cos(π/n))/2 > 0.
    const double n = static_cast<double>(std::max<int64_t>(1, t.steps - t.warmup_steps));
    const double done = std::min(1.0, static_cast<double>(step - t.warmup_steps) / n);
    constexpr double kPi = 3.14159265358979323846;
    return t.lr * 0.5 * (1.0 + std::cos(kPi * done));
  }
  return t.lr;
}

LoaderState Trainer::loader_state() const { return state_->loader->state(); }

StepStats Trainer::train_step() {
  const auto& t = config_.train;
  const auto start = std::chrono::steady_clock::now();
  model_->train();
  const double lr = lr_at(step_);
  for (auto& group : state_->optimizer.param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  state_->optimizer.zero_grad();

  // What the step consumes, so that a stop between micro-batches can undo it: the checkpoint
  // written then is the one of the last whole step, and a resume continues exactly.
  const LoaderState loader_before = state_->loader->state();
  const at::Tensor global_before = get_state(global_cpu_generator());

  const int64_t T = schedule_->num_timesteps();
  const int64_t share = t.batch_size / options_.world_size, first = options_.rank * share;
  const std::vector<int64_t> shape{config_.model.image_channels, config_.model.image_height,
                                   config_.model.image_width};
  // Each rank's loss is its images' sum over the global batch (all micro-batches): the sum over
  // ranks of the gradients is then the gradient of the global mean, whatever the split.
  const double scale = 1.0 / static_cast<double>(t.batch_size * t.grad_accum);
  int64_t images = 0;
  double loss_sum = 0;  // sum of this rank's per-image weighted losses
  bool non_finite = false;
  double bad_value = 0;
  for (int64_t k = 0; k < t.grad_accum; ++k) {
    // Distributed, a stop is agreed at the step's end instead (a rank leaving here would hang the others).
    if (k > 0 && !distributed() && options_.stop && options_.stop->load()) {
      state_->optimizer.zero_grad();
      state_->loader->reset(loader_before);
      set_state(global_cpu_generator(), global_before);
      throw StepInterrupted(fmt::format("step {} interrupted after {} of {} micro-batches", step_ + 1, k, t.grad_accum));
    }
    Batch batch = state_->loader->next_batch();
    at::Tensor x0 = batch.images;
    const int64_t B = x0.size(0);
    // t and ε from the image's own stream (CPU, so device-independent; see training_draws).
    TrainingDraws draws = training_draws(t.seed, step_, k, t.batch_size, first, B, shape, T);
    at::Tensor timesteps = draws.timesteps;
    at::Tensor noise = draws.noise;
    // Class-conditional: the images' labels, each dropped to "no class" with probability
    // cond-drop by its own stream's number (so the drops do not depend on the world size).
    at::Tensor labels;
    if (config_.model.conditional())
      labels = at::where(draws.drop_u < t.cond_drop, at::full({B}, kNoClass, at::kLong),
                         dataset_->labels().index_select(0, batch.indices))
                   .to(device_);
    x0 = x0.to(device_);
    noise = noise.to(device_);
    timesteps = timesteps.to(device_);
    if (config_.model.channels_last) {
      x0 = x0.contiguous(at::MemoryFormat::ChannelsLast);
      noise = noise.contiguous(at::MemoryFormat::ChannelsLast);
    }
    const ModelForward forward = [this, &t](const at::Tensor& x, const at::Tensor& ts, const at::Tensor& c) {
      Autocast autocast(t.bf16, device_);
      return model_->forward(x, ts, c).to(at::kFloat);
    };
    const at::Tensor loss = objective_->loss({x0, noise, timesteps, labels}, forward).sum();
    const double value = loss.item<double>();
    if (!std::isfinite(value)) {
      non_finite = true;
      bad_value = value;
      if (!distributed()) break;  // alone: stop now; distributed: finish the step's collectives first
    }
    if (options_.set_sync) options_.set_sync(k + 1 == t.grad_accum);
    (loss * scale).backward();
    loss_sum += value;
    images += B;
  }
  if (options_.reduce_gradients && !(non_finite && !distributed())) options_.reduce_gradients(*model_);
  double mean_loss = loss_sum * scale;
  if (distributed()) {
    // One small all-reduce decides, on every rank alike: the global mean loss, whether any rank
    // saw a non-finite loss, whether any rank was asked to stop.
    const bool stop_here = options_.stop && options_.stop->load();
    at::Tensor control = at::tensor(std::vector<double>{loss_sum, non_finite ? 1.0 : 0.0, stop_here ? 1.0 : 0.0},
                                    at::TensorOptions().dtype(at::kDouble));
    options_.all_reduce_sum(control);
    const double* c = control.data_ptr<double>();
    mean_loss = c[0] * scale;
    if (c[1] > 0 && !non_finite) bad_value = std::numeric_limits<double>::quiet_NaN();
    non_finite = c[1] > 0;
    stop_agreed_ = c[2] > 0;
  }
  if (non_finite)
    throw NonFiniteLossError(fmt::format("step {}: the loss is {}; training stopped (try a lower --lr or "
                                         "--grad-clip); {}",
                                         step_ + 1, non_finite_text(bad_value, distributed()),
                                         last_good_checkpoint(config_.train.run_dir)));
  const double max_norm = t.grad_clip > 0 ? t.grad_clip : std::numeric_limits<double>::infinity();
  const double grad_norm = torch::nn::utils::clip_grad_norm_(model_->parameters(), max_norm);
  if (!std::isfinite(grad_norm))
    throw NonFiniteLossError(fmt::format("step {}: the gradient norm is {}; training stopped (try a lower --lr or "
                                         "--grad-clip); {}",
                                         step_ + 1, grad_norm, last_good_checkpoint(config_.train.run_dir)));
  state_->optimizer.step();
  ++step_;
  if (step_ % t.ema_update_every == 0) ema_->update();
  objective_->at_step(step_, ema_model_, config_);

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  StepStats stats;
  stats.step = step_;
  stats.loss = mean_loss;
  stats.lr = lr;
  stats.grad_norm = grad_norm;
  // The global figure: every rank loads its share of the same global batches.
  stats.images_per_s = seconds > 0 ? static_cast<double>(images * options_.world_size) / seconds : 0.0;
  state_->window_loss += stats.loss;
  state_->window_steps += 1;
  state_->window_images += images * options_.world_size;
  return stats;
}

int64_t Trainer::fit() {
  const auto& t = config_.train;
  state_->open_run(config_, step_, writes(), device_, options_);
  const int64_t first = step_;
  // A resumed run already has the checkpoint of its current step.
  int64_t saved = step_ > 0 ? step_ : -1, sampled = -1;
  bool stopped = false;
  while (step_ < t.steps) {
    if (stop_requested()) {
      stopped = true;
      break;
    }
    StepStats stats;
    try {
      stats = train_step();
    } catch (const StepInterrupted& e) {
      event(e.what());
      stopped = true;
      break;
    }
    if (options_.on_step) options_.on_step(stats);
    if (step_ % t.log_every == 0 || step_ == t.steps) write_metrics(state_->end_window(stats, options_));
    if (step_ % t.save_every == 0) {
      // Rank 0 writes while the others wait: a failed save ends every rank (the barrier times
      // out or sees rank 0 gone), and no rank runs ahead of a checkpoint it may resume from.
      barrier();
      save_checkpoint();
      barrier();
      saved = step_;
    }
    if (t.sample_every > 0 && step_ % t.sample_every == 0) {
      save_samples();
      sampled = step_;
    }
    if (t.eval_every > 0 && step_ % t.eval_every == 0) evaluate();
  }
  if (stop_requested()) stopped = true;
  if (step_ == first) return 0;
  if (saved != step_) {
    barrier();
    save_checkpoint();
    barrier();
  }
  if (!stopped && t.sample_every > 0 && sampled != step_) save_samples();
  state_->metrics.close();
  state_->tensorboard.reset();
  return step_ - first;
}

}  // namespace ddpm
