// ddpm-sample: a checkpoint in, PNG grids out. The model, schedule and prediction type
// all come from the checkpoint; only the sampler is chosen here.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/common.hpp"
#include "tools/cpu_env.hpp"
#include "tools/local_launch.hpp"
#include "tools/local_slices.hpp"
#include "tools/options.hpp"
#include "tools/progress.hpp"
#include "tools/sample_guide.hpp"
#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/train/distill.hpp"
#include "ddpm/util/errors.hpp"
#include "tools/tools.hpp"
#include "ddpm/data/image.hpp"
#include "ddpm/io/atomic_file.hpp"
#include "ddpm/samplers/sampler.hpp"

namespace ddpm::cli {
namespace {

struct SampleOptions {
  std::string checkpoint;
  int64_t n = 64;
  int64_t batch_size = 64;
  bool no_ema = false;
  std::string out = "samples.png";
  int64_t nrow = 8;
  int64_t padding = 2;
  std::string individual;
  std::string trajectory;
  int64_t trajectory_frames = 10;
  int64_t trajectory_rows = 8;
  int nproc = 1;
};

void ensure_parent_dir(const std::string& file) {
  auto parent = std::filesystem::path(file).parent_path();
  std::error_code ec;
  if (!parent.empty() && !std::filesystem::create_directories(parent, ec) && ec)
    throw io::UnwritableOutput("cannot write '" + file + "': cannot create its directory: " + ec.message());
}

// The steps (1-based, of `total`) at which a trajectory keeps a frame: evenly spaced,
// the last one being the final image.
std::vector<int64_t> frame_steps(int64_t total, int64_t frames) {
  std::vector<int64_t> steps;
  frames = std::min(frames, total);
  for (int64_t j = 1; j <= frames; ++j) steps.push_back((j * total + frames - 1) / frames);
  return steps;
}

// Upper bounds before anything is allocated or sampled, naming the option.
void check_sizes(const SampleOptions& opt, int64_t C, int64_t H, int64_t W) {
  auto at_most = [](const char* name, int64_t v, int64_t max) {
    if (v > max)
      throw std::invalid_argument(std::string(name) + ": must be <= " + std::to_string(max) + " (got " +
                                  std::to_string(v) + ")");
  };
  at_most("--n", opt.n, int64_t{1} << 20);
  at_most("--batch-size", opt.batch_size, int64_t{1} << 16);
  at_most("--padding", opt.padding, 1024);
  at_most("--nrow", opt.nrow, int64_t{1} << 20);
  at_most("--trajectory-frames", opt.trajectory_frames, 1024);
  at_most("--trajectory-rows", opt.trajectory_rows, 1024);
  const int64_t xmaps = std::min(opt.nrow, opt.n), ymaps = (opt.n + xmaps - 1) / xmaps;
  const int64_t gw = xmaps * (W + opt.padding) + opt.padding, gh = ymaps * (H + opt.padding) + opt.padding;
  // PNG rows are written with int sizes; 2^28 bytes is a grid of 16384 × 5461 RGB pixels.
  if (gw > 65535 || gh > 65535 || gw * gh * C > (int64_t{1} << 28))
    throw std::invalid_argument("--n/--nrow/--padding: the grid would be " + std::to_string(gw) + "x" +
                                std::to_string(gh) + " pixels, more than a PNG here may hold; use --individual "
                                "with a smaller --n per call");
}

int run_sample(CLI::App& app, int argc, char** argv, const SampleOptions& options, const GuideOptions& guide_options,
               SamplerConfig& sampler, const RuntimeOptions& runtime) {
  const std::optional<SliceTask> task = slice_task_from_environment();  // a rank of --nproc-per-node
  if (options.nproc > 1 && !options.trajectory.empty())
    bad_input("--trajectory", "draws the first batch in one process: not with --nproc-per-node > 1");
  const c10::Device device = apply_runtime(task ? rank_runtime(runtime) : runtime);
  LoadedModel loaded = load_model_for_sampling(options.checkpoint, device, !options.no_ema);
  // Defaults: the sampler the run used for its grids (sampler, steps, seed, clipping, ...,
  // as in its config); what the command line gives overrides them, so parse it again.
  sampler = loaded.config.sample;
  app.clear();
  app.parse(argc, argv);
  const UNetConfig& mc = loaded.config.model;
  const int64_t C = mc.image_channels, H = mc.image_height, W = mc.image_width;
  SampleOptions opt = options;
  const Guide guide(guide_options, mc, opt.n, opt.nrow);  // may set n (--class all)
  check_sizes(opt, C, H, W);
  sampler.prediction = loaded.config.train.prediction;
  sampler.validate(loaded.schedule);  // before any work: e.g. ε-prediction at zero terminal SNR
  if (const std::string w = distilled_sampler_warning(loaded.config, sampler, guide_options.guidance.value_or(0.0));
      !w.empty())
    spdlog::warn("{}: {}", loaded.path, w);
  spdlog::info("checkpoint {} (step {}, {} weights): {}x{}x{}, prediction {}; sampler {}, {} steps ({})", loaded.path,
               loaded.step, loaded.ema ? "EMA" : "raw", C, H, W, to_string(sampler.prediction), to_string(sampler.kind),
               sampler.resolved_steps(loaded.schedule.num_timesteps()), to_string(sampler.spacing));
  if (!guide.describe().empty()) spdlog::info("steering: {}", guide.describe());

  UNet model = loaded.model;
  // A learned-variance model also outputs the variance interpolation: the samplers here
  // use fixed variances, so they take the first C channels (the prediction).
  const ConditionalDenoiser network = [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& labels) {
    c10::InferenceMode guard;
    at::Tensor out = model->forward(x, t, labels);
    return out.size(1) == C ? out : out.narrow(1, 0, C);
  };

  // Draws images [s.first, s.first + s.count) batch by batch and hands each to put(k, image),
  // converted as the grid shows it. A trajectory keeps frames of the first batch.
  std::vector<at::Tensor> frames;  // one [rows, C, H, W] per kept step of the first batch
  auto draw = [&](Slice s, bool show_progress, const std::function<void(int64_t, const Image&)>& put) {
    const int64_t batches = (s.count + opt.batch_size - 1) / opt.batch_size;
    std::unique_ptr<Progress> bar;
    for (int64_t b = 0; b < batches; ++b) {
      const int64_t first = s.first + b * opt.batch_size;
      const int64_t count = std::min(opt.batch_size, s.first + s.count - first);
      ProgressFn progress = [&](int64_t step, int64_t total) {
        if (!show_progress) return true;
        if (!bar) bar = std::make_unique<Progress>("sample", total * batches, 0, 0, std::max<int64_t>(1, total / 4), stderr);
        bar->update(b * total + step);
        return true;
      };
      StepFn on_step;
      std::vector<int64_t> keep;
      if (first == 0 && !opt.trajectory.empty()) {
        on_step = [&](int64_t step, int64_t total, const at::Tensor& x) {
          if (keep.empty()) keep = frame_steps(total, opt.trajectory_frames);
          if (std::find(keep.begin(), keep.end(), step) != keep.end())
            frames.push_back(x.narrow(0, 0, std::min(count, opt.trajectory_rows)).to(at::kCPU, at::kFloat));
        };
      }
      const at::Tensor batch = sample(loaded.schedule, guide.denoiser(network, loaded.schedule, first, count), sampler,
                                      count, C, H, W, first, progress, on_step, guide.steering(loaded.schedule, first, count))
                                   .to(at::kCPU, at::kFloat);
      for (int64_t j = 0; j < count; ++j)
        put(first + j, make_grid(batch.narrow(0, j, 1), 1, 0));  // the same [−1, 1] → uint8 rounding
    }
    if (bar) bar->finish();
  };

  const int64_t image_bytes = C * H * W;
  if (task) {  // a rank: its slice into its file, nothing else
    const Slice s = task->slice(opt.n);
    SliceWriter writer(task->out, s.count, image_bytes);
    draw(s, false, [&](int64_t, const Image& one) { writer.append(one.pixels.data()); });
    writer.commit();
    return 0;
  }

  // The grid is filled image by image (uint8, as make_grid lays it out) and the individual
  // files are written at once: memory is the grid plus one batch, not all --n floats.
  const int64_t xmaps = std::min(opt.nrow, opt.n), ymaps = (opt.n + xmaps - 1) / xmaps;
  const int64_t pad = opt.n == 1 ? 0 : opt.padding;  // make_grid returns a single image as it is
  Image grid;
  grid.channels = static_cast<int>(C);
  grid.width = static_cast<int>(xmaps * (W + pad) + pad);
  grid.height = static_cast<int>(ymaps * (H + pad) + pad);
  grid.pixels.assign(static_cast<size_t>(grid.width) * grid.height * C, 0);
  if (!opt.individual.empty()) std::filesystem::create_directories(opt.individual);
  auto put = [&](int64_t k, const Image& one) {
    const int64_t top = (k / xmaps) * (H + pad) + pad, left = (k % xmaps) * (W + pad) + pad;
    for (int64_t y = 0; y < H; ++y)
      std::copy_n(&one.pixels[static_cast<size_t>(y * W * C)], W * C,
                  &grid.pixels[static_cast<size_t>(((top + y) * grid.width + left) * C)]);
    if (!opt.individual.empty()) {
      char name[32];
      std::snprintf(name, sizeof(name), "%05lld.png", static_cast<long long>(k));
      save_png((std::filesystem::path(opt.individual) / name).string(), one);
    }
  };
  if (opt.nproc > 1) {
    const LocalSlices slices(opt.nproc, argc, argv, opt.n, image_bytes);
    std::vector<uint8_t> chunk(static_cast<size_t>(opt.batch_size * image_bytes));
    Image one;
    one.channels = static_cast<int>(C);
    one.width = static_cast<int>(W);
    one.height = static_cast<int>(H);
    for (int64_t first = 0; first < opt.n; first += opt.batch_size) {
      const int64_t count = std::min(opt.batch_size, opt.n - first);
      slices.read(first, count, chunk.data());
      for (int64_t j = 0; j < count; ++j) {
        const auto at = chunk.begin() + j * image_bytes;
        one.pixels.assign(at, at + image_bytes);
        put(first + j, one);
      }
    }
  } else {
    draw({0, opt.n}, true, put);
  }

  ensure_parent_dir(opt.out);
  save_png(opt.out, grid);
  std::printf("wrote %s (%lld images)\n", opt.out.c_str(), static_cast<long long>(opt.n));
  if (!opt.individual.empty())
    std::printf("wrote %lld images to %s\n", static_cast<long long>(opt.n), opt.individual.c_str());

  if (!opt.trajectory.empty() && !frames.empty()) {
    // Rows: images; columns: x_t from the noisiest kept step to the final image.
    at::Tensor stack = at::stack(frames, 1);  // [rows, frames, C, H, W]
    const int64_t rows = stack.size(0), cols = stack.size(1);
    ensure_parent_dir(opt.trajectory);
    save_png(opt.trajectory, make_grid(stack.reshape({rows * cols, C, H, W}).clamp(-1, 1), cols, opt.padding));
    std::printf("wrote %s (%lld rows x %lld steps)\n", opt.trajectory.c_str(), static_cast<long long>(rows),
                static_cast<long long>(cols));
  }
  return 0;
}

}  // namespace

int sample_main(int argc, char** argv) {
  tune_cpu_environment(argv);  // may re-execute the program (see cpu_env.hpp)
  CLI::App app{
      "ddpm-sample: draw images from a libddpm checkpoint and write PNG grids.\n"
      "The sampling options default to those of the checkpoint's config (its sample grids)."};
  app.name("ddpm-sample");
  SampleOptions opt;
  SamplerConfig sampler;
  RuntimeOptions runtime;
  GuideOptions guide;
  app.add_option("--checkpoint", opt.checkpoint, "A checkpoint file, or a run directory (its latest checkpoint)")
      ->required();
  app.add_option("--n", opt.n, "Number of images")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch-size", opt.batch_size, "Images per batch")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_flag("--no-ema", opt.no_ema, "Use the raw weights instead of the EMA weights");
  app.add_option("--out", opt.out, "The grid PNG")->capture_default_str();
  app.add_option("--nrow", opt.nrow, "Images per row of the grid")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--padding", opt.padding, "Pixels between images in grids")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--individual", opt.individual, "Also write one PNG per image into this directory");
  app.add_option("--trajectory", opt.trajectory, "Also write a PNG of x_t at evenly spaced steps (rows: images of the first batch)");
  app.add_option("--trajectory-frames", opt.trajectory_frames, "Columns of the trajectory")
      ->capture_default_str()->check(CLI::Range(int64_t{2}, int64_t{1000}));
  app.add_option("--trajectory-rows", opt.trajectory_rows, "Images (rows) in the trajectory")
      ->capture_default_str()->check(CLI::PositiveNumber);
  add_nproc_option(app, opt.nproc,
                   "Draw the images on this many local processes (ranks) of this program, each a contiguous slice "
                   "with 1 thread (or --threads each); the images are those of one process, byte for byte");
  add_sampler_options(app, sampler);
  add_guide_options(app, guide);
  add_runtime_options(app, runtime);
  return run_app(app, argc, argv, [&] { return run_sample(app, argc, argv, opt, guide, sampler, runtime); });
}

}  // namespace ddpm::cli
