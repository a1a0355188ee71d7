#include "ddpm/train/trainer.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/version.h>

#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <sstream>

#include <fmt/format.h>

#include "ddpm/io/atomic_file.hpp"
#include "ddpm/io/read_file.hpp"
#include "util/splitmix.hpp"
#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/math/diffusion.hpp"
#include "ddpm/data/image.hpp"
#include "ddpm/samplers/sampler.hpp"
#include "ddpm/samplers/steering.hpp"
#include "ddpm/eval/features.hpp"
#include "ddpm/eval/image_set.hpp"
#include "ddpm/eval/kid.hpp"
#include "ddpm/eval/precision_recall.hpp"
#include "ddpm/eval/stats.hpp"
#include "ddpm/eval/stats_file.hpp"

namespace fs = std::filesystem;

namespace ddpm {
namespace {

// The trainer's own stream (timesteps and noise) must not coincide with the global one
// (weight init, dropout), which is seeded with `seed` itself.
constexpr uint64_t kTrainerStream = 0x9E3779B97F4A7C15ull;
// metrics.jsonl is a line of ~200 bytes a logged step: 4 GiB is twenty million of them.
constexpr uint64_t kMaxMetricsBytes = uint64_t{1} << 32;

at::Generator& global_cpu_generator() {
  static at::Generator gen = at::detail::getDefaultCPUGenerator();
  return gen;
}

void seed_global(uint64_t seed) {
  auto& gen = global_cpu_generator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
}

// The device's default generator (dropout on CUDA draws from it); device-generic, so no
// CUDA headers are needed.
at::Generator device_generator(c10::Device device) { return at::globalContext().defaultGenerator(device); }

at::Tensor get_state(at::Generator& gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_state(at::Generator& gen, const at::Tensor& state) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// bf16 autocast for the forward pass (the loss is computed in fp32).
class Autocast {
 public:
  Autocast(bool enabled, c10::Device device) : enabled_(enabled), cuda_(device.is_cuda()) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    const auto type = cuda_ ? at::kCUDA : at::kCPU;
    previous_ = at::autocast::is_autocast_enabled(type);
    at::autocast::set_autocast_dtype(type, at::kBFloat16);
    at::autocast::set_autocast_enabled(type, true);
#else
    if (cuda_) {
      previous_ = at::autocast::is_enabled();
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(true);
    } else {
      previous_ = at::autocast::is_cpu_enabled();
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
#endif
  }
  ~Autocast() {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(cuda_ ? at::kCUDA : at::kCPU, previous_);
#else
    if (cuda_)
      at::autocast::set_enabled(previous_);
    else
      at::autocast::set_cpu_enabled(previous_);
#endif
    at::autocast::clear_cache();
  }

 private:
  bool enabled_, cuda_, previous_ = false;
};

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

// Every checkpoint was checked finite before it was written, so the latest is the last good one.
std::string last_good_checkpoint(const std::string& run_dir) {
  const std::string latest = latest_checkpoint(run_dir);
  return latest.empty() ? "no checkpoint was saved" : "the last good checkpoint is " + latest;
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

struct Trainer::State {
  State(const std::vector<at::Tensor>& params, const TrainConfig& t)
      : optimizer(params, torch::optim::AdamWOptions(t.lr)
                              .betas(std::make_tuple(t.adam_beta1, t.adam_beta2))
                              .eps(t.adam_eps)
                              .weight_decay(t.weight_decay)) {}
  torch::optim::AdamW optimizer;
  std::unique_ptr<DataLoader> loader;
  std::ofstream metrics;
  std::unique_ptr<TensorBoardLog> tensorboard;  // rank 0, when config.train.tensorboard
  // Evaluation (eval-every): the feature network and the reference, loaded at the first one.
  std::unique_ptr<eval::FeatureNetwork> eval_net;
  eval::FeatureStats eval_ref_stats;
  at::Tensor eval_ref_features;  // undefined when eval-ref is a statistics file
  // Metrics window since the last line.
  double window_loss = 0;
  int64_t window_steps = 0, window_images = 0;
  std::chrono::steady_clock::time_point window_start = std::chrono::steady_clock::now();
  dist::ReducerStats window_reducer;  // the all-reduce totals when the window began

  // Starts a metrics window after `now`.
  void start_window(std::chrono::steady_clock::time_point now, const TrainerOptions& options) {
    window_loss = 0;
    window_steps = window_images = 0;
    window_start = now;
    if (options.reducer_stats) window_reducer = options.reducer_stats();
  }
};

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

void Trainer::init_weights(const std::string& path) {
  const CheckpointReader reader(path, device_);
  if (reader.has_ema())
    reader.load_ema(*model_);
  else
    reader.load_model(*model_);
  ema_->copy_from_model();
  event(fmt::format("weights from {} ({})", reader.path(), reader.has_ema() ? "its EMA" : "its raw weights"));
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

void Trainer::event(const std::string& message) const {
  if (options_.on_event)
    options_.on_event(message);
  else
    spdlog::info("{}", message);
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

namespace {
// The evaluation's feature network and reference statistics (and features, for KID and
// precision/recall, when the reference is an image set). Checks that the network takes the
// model's images and that its features have the reference's dimension, so a bad
// --eval-features/--eval-ref fails before training rather than at the first evaluation.
void load_eval_reference(const Config& config, c10::Device device, std::unique_ptr<eval::FeatureNetwork>& net,
                         eval::FeatureStats& stats, at::Tensor& features) {
  const auto& t = config.train;
  const auto& m = config.model;
  net = eval::load_feature_network(t.eval_features, {}, device);
  const int64_t dim = net->features(at::zeros({1, m.image_channels, m.image_height, m.image_width}, at::kByte)).size(1);
  const std::string& ref = t.eval_ref;
  if (ref.size() > 4 && ref.compare(ref.size() - 4, 4, ".npz") == 0) {
    stats = eval::read_stats_npz(ref);
  } else {
    auto set = eval::open_image_set(ref, {}, m.image_channels);
    if (set->height() != m.image_height || set->width() != m.image_width)
      throw std::invalid_argument("eval-ref '" + ref + "': images are " + std::to_string(set->height()) + "x" +
                                  std::to_string(set->width()) + ", the model's " + std::to_string(m.image_height) +
                                  "x" + std::to_string(m.image_width));
    features = eval::compute_features(*net, *set);
    stats = eval::compute_stats(features);
  }
  if (stats.dim() != dim)
    throw std::invalid_argument("eval-ref '" + ref + "': " + std::to_string(stats.dim()) + "-d statistics, but " +
                                net->describe() + " gives " + std::to_string(dim) + "-d features");
}
}  // namespace

std::string Trainer::evaluate() {
  const auto& t = config_.train;
  if (!writes()) return "";
  if (t.eval_features.empty() || t.eval_ref.empty())
    throw std::invalid_argument("eval-every: needs --eval-features and --eval-ref");
  const auto start = std::chrono::steady_clock::now();
  if (!state_->eval_net)
    load_eval_reference(config_, device_, state_->eval_net, state_->eval_ref_stats, state_->eval_ref_features);
  c10::NoGradGuard no_grad;
  ema_model_->eval();
  const auto& m = config_.model;
  const bool bf16 = t.bf16;
  const ConditionalDenoiser network = [this, bf16](const at::Tensor& x, const at::Tensor& ts, const at::Tensor& labels) {
    Autocast autocast(bf16, device_);
    at::Tensor out = ema_model_->forward(x, ts, labels).to(at::kFloat);
    return out.size(1) == config_.model.image_channels ? out : out.narrow(1, 0, config_.model.image_channels);
  };
  std::vector<at::Tensor> features;
  // A class-conditional model draws every class equally, as ddpm-eval does (eval-guidance).
  Guidance g;
  g.weight = t.eval_guidance;
  g.sigma_low = t.eval_guidance_sigma_low;
  g.sigma_high = t.eval_guidance_sigma_high;
  const int64_t batch = std::min<int64_t>(t.eval_n, 250);
  for (int64_t first = 0; first < t.eval_n; first += batch) {
    const int64_t count = std::min(batch, t.eval_n - first);
    const Denoiser denoiser = balanced_denoiser(network, m.num_classes, first, count, g, *schedule_);
    at::Tensor x = sample(*schedule_, denoiser, config_.sample, count, m.image_channels, m.image_height,
                          m.image_width, first);
    features.push_back(state_->eval_net->features(eval::to_uint8_images(x)));
  }
  at::Tensor fake = at::cat(features);
  const double fid = eval::frechet_distance(state_->eval_ref_stats, eval::compute_stats(fake));
  EvalScores scores;
  scores.step = step_;
  scores.fid = fid;
  std::string line = fmt::format("{{\"step\":{},\"fid\":{}", step_, fid);
  std::string summary = fmt::format("eval step {}: FID {:.4f}", step_, fid);
  if (state_->eval_ref_features.defined()) {
    const eval::KidResult kid = eval::kernel_inception_distance(state_->eval_ref_features, fake);
    const eval::PrecisionRecall pr = eval::precision_recall(state_->eval_ref_features, fake);
    line += fmt::format(",\"kid\":{},\"kid_std\":{},\"precision\":{},\"recall\":{}", kid.mean, kid.std,
                        pr.precision, pr.recall);
    summary += fmt::format("  KID {:.5f}  precision {:.3f}  recall {:.3f}", kid.mean, pr.precision, pr.recall);
    scores.kid = kid.mean;
    scores.precision = pr.precision;
    scores.recall = pr.recall;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string features_desc = state_->eval_net->describe();
  std::string escaped;
  for (char c : features_desc) escaped += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  if (m.conditional()) {
    line += fmt::format(",\"eval_guidance\":{}", g.weight);
    if (g.limited())
      line += fmt::format(",\"eval_guidance_interval\":[{},{}]", g.sigma_low,
                          std::isfinite(g.sigma_high) ? fmt::format("{}", g.sigma_high) : std::string("null"));
  }
  line += fmt::format(",\"eval_n\":{},\"eval_seconds\":{:.1f},\"eval_features\":\"{}\"}}\n", t.eval_n, seconds, escaped);
  if (state_->metrics.is_open()) {
    state_->metrics << line;
    state_->metrics.flush();
  }
  if (state_->tensorboard) state_->tensorboard->eval(scores);
  event(summary + fmt::format(" ({} samples, {}, {:.0f} s)", t.eval_n, features_desc, seconds));
  return line;
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

int64_t Trainer::fit() {
  const auto& t = config_.train;
  if (writes()) {
    fs::create_directories(t.run_dir);
    // Temporary files of a save cut short by a kill would keep a full disk full.
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(t.run_dir, ec))
      if (entry.path().extension() == ".tmp") fs::remove(entry.path(), ec);
    prune_checkpoints(t.run_dir, 0);
    io::write_file_atomically((fs::path(t.run_dir) / "config.toml").string(), config_to_toml(config_));
    const std::string metrics = (fs::path(t.run_dir) / "metrics.jsonl").string();
    truncate_metrics(metrics, step_);
    state_->metrics.open(metrics, std::ios::app);
    if (!state_->metrics) throw std::runtime_error("'" + metrics + "': cannot be opened for appending");
  }
  if (t.eval_every > 0 && writes() && !state_->eval_net)
    load_eval_reference(config_, device_, state_->eval_net, state_->eval_ref_stats, state_->eval_ref_features);
  if (writes() && t.tensorboard) {
    // A new events file per fit() (once the run could start); its START drops, in TensorBoard,
    // what older files logged after step_ (the checkpoint a resumed run continues from).
    state_->tensorboard = std::make_unique<TensorBoardLog>(t.run_dir);
    state_->tensorboard->start(step_);
    state_->tensorboard->config(step_, config_to_toml(config_));
  }
  const int64_t first = step_;
  // A resumed run already has the checkpoint of its current step.
  int64_t saved = step_ > 0 ? step_ : -1, sampled = -1;
  state_->start_window(std::chrono::steady_clock::now(), options_);
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
    if (step_ % t.log_every == 0 || step_ == t.steps) {
      const auto now = std::chrono::steady_clock::now();
      const double seconds = std::chrono::duration<double>(now - state_->window_start).count();
      const int64_t steps = std::max<int64_t>(1, state_->window_steps);
      TrainingScalars m;
      m.step = stats.step;
      m.loss = state_->window_loss / steps;
      m.lr = stats.lr;
      m.grad_norm = stats.grad_norm;
      m.images_per_s = seconds > 0 ? state_->window_images / seconds : 0.0;
      m.step_time = seconds / steps;
      if (options_.reducer_stats) {
        const dist::ReducerStats r = options_.reducer_stats(), &r0 = state_->window_reducer;
        dist::ReducerStats window;
        window.window_seconds = r.window_seconds - r0.window_seconds;
        window.wait_seconds = r.wait_seconds - r0.wait_seconds;
        m.allreduce_hidden = window.hidden_fraction();
      }
      write_metrics(m);
      state_->start_window(now, options_);
    }
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
