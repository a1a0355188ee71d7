// ddpm-schedule: prints a noise schedule as CSV, or writes the forward-noising strip of an image.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "tools/common.hpp"
#include "tools/options.hpp"
#include "tools/tools.hpp"
#include "ddpm/math/diffusion.hpp"
#include "ddpm/data/image.hpp"
#include "ddpm/math/schedule.hpp"
#include "ddpm/util/errors.hpp"
#include "ddpm/util/limits.hpp"

namespace ddpm::cli {
namespace {

struct StripOptions {
  std::string image;
  std::string out;
  int64_t frames = 8;
  int size = 0;
  uint64_t seed = 0;
};

// One row per i from the float64 tables; %.17g round-trips a double exactly.
void print_csv(const NoiseSchedule& s) {
  const double* beta = s.beta64.data_ptr<double>();
  const double* ab = s.alpha_bar64.data_ptr<double>();
  const double* lsnr = s.logsnr64.data_ptr<double>();
  const double* pv = s.posterior_variance64.data_ptr<double>();
  std::printf("t,beta,alpha_bar,logsnr,posterior_variance\n");
  for (int64_t i = 0; i < s.num_timesteps(); ++i)
    std::printf("%" PRId64 ",%.17g,%.17g,%.17g,%.17g\n", i, beta[i], ab[i], lsnr[i], pv[i]);
  // `ddpm-schedule > /dev/full` or a closed pipe must not report success.
  if (std::fflush(stdout) != 0 || std::ferror(stdout))
    throw std::runtime_error(std::string("cannot write the table to standard output: ") + std::strerror(errno));
}

// The image at K evenly spaced t in [0, T−1], side by side. All frames share one noise draw ε
// (seeded), so the strip shows x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε with the same ε fading in.
void write_strip(const NoiseSchedule& s, const StripOptions& o) {
  if (o.out.empty()) throw std::invalid_argument("--out is required with --strip");
  const int64_t T = s.num_timesteps();
  if (o.frames < 1 || o.frames > T)
    throw std::invalid_argument("--frames must be in [1, timesteps = " + std::to_string(T) + "] (got " +
                                std::to_string(o.frames) + ")");
  if (o.size < 0) throw std::invalid_argument("--size must be >= 0 (got " + std::to_string(o.size) + ")");
  if (!std::filesystem::is_regular_file(o.image))
    throw std::invalid_argument("--strip: no such image file '" + o.image + "'");

  Image img;
  try {  // an undecodable file is bad input (exit 2), as for ddpm-sample --init
    img = load_image(o.image);
    if (img.channels == 4) img = load_image(o.image, 3);  // noise the colour, not the alpha
  } catch (const std::exception& e) {
    bad_input("--strip", first_line(e.what()));
  }
  // The strip is K float copies of the image (and a few temporaries): bounded before any of it.
  const int64_t h = o.size > 0 ? o.size : img.height, w = o.size > 0 ? o.size : img.width;
  if (o.frames * h * w > limits::kMaxStripPixels)
    throw std::invalid_argument("--strip '" + o.image + "': " + std::to_string(o.frames) + " frames of " +
                                std::to_string(w) + "x" + std::to_string(h) + " pixels are more than the " +
                                std::to_string(limits::kMaxStripPixels) + " a strip may hold (use --size)");
  if (o.size > 0) img = resize_center_crop(img, o.size, o.size);

  const at::Tensor x0 = tensor_from_image(img).to(at::kFloat).div(127.5).sub(1.0).unsqueeze(0);  // [1,C,H,W] in [−1, 1]
  const int64_t K = o.frames;
  std::vector<int64_t> ts(K);
  // t_k = round(k (T−1) / (K−1)): 0 and T−1 included.
  for (int64_t k = 0; k < K; ++k) ts[k] = K == 1 ? 0 : (2 * k * (T - 1) + (K - 1)) / (2 * (K - 1));
  const at::Tensor t = at::tensor(ts, at::kLong);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const at::Tensor noise = at::randn(x0.sizes(), gen, at::kFloat).expand({K, -1, -1, -1});
  const at::Tensor xt = q_sample(s, x0.expand({K, -1, -1, -1}), t, noise);
  save_png(o.out, make_grid(xt, K));
  std::string list;
  for (int64_t v : ts) list += (list.empty() ? "" : ",") + std::to_string(v);
  spdlog::info("wrote {} ({} frames at t = {})", o.out, K, list);
}

}  // namespace

int schedule_main(int argc, char** argv) {
  CLI::App app{"Print a noise schedule as CSV (t,beta,alpha_bar,logsnr,posterior_variance), "
               "or write the forward-noising strip of an image with --strip IMAGE --out PNG.",
               "ddpm-schedule"};
  RuntimeOptions runtime;
  ScheduleConfig config;
  StripOptions strip;
  add_runtime_options(app, runtime);
  // A training config can be given as is: its schedule is used, the other keys are not.
  add_config_file_option(
      app, [&config](const Config& c) { config = c.schedule; },
      "TOML config file (keys = long option names, e.g. beta-start = 1e-4)");
  add_schedule_options(app, config);
  auto* strip_opt = app.add_option("--strip", strip.image, "image to noise: write its forward-noising strip")
                        ->group("Strip");
  app.add_option("--out", strip.out, "PNG to write the strip to")->group("Strip")->needs(strip_opt);
  app.add_option("--frames", strip.frames, "number of frames K (t evenly spaced in [0, T-1])")
      ->capture_default_str()
      ->group("Strip");
  app.add_option("--size", strip.size, "resize and centre-crop the image to SIZE x SIZE first (0 = keep)")
      ->capture_default_str()
      ->group("Strip");
  app.add_option("--seed", strip.seed, "seed of the noise")->capture_default_str()->group("Strip");

  return run_app(app, argc, argv, [&] {
    apply_runtime(runtime);
    const NoiseSchedule schedule(config);  // validates: bad values throw std::invalid_argument → exit 2
    if (strip.image.empty()) {
      print_csv(schedule);
    } else {
      write_strip(schedule, strip);
    }
    return 0;
  });
}

}  // namespace ddpm::cli
