// ddpm-sample's steering options (sample_guide.hpp): reading the images, checking them against
// the checkpoint, and handing each batch its labels and Steering.
#include "tools/sample_guide.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "ddpm/data/image.hpp"
#include "ddpm/util/errors.hpp"

namespace fs = std::filesystem;

namespace ddpm::cli {
namespace {

bool is_image(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".tga" || e == ".gif";
}

Image load(const char* option, const std::string& path, int channels) {
  try {
    return load_image(path, channels);
  } catch (const std::exception& e) {
    bad_input(option, first_line(e.what()));
  }
}

// An image file or a folder of them (sorted), as loaded Images.
std::vector<Image> load_images(const char* option, const std::string& path, int channels) {
  std::error_code ec;
  std::vector<std::string> files;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_regular_file(ec) && is_image(e.path())) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    if (files.empty()) bad_input(option, "'" + path + "' holds no image files");
    if (files.size() > 4096) bad_input(option, "'" + path + "' holds more than 4096 images");
  } else {
    if (!fs::is_regular_file(path, ec)) bad_input(option, "'" + path + "': no such file or folder");
    files.push_back(path);
  }
  std::vector<Image> out;
  for (const auto& f : files) out.push_back(load(option, f, channels));
  return out;
}

at::Tensor to_float(const std::vector<Image>& images) {
  std::vector<at::Tensor> t;
  for (const auto& im : images) t.push_back(tensor_from_image(im).to(at::kFloat) / 127.5 - 1.0);
  return at::stack(t, 0);
}

std::string size_text(const Image& im) { return std::to_string(im.width) + "x" + std::to_string(im.height); }

at::Tensor rows(const at::Tensor& images, int64_t first, int64_t count) {
  return images.index_select(0, at::arange(first, first + count, at::kLong) % images.size(0));
}

}  // namespace

CLI::Option* add_guidance_interval_option(CLI::App& app, std::vector<double>& interval) {
  return app
      .add_option("--guidance-interval", interval,
                  "Guide only where the noise level sigma = sqrt((1 - alpha_bar)/alpha_bar) is in (LOW, HIGH], e.g. "
                  "0.28,5.42 (Kynkaanniemi et al. 2024); elsewhere plain conditional")
      ->delimiter(',')
      ->expected(2);
}

void set_guidance_interval(Guidance& g, const std::vector<double>& interval) {
  if (interval.empty()) return;
  if (interval.size() != 2) bad_input("--guidance-interval", "expected LOW,HIGH with 0 <= LOW < HIGH");
  g.sigma_low = interval[0];
  g.sigma_high = interval[1];
  g.validate();
}

void add_guide_options(CLI::App& app, GuideOptions& o) {
  const char* g = "Guidance and editing";
  app.add_option("--class", o.cls, "Class-conditional checkpoints: a class name or id, or 'all' (one grid row per class)")
      ->check([](const std::string& v) { return v.empty() ? std::string("expected a class name or id, got ''") : ""; })
      ->group(g);
  app.add_option("--guidance", o.guidance,
                 "Classifier-free guidance weight w >= 0: (1+w) eps(x, class) - w eps(x) (0 = plain conditional)")
      ->group(g);
  add_guidance_interval_option(app, o.guidance_interval)->group(g);
  app.add_option("--init", o.init, "SDEdit / inpainting: start from this image, or the images of this folder (in turn)")
      ->group(g);
  app.add_option("--strength", o.strength,
                 "SDEdit: how much of the diffusion to redo, in [0, 1] (0 = the init, 1 = a new sample); default 0.5")
      ->group(g);
  app.add_option("--mask", o.mask,
                 "Inpainting (RePaint) of --init: a mask image of the init's size, white (>= 128) = keep, black = fill in")
      ->group(g);
  app.add_option("--jump-length", o.jump_length, "RePaint: steps per jump back in time")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{100000}))->group(g);
  app.add_option("--resample", o.resample, "RePaint: times each stretch is sampled (1 = no time travel)")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1000}))->group(g);
  app.add_option("--upscale", o.upscale,
                 "Super-resolution (ILVR): a low-resolution image or folder; the factor is the model's size / its size")
      ->group(g);
}

Guide::Guide(const GuideOptions& o, const UNetConfig& model, int64_t& n, int64_t& nrow) {
  const int C = static_cast<int>(model.image_channels);
  const int64_t H = model.image_height, W = model.image_width;
  // --- classes
  if (!o.guidance_interval.empty() && !o.guidance) bad_input("--guidance-interval", "needs --guidance");
  if (!o.cls.empty() || o.guidance) {
    if (!model.conditional())
      bad_input(o.cls.empty() ? "--guidance" : "--class",
                "the checkpoint's model is unconditional (trained without labels); no class to ask for");
    if (o.cls.empty()) bad_input("--guidance", "needs --class");
  }
  if (!o.cls.empty()) {
    const int64_t K = model.num_classes;
    auto id_of = [&](const std::string& s) -> int64_t {
      for (size_t i = 0; i < model.class_names.size(); ++i)
        if (model.class_names[i] == s) return static_cast<int64_t>(i);
      if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }) && s.size() < 10) {
        const int64_t v = std::stoll(s);
        if (v < K) return v;
        bad_input("--class", "id " + s + " is out of range: the checkpoint has " + std::to_string(K) + " classes");
      }
      std::string known;
      for (size_t i = 0; i < model.class_names.size() && i < 20; ++i) known += (i ? ", " : "") + model.class_names[i];
      bad_input("--class", "'" + s + "' is not a class of the checkpoint (" +
                               (known.empty() ? "ids 0.." + std::to_string(K - 1) : "classes: " + known) + ")");
    };
    if (o.cls == "all") {
      n = nrow * K;
      for (int64_t j = 0; j < n; ++j) labels_.push_back(j / nrow);
      what_ = "every class (" + std::to_string(K) + " rows of " + std::to_string(nrow) + ")";
    } else {
      labels_.assign(static_cast<size_t>(n), id_of(o.cls));
      what_ = "class " + o.cls;
    }
    guidance_.weight = o.guidance.value_or(0.0);
    set_guidance_interval(guidance_, o.guidance_interval);
    guidance_.validate();
    if (o.guidance) what_ += ", " + guidance_.describe();
  }
  // --- images
  if (o.strength && !(*o.strength >= 0.0 && *o.strength <= 1.0))
    bad_input("--strength", "must be in [0, 1], got " + std::to_string(*o.strength));
  if (!o.upscale.empty() && !o.init.empty()) bad_input("--upscale", "not together with --init");
  if (!o.mask.empty() && o.init.empty()) bad_input("--mask", "needs --init (the image to fill in)");
  if (o.strength && o.init.empty()) bad_input("--strength", "needs --init");
  if (o.strength && !o.mask.empty()) bad_input("--strength", "not with --mask (inpainting starts from noise)");
  if (!o.init.empty()) {
    const std::vector<Image> images = load_images("--init", o.init, C);
    for (const auto& im : images)
      if (im.height != H || im.width != W)
        bad_input("--init", "image is " + size_text(im) + " but the model makes " + std::to_string(W) + "x" +
                                std::to_string(H) + " images");
    init_ = to_float(images);
    if (!o.mask.empty()) {
      const Image m = load("--mask", o.mask, 1);
      if (m.height != H || m.width != W)
        bad_input("--mask", "is " + size_text(m) + " but --init is " + size_text(images.front()));
      keep_ = (tensor_from_image(m) >= 128).reshape({1, 1, H, W});
      jump_length_ = o.jump_length;
      resample_ = o.resample;
      what_ += std::string(what_.empty() ? "" : ", ") + "inpainting (RePaint, jump length " +
               std::to_string(jump_length_) + ", resample " + std::to_string(resample_) + ")";
    } else {
      strength_ = o.strength.value_or(0.5);
      what_ += std::string(what_.empty() ? "" : ", ") + "SDEdit at strength " + std::to_string(strength_);
    }
  }
  if (!o.upscale.empty()) {
    const std::vector<Image> images = load_images("--upscale", o.upscale, C);
    const Image& a = images.front();
    for (const auto& im : images)
      if (im.height != a.height || im.width != a.width) bad_input("--upscale", "images of different sizes");
    if (a.height > H || H % a.height != 0 || W % a.width != 0 || H / a.height != W / a.width)
      bad_input("--upscale", "image is " + size_text(a) + "; the model's " + std::to_string(W) + "x" +
                                 std::to_string(H) + " must be the same whole multiple of both sides");
    factor_ = H / a.height;
    lowres_ = to_float(images);
    what_ += std::string(what_.empty() ? "" : ", ") + "super-resolution x" + std::to_string(factor_) + " (ILVR)";
  }
}

Denoiser Guide::denoiser(const ConditionalDenoiser& model, const NoiseSchedule& schedule, int64_t first,
                         int64_t count) const {
  if (labels_.empty()) return with_labels(model, at::full({count}, kNoClass, at::kLong));
  const at::Tensor labels =
      at::tensor(std::vector<int64_t>(labels_.begin() + first, labels_.begin() + first + count), at::kLong);
  return guided(model, labels, guidance_, schedule);
}

Steering Guide::steering(const NoiseSchedule& schedule, int64_t first, int64_t count) const {
  if (keep_.defined()) return repaint(schedule, rows(init_, first, count), keep_, jump_length_, resample_);
  if (init_.defined()) return sdedit(rows(init_, first, count), strength_);
  if (lowres_.defined()) return ilvr(schedule, rows(lowres_, first, count), factor_);
  return {};
}

std::string Guide::describe() const { return what_; }

}  // namespace ddpm::cli
