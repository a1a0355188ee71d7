#include "ddpm/eval/image_set.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <sstream>
#include <vector>

#include "ddpm/data/dataset.hpp"
#include "ddpm/eval/evaluator.hpp"
#include "ddpm/data/image.hpp"
#include "ddpm/samplers/steering.hpp"
#include "ddpm/util/errors.hpp"

namespace ddpm::eval {
namespace {

std::string dims(int64_t c, int64_t h, int64_t w) {
  return std::to_string(c) + "×" + std::to_string(h) + "×" + std::to_string(w);
}

// Images held in memory (IDX files, cut grids, tensors).
class TensorSet : public ImageSet {
 public:
  TensorSet(at::Tensor images, std::string name) : images_(std::move(images)), name_(std::move(name)) {}
  int64_t size() const override { return images_.size(0); }
  int64_t channels() const override { return images_.size(1); }
  int64_t height() const override { return images_.size(2); }
  int64_t width() const override { return images_.size(3); }
  at::Tensor batch(int64_t start, int64_t count) override { return images_.narrow(0, start, count); }
  std::string describe() const override {
    return name_ + ": " + std::to_string(size()) + " images, " + dims(channels(), height(), width());
  }

 private:
  at::Tensor images_;
  std::string name_;
};

// A folder through the data module's Dataset (decoded once, cached).
class DatasetSet : public ImageSet {
 public:
  DatasetSet(std::shared_ptr<Dataset> d, int64_t limit) : data_(std::move(d)) {
    n_ = limit > 0 ? std::min(limit, data_->size()) : data_->size();
  }
  int64_t size() const override { return n_; }
  int64_t channels() const override { return data_->channels(); }
  int64_t height() const override { return data_->height(); }
  int64_t width() const override { return data_->width(); }
  at::Tensor batch(int64_t start, int64_t count) override {
    std::vector<at::Tensor> items;
    for (int64_t i = start; i < start + count; ++i) items.push_back(data_->get(i));
    return at::stack(items);
  }
  std::string describe() const override {
    return data_->describe() + (n_ < data_->size() ? " (first " + std::to_string(n_) + ")" : "");
  }

 private:
  std::shared_ptr<Dataset> data_;
  int64_t n_;
};

at::Tensor convert_channels(at::Tensor images, int64_t channels, const std::string& what) {
  const int64_t c = images.size(1);
  if (channels == 0 || channels == c) return images;
  if (channels == 3 && c == 1) return images.repeat({1, 3, 1, 1});
  if (channels == 1 && (c == 3 || c == 4)) {
    // stb_image's gray: (77 R + 150 G + 29 B) >> 8, as the folder reader converts.
    at::Tensor x = images.to(at::kInt);
    return ((x.select(1, 0) * 77 + x.select(1, 1) * 150 + x.select(1, 2) * 29) / 256).unsqueeze(1).to(at::kByte);
  }
  if (channels == 3 && c == 4) return images.narrow(1, 0, 3).contiguous();
  bad_input(what, "cannot convert " + std::to_string(c) + " channels to " + std::to_string(channels));
}

at::Tensor cut_grid(const std::string& path, const GridLayout& g, int64_t channels) {
  const std::string what = "grid '" + path + "'";
  if (g.cols < 1 || g.rows < 0 || g.padding < 0 || g.count < 0) bad_input(what, "bad --grid-cols/rows/padding/count");
  Image image;
  try {
    image = load_image(path, static_cast<int>(channels));
  } catch (const std::exception& e) {
    bad_input(what, first_line(e.what()));
  }
  const int64_t gw = image.width, gh = image.height, p = g.padding;
  // torchvision's layout: width = cols · (w + p) + p, height = rows · (h + p) + p.
  if ((gw - p) % g.cols != 0 || (gw - p) / g.cols - p < 1)
    bad_input(what, std::to_string(gw) + " pixels wide does not fit " + std::to_string(g.cols) +
                        " columns with padding " + std::to_string(p));
  const int64_t w = (gw - p) / g.cols - p;
  int64_t rows = g.rows, h = w;
  if (rows > 0) {
    if ((gh - p) % rows != 0 || (gh - p) / rows - p < 1)
      bad_input(what, std::to_string(gh) + " pixels high does not fit " + std::to_string(rows) + " rows with padding " +
                          std::to_string(p));
    h = (gh - p) / rows - p;
  } else {
    if ((gh - p) % (h + p) != 0 || (gh - p) / (h + p) < 1)
      bad_input(what, std::to_string(gw) + "×" + std::to_string(gh) + " is not a grid of square " + std::to_string(w) +
                          "-pixel cells (give --grid-rows)");
    rows = (gh - p) / (h + p);
  }
  const int64_t count = g.count > 0 ? g.count : rows * g.cols;
  if (count > rows * g.cols)
    bad_input(what, "--grid-count " + std::to_string(count) + " exceeds its " + std::to_string(rows * g.cols) + " cells");
  at::Tensor full = tensor_from_image(image);  // [C, gh, gw]
  std::vector<at::Tensor> cells;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t y = k / g.cols, x = k % g.cols;
    cells.push_back(full.narrow(1, y * (h + p) + p, h).narrow(2, x * (w + p) + p, w));
  }
  return at::stack(cells).contiguous();
}

// Images drawn by a network (see sampled_image_set): `what` prefixes the description.
class SampledSet : public ImageSet {
 public:
  SampledSet(ConditionalDenoiser network, const NoiseSchedule& schedule, const UNetConfig& model,
             SamplerConfig sampler, int64_t n, Guidance guidance, std::function<void(int64_t, int64_t)> on_step,
             std::string what)
      : network_(std::move(network)), schedule_(schedule), model_(model), sampler_(sampler), n_(n),
        guidance_(guidance), on_step_(std::move(on_step)), what_(std::move(what)) {
    if (n < 1) bad_input("--n", "must be >= 1");
    guidance.validate();
    if (guidance.weight > 0.0 && !model_.conditional())
      bad_input("--guidance", "the checkpoint's model is unconditional (trained without labels)");
    sampler_.validate(schedule_);  // includes the schedule-dependent checks (e.g. zero terminal SNR)
  }
  int64_t size() const override { return n_; }
  int64_t channels() const override { return model_.image_channels; }
  int64_t height() const override { return model_.image_height; }
  int64_t width() const override { return model_.image_width; }
  at::Tensor batch(int64_t start, int64_t count) override {
    const int64_t C = channels();
    // A learned-variance model also outputs the variance interpolation: take the prediction.
    const ConditionalDenoiser network = [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& labels) {
      at::Tensor out = network_(x, t, labels);
      return out.size(1) == C ? out : out.narrow(1, 0, C);
    };
    const Denoiser denoiser = balanced_denoiser(network, model_.num_classes, start, count, guidance_, schedule_);
    ProgressFn progress = [&](int64_t step, int64_t total) {
      if (on_step_) on_step_(step, total);
      return true;
    };
    return to_uint8_images(sample(schedule_, denoiser, sampler_, count, C, height(), width(), start, progress));
  }
  std::string describe() const override {
    return what_ + std::to_string(n_) + " samples, " + to_string(sampler_.kind) + " " +
           std::to_string(sampler_.resolved_steps(schedule_.num_timesteps())) + " steps, seed " +
           std::to_string(sampler_.seed) + ", " + dims(channels(), height(), width()) + conditioning();
  }

 private:
  std::string conditioning() const {
    const int64_t K = model_.num_classes;
    if (K == 0) return "";
    std::ostringstream s;
    s << ", " << K << " classes equally";
    if (guidance_.weight > 0.0) s << ", " << guidance_.describe();
    return s.str();
  }

  ConditionalDenoiser network_;
  const NoiseSchedule& schedule_;
  UNetConfig model_;
  SamplerConfig sampler_;
  int64_t n_;
  Guidance guidance_;
  std::function<void(int64_t, int64_t)> on_step_;
  std::string what_;
};

}  // namespace

std::unique_ptr<ImageSet> open_image_set(const std::string& source, const GridLayout& grid, int64_t channels,
                                         int64_t limit) {
  if (source.empty()) bad_input("image set", "no source given");
  if (channels != 0 && channels != 1 && channels != 3 && channels != 4)
    bad_input("--channels", "must be 0, 1, 3 or 4");
  at::Tensor images;
  std::string name;
  if (source.rfind("grid:", 0) == 0) {
    images = cut_grid(source.substr(5), grid, channels);
    name = "grid '" + source.substr(5) + "'";
  } else if (source.rfind("idx:", 0) == 0) {
    images = convert_channels(read_idx_images(source.substr(4)), channels, source);
    name = "IDX '" + source.substr(4) + "'";
  } else {
    DataConfig config;
    config.source = source;
    config.channels = channels;
    config.workers = 1;
    return std::make_unique<DatasetSet>(open_dataset(config), limit);
  }
  if (limit > 0 && limit < images.size(0)) {
    images = images.narrow(0, 0, limit);
    name += " (first " + std::to_string(limit) + ")";
  }
  return std::make_unique<TensorSet>(images, name);
}

std::unique_ptr<ImageSet> tensor_image_set(const at::Tensor& images, std::string name) {
  if (images.dim() != 4 || images.scalar_type() != at::kByte || images.size(0) == 0)
    bad_input(name, "expected non-empty uint8 images [N, C, H, W]");
  return std::make_unique<TensorSet>(images, std::move(name));
}

std::unique_ptr<ImageSet> sampled_image_set(LoadedModel model, SamplerConfig sampler, int64_t n,
                                            std::function<void(int64_t, int64_t)> on_step, Guidance guidance) {
  // The network keeps the loaded model (and so the schedule the set refers to) alive.
  auto m = std::make_shared<LoadedModel>(std::move(model));
  sampler.prediction = m->config.train.prediction;
  const ConditionalDenoiser network = [m](const at::Tensor& x, const at::Tensor& t, const at::Tensor& labels) {
    c10::InferenceMode guard;
    const int64_t C = m->config.model.image_channels;
    at::Tensor out = m->model->forward(x, t, labels);
    return out.size(1) == C ? out : out.narrow(1, 0, C);
  };
  const std::string what = "checkpoint '" + m->path + "' (step " + std::to_string(m->step) + ", " +
                           (m->ema ? "EMA" : "raw") + " weights): ";
  return std::make_unique<SampledSet>(network, m->schedule, m->config.model, sampler, n, guidance, std::move(on_step),
                                      what);
}

std::unique_ptr<ImageSet> sampled_image_set(ConditionalDenoiser network, const NoiseSchedule& schedule,
                                            const UNetConfig& model, SamplerConfig sampler, int64_t n,
                                            Guidance guidance, std::function<void(int64_t, int64_t)> on_step) {
  return std::make_unique<SampledSet>(std::move(network), schedule, model, sampler, n, guidance, std::move(on_step),
                                      "");
}

at::Tensor to_uint8_images(const at::Tensor& images) {
  return at::nan_to_num(images.detach().to(at::kCPU, at::kFloat), 0.0, 1.0, -1.0)
      .add(1.0)
      .mul(127.5)
      .add(0.5)
      .clamp(0.0, 255.0)
      .floor()
      .to(at::kByte);
}

at::Tensor compute_features(FeatureNetwork& network, ImageSet& set, int64_t batch_size,
                            const std::function<void(int64_t, int64_t)>& progress) {
  if (set.size() < 1) bad_input(set.describe(), "no images");
  if (batch_size < 1) bad_input("--batch-size", "must be >= 1");
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < set.size(); start += batch_size) {
    const int64_t count = std::min(batch_size, set.size() - start);
    parts.push_back(network.features(set.batch(start, count)));
    if (progress) progress(start + count, set.size());
  }
  return at::cat(parts);
}

}  // namespace ddpm::eval
