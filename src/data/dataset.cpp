// Datasets: image folders, IDX files, in-memory tensors.
#include "ddpm/data/dataset.hpp"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "ddpm/data/image.hpp"

namespace fs = std::filesystem;

namespace ddpm {

void DataConfig::validate() const {
  if (class_folders && !labels.empty())
    throw std::invalid_argument("--labels and --class-folders: give one source of class labels, not both");
  if (class_folders && (source.rfind("idx:", 0) == 0))
    throw std::invalid_argument("--class-folders: needs an image folder as --data, not an IDX file");
  if (source.empty()) throw std::invalid_argument("--data: required (a folder of images or idx:PATH)");
  if (source.rfind("idx:", 0) == 0 && source.size() == 4) throw std::invalid_argument("--data idx: needs a path");
  if (channels != 0 && channels != 1 && channels != 3 && channels != 4)
    throw std::invalid_argument("--channels: must be 1, 3 or 4 (or 0 = auto), got " + std::to_string(channels));
  if (height < 0 || width < 0 || (height == 0) != (width == 0))
    throw std::invalid_argument("--image-size: height and width must both be positive (or both 0 = native), got " +
                                std::to_string(height) + "x" + std::to_string(width));
  if (workers < 0 || workers > kMaxWorkers)
    throw std::invalid_argument("--workers: must be in [0, " + std::to_string(kMaxWorkers) + "], got " +
                                std::to_string(workers));
  if (prefetch < 1) throw std::invalid_argument("--prefetch: must be >= 1, got " + std::to_string(prefetch));
}

namespace {

std::string shape_text(int64_t c, int64_t h, int64_t w) {
  return std::to_string(c) + "×" + std::to_string(h) + "×" + std::to_string(w);
}

void check_index(int64_t index, int64_t size) {
  if (index < 0 || index >= size)
    throw std::out_of_range("dataset index " + std::to_string(index) + " out of range [0, " + std::to_string(size) +
                            ")");
}

// Runs fn(i) for i in [0, n) on `threads` threads (the calling thread when 1).
template <class F>
void parallel_for(int64_t n, int64_t threads, F&& fn) {
  threads = std::max<int64_t>(1, std::min(threads, n));
  if (threads == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::vector<std::thread> pool;
  try {
    for (int64_t t = 0; t < threads; ++t)
      pool.emplace_back([&] {
        for (int64_t i; (i = next++) < n;) fn(i);
      });
  } catch (const std::system_error& e) {
    // Out of threads (ulimit, memory): the started ones must be joined before unwinding.
    next = n;
    for (auto& th : pool) th.join();
    throw std::runtime_error("--workers: cannot start thread " + std::to_string(pool.size() + 1) + " of " +
                             std::to_string(threads) + " (" + e.what() + "); use fewer --workers");
  }
  for (auto& th : pool) th.join();
}

// 1 → 3 or 4 channels (replicate, opaque alpha), as stb_image converts gray.
Image gray_to(const Image& gray, int channels) {
  if (channels == 1) return gray;
  Image out;
  out.width = gray.width;
  out.height = gray.height;
  out.channels = channels;
  out.pixels.resize(gray.pixels.size() * channels);
  for (size_t i = 0; i < gray.pixels.size(); ++i) {
    for (int k = 0; k < 3; ++k) out.pixels[i * channels + k] = gray.pixels[i];
    if (channels == 4) out.pixels[i * 4 + 3] = 255;
  }
  return out;
}

// Images already decoded and shaped, [N,C,H,W] uint8.
class MemoryDataset : public Dataset {
 public:
  MemoryDataset(at::Tensor images, std::string description, std::vector<std::string> skipped = {})
      : images_(std::move(images)), description_(std::move(description)), skipped_(std::move(skipped)) {}
  int64_t size() const override { return images_.size(0); }
  int64_t channels() const override { return images_.size(1); }
  int64_t height() const override { return images_.size(2); }
  int64_t width() const override { return images_.size(3); }
  at::Tensor get(int64_t index) const override {
    check_index(index, size());
    return images_[index].clone();
  }
  std::string describe() const override { return description_; }
  std::vector<std::string> skipped() const override { return skipped_; }

 private:
  at::Tensor images_;
  std::string description_;
  std::vector<std::string> skipped_;
};

// An image folder without a cache: decodes, converts and resizes on every get().
class FolderDataset : public Dataset {
 public:
  FolderDataset(std::vector<std::string> files, int c, int h, int w, std::string description,
                std::vector<std::string> skipped)
      : files_(std::move(files)), c_(c), h_(h), w_(w), description_(std::move(description)),
        skipped_(std::move(skipped)) {}
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t channels() const override { return c_; }
  int64_t height() const override { return h_; }
  int64_t width() const override { return w_; }
  at::Tensor get(int64_t index) const override {
    check_index(index, size());
    return tensor_from_image(resize_center_crop(load_image(files_[index], c_), h_, w_));
  }
  std::string describe() const override { return description_; }
  std::vector<std::string> skipped() const override { return skipped_; }

 private:
  std::vector<std::string> files_;
  int c_, h_, w_;
  std::string description_;
  std::vector<std::string> skipped_;
};

// IDX images [N,1,rows,cols] held raw; converted/resized on every get().
class IdxDataset : public Dataset {
 public:
  IdxDataset(at::Tensor raw, int c, int h, int w, std::string description)
      : raw_(std::move(raw)), c_(c), h_(h), w_(w), description_(std::move(description)) {}
  int64_t size() const override { return raw_.size(0); }
  int64_t channels() const override { return c_; }
  int64_t height() const override { return h_; }
  int64_t width() const override { return w_; }
  at::Tensor get(int64_t index) const override {
    check_index(index, size());
    return tensor_from_image(shape(raw_, index, c_, h_, w_));
  }
  std::string describe() const override { return description_; }

  static Image shape(const at::Tensor& raw, int64_t index, int c, int h, int w) {
    Image gray;
    gray.height = static_cast<int>(raw.size(2));
    gray.width = static_cast<int>(raw.size(3));
    gray.channels = 1;
    const uint8_t* p = raw[index].data_ptr<uint8_t>();
    gray.pixels.assign(p, p + gray.height * gray.width);
    return gray_to(resize_center_crop(gray, h, w), c);
  }

 private:
  at::Tensor raw_;
  int c_, h_, w_;
  std::string description_;
};

bool is_image_file(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".tga" || ext == ".gif";
}

std::shared_ptr<Dataset> open_folder(const DataConfig& config, const std::string& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw std::invalid_argument("--data '" + folder + "': no such folder");
  std::vector<std::string> files;
  int64_t dangling = 0;
  for (fs::recursive_directory_iterator it(folder, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    std::error_code file_ec;
    if (it->is_regular_file(file_ec) && is_image_file(it->path())) {
      files.push_back(it->path().string());
    } else if (it->is_symlink(file_ec) && !fs::exists(it->path(), file_ec)) {
      ++dangling;  // a link to nothing: say so, the user may expect those images
      if (dangling <= 3) spdlog::warn("--data '{}': skipping {}: a dangling symbolic link", folder, it->path().string());
    }
  }
  if (dangling > 3) spdlog::warn("--data '{}': {} dangling symbolic links skipped in all", folder, dangling);
  if (ec) throw std::invalid_argument("--data '" + folder + "': cannot list the folder: " + ec.message());
  if (files.empty())
    throw std::invalid_argument("--data '" + folder + "': no image files (PNG, JPEG, BMP, TGA, GIF) in the folder");
  std::sort(files.begin(), files.end());  // a fixed order, so that seeds mean the same thing everywhere

  const auto n = static_cast<int64_t>(files.size());
  std::vector<std::optional<std::string>> errors(files.size());
  // The first readable image fixes channels (unless forced) and the size (unless given).
  int64_t first = 0;
  int c = 0, h = 0, w = 0;
  std::vector<Image> decoded(files.size());
  for (; first < n; ++first) {
    try {
      Image im = load_image(files[first], static_cast<int>(config.channels));
      c = im.channels;
      h = config.height > 0 ? static_cast<int>(config.height) : im.height;
      w = config.width > 0 ? static_cast<int>(config.width) : im.width;
      decoded[first] = resize_center_crop(im, h, w);
      break;
    } catch (const std::exception& e) {
      errors[first] = e.what();
    }
  }
  // Decode every other file once: unreadable ones are found now, not mid-training.
  parallel_for(n - first - 1, std::max<int64_t>(1, config.workers), [&](int64_t k) {
    const int64_t i = first + 1 + k;
    try {
      decoded[i] = resize_center_crop(load_image(files[i], c), h, w);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  });

  std::vector<std::string> good, skipped;
  for (int64_t i = 0; i < n; ++i) {
    if (errors[i]) {
      spdlog::warn("skipping unreadable image: {}", *errors[i]);
      skipped.push_back(files[i]);
    } else {
      good.push_back(files[i]);
    }
  }
  if (good.empty())
    throw std::invalid_argument("--data '" + folder + "': none of the " + std::to_string(n) +
                                " image files could be read");
  if (!skipped.empty())
    spdlog::warn("skipped {} unreadable file(s) of {} in '{}'", skipped.size(), files.size(), folder);
  const auto count = static_cast<int64_t>(good.size());
  // Labels before the images are copied: a bad class layout fails fast.
  std::pair<at::Tensor, std::vector<std::string>> classes;
  if (config.class_folders) classes = class_folder_labels(folder, good);
  auto labelled = [&](std::shared_ptr<Dataset> d) {
    if (config.class_folders)
      d->set_labels(classes.first, static_cast<int64_t>(classes.second.size()), classes.second,
                    "--class-folders '" + folder + "'");
    return d;
  };
  std::string description = "image folder '" + folder + "': " + std::to_string(count) + " images, " +
                            shape_text(c, h, w) + (skipped.empty() ? "" : ", " + std::to_string(skipped.size()) +
                                                                               " skipped");
  if (!config.cache) return labelled(std::make_shared<FolderDataset>(good, c, h, w, description, skipped));

  at::Tensor images = at::empty({count, c, h, w}, at::TensorOptions().dtype(at::kByte));
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (errors[i]) continue;
    images[k++].copy_(tensor_from_image(decoded[i]));
    decoded[i] = Image{};  // free as we go
  }
  return labelled(std::make_shared<MemoryDataset>(images, description, skipped));
}

std::shared_ptr<Dataset> open_idx(const DataConfig& config, std::string path) {
  std::error_code ec;
  if (!fs::exists(path, ec) && fs::exists(path + ".gz", ec)) path += ".gz";
  if (!fs::is_regular_file(path, ec)) throw std::invalid_argument("--data idx:" + path + ": no such file");
  at::Tensor raw = read_idx_images(path);
  const int c = config.channels > 0 ? static_cast<int>(config.channels) : 1;
  const int h = config.height > 0 ? static_cast<int>(config.height) : static_cast<int>(raw.size(2));
  const int w = config.width > 0 ? static_cast<int>(config.width) : static_cast<int>(raw.size(3));
  const int64_t n = raw.size(0);
  const std::string description =
      "IDX file '" + path + "': " + std::to_string(n) + " images, " + shape_text(c, h, w) +
      (c == 1 && h == raw.size(2) && w == raw.size(3) ? "" : " (from 1×" + std::to_string(raw.size(2)) + "×" +
                                                                 std::to_string(raw.size(3)) + ")");
  if (c == 1 && h == raw.size(2) && w == raw.size(3)) return std::make_shared<MemoryDataset>(raw, description);
  if (!config.cache) return std::make_shared<IdxDataset>(raw, c, h, w, description);
  at::Tensor images = at::empty({n, c, h, w}, at::TensorOptions().dtype(at::kByte));
  parallel_for(n, std::max<int64_t>(1, config.workers), [&](int64_t i) {
    const Image im = IdxDataset::shape(raw, i, c, h, w);
    std::memcpy(images[i].data_ptr<uint8_t>(), tensor_from_image(im).data_ptr<uint8_t>(), im.pixels.size());
  });
  return std::make_shared<MemoryDataset>(images, description);
}

}  // namespace

std::shared_ptr<Dataset> open_dataset(const DataConfig& config) {
  config.validate();
  std::shared_ptr<Dataset> dataset;
  if (config.source.rfind("idx:", 0) == 0) {
    dataset = open_idx(config, config.source.substr(4));
  } else {
    std::error_code ec;
    if (fs::is_regular_file(config.source, ec) && is_image_file(config.source))
      throw std::invalid_argument("--data '" + config.source +
                                  "': a single image is not a dataset; pass the folder that holds the images");
    dataset = fs::is_regular_file(config.source, ec) ? open_idx(config, config.source)
                                                     : open_folder(config, config.source);
  }
  if (!config.labels.empty()) attach_idx_labels(*dataset, config.labels);
  spdlog::info("data: {}{}", dataset->describe(),
               dataset->labels().defined() ? ", " + std::to_string(dataset->num_classes()) + " classes" : "");
  return dataset;
}

std::shared_ptr<Dataset> make_tensor_dataset(const at::Tensor& images, std::string name) {
  if (!images.defined() || images.dim() != 4 || images.scalar_type() != at::kByte || images.size(0) == 0)
    throw std::invalid_argument("make_tensor_dataset: expected a non-empty uint8 tensor [N,C,H,W]");
  const int64_t c = images.size(1);
  if (c != 1 && c != 3 && c != 4)
    throw std::invalid_argument("make_tensor_dataset: channels must be 1, 3 or 4, got " + std::to_string(c));
  at::Tensor owned = images.to(at::kCPU).contiguous();
  std::string description = name + ": " + std::to_string(images.size(0)) + " images, " +
                            shape_text(c, images.size(2), images.size(3));
  return std::make_shared<MemoryDataset>(owned, description);
}

}  // namespace ddpm
