#include "ddpm/image.hpp"

#include <ATen/ATen.h>
// Implementations live in libstb.so (Debian's stb package): headers only here.
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>

namespace ddpm {
namespace {

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open image file '" + path + "'");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error("cannot read image file '" + path + "'");
  return bytes;
}

// stb_image decodes a JPEG cut short without complaint (it pads the entropy-coded
// data with zeros), so a truncated JPEG is detected here: the end-of-image marker
// FF D9 must follow the last start-of-scan FF DA. (Inside entropy-coded data a 0xFF
// byte is always stuffed as FF 00, so markers cannot appear there by accident.)
bool jpeg_is_complete(const std::vector<uint8_t>& b) {
  if (b.size() < 4 || b[0] != 0xFF || b[1] != 0xD8) return true;  // not a JPEG
  size_t last_sos = 0;
  bool eoi_after_sos = false;
  for (size_t i = 2; i + 1 < b.size(); ++i) {
    if (b[i] != 0xFF) continue;
    if (b[i + 1] == 0xDA) {
      last_sos = i;
      eoi_after_sos = false;
    } else if (b[i + 1] == 0xD9 && last_sos != 0) {
      eoi_after_sos = true;
    }
  }
  return last_sos != 0 && eoi_after_sos;
}

void check_channels(int channels, const char* what) {
  if (channels != 1 && channels != 3 && channels != 4)
    throw std::invalid_argument(std::string(what) + ": channels must be 1, 3 or 4, got " + std::to_string(channels));
}

}  // namespace

Image load_image(const std::string& path, int channels) {
  if (channels != 0) check_channels(channels, ("load_image '" + path + "'").c_str());
  const std::vector<uint8_t> bytes = read_file(path);
  if (bytes.empty()) throw std::runtime_error("image file '" + path + "' is empty");
  if (!jpeg_is_complete(bytes)) throw std::runtime_error("image file '" + path + "' is a truncated JPEG");

  int w = 0, h = 0, file_channels = 0;
  if (!stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &file_channels))
    throw std::runtime_error("cannot decode image file '" + path + "': " + stbi_failure_reason());
  // Gray+alpha has no place among 1/3/4 channels: keep the alpha, as RGBA.
  const int want = channels != 0 ? channels : (file_channels == 2 ? 4 : file_channels);
  // For a GIF, stbi_load_from_memory returns the first frame.
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &file_channels, want),
      stbi_image_free);
  if (!data) throw std::runtime_error("cannot decode image file '" + path + "': " + stbi_failure_reason());
  Image image;
  image.width = w;
  image.height = h;
  image.channels = want;
  image.pixels.assign(data.get(), data.get() + static_cast<size_t>(w) * h * want);
  return image;
}

Image resize_center_crop(const Image& image, int height, int width) {
  if (height <= 0 || width <= 0)
    throw std::invalid_argument("resize_center_crop: size must be positive, got " + std::to_string(height) + "x" +
                                std::to_string(width));
  if (image.width <= 0 || image.height <= 0) throw std::invalid_argument("resize_center_crop: empty image");
  check_channels(image.channels, "resize_center_crop");
  // Scale so that the image covers height × width (the shorter side, relative to
  // the target's aspect, fits exactly), then cut the centre.
  const double scale = std::max(static_cast<double>(height) / image.height, static_cast<double>(width) / image.width);
  const int sh = std::max(height, static_cast<int>(std::lround(image.height * scale)));
  const int sw = std::max(width, static_cast<int>(std::lround(image.width * scale)));
  const int c = image.channels;

  Image scaled;
  if (sh == image.height && sw == image.width) {
    scaled = image;
  } else {
    scaled.width = sw;
    scaled.height = sh;
    scaled.channels = c;
    scaled.pixels.resize(static_cast<size_t>(sw) * sh * c);
    if (!stbir_resize_uint8(image.pixels.data(), image.width, image.height, 0, scaled.pixels.data(), sw, sh, 0, c))
      throw std::runtime_error("resize_center_crop: stbir_resize_uint8 failed");
  }
  if (sh == height && sw == width) return scaled;

  Image out;
  out.width = width;
  out.height = height;
  out.channels = c;
  out.pixels.resize(static_cast<size_t>(width) * height * c);
  const int top = (sh - height) / 2, left = (sw - width) / 2;
  for (int y = 0; y < height; ++y)
    std::memcpy(&out.pixels[static_cast<size_t>(y) * width * c],
                &scaled.pixels[(static_cast<size_t>(top + y) * sw + left) * c], static_cast<size_t>(width) * c);
  return out;
}

void save_png(const std::string& path, const Image& image) {
  check_channels(image.channels, ("save_png '" + path + "'").c_str());
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height * image.channels)
    throw std::invalid_argument("save_png '" + path + "': pixel buffer does not match " +
                                std::to_string(image.width) + "x" + std::to_string(image.height) + "x" +
                                std::to_string(image.channels));
  if (!stbi_write_png(path.c_str(), image.width, image.height, image.channels, image.pixels.data(),
                      image.width * image.channels))
    throw std::runtime_error("cannot write PNG file '" + path + "'");
}

Image image_from_tensor(const at::Tensor& chw_uint8) {
  if (!chw_uint8.defined() || chw_uint8.dim() != 3 || chw_uint8.scalar_type() != at::kByte)
    throw std::invalid_argument("image_from_tensor: expected a uint8 tensor [C,H,W]");
  const auto c = chw_uint8.size(0);
  check_channels(static_cast<int>(c), "image_from_tensor");
  at::Tensor hwc = chw_uint8.to(at::kCPU).permute({1, 2, 0}).contiguous();
  Image image;
  image.channels = static_cast<int>(c);
  image.height = static_cast<int>(hwc.size(0));
  image.width = static_cast<int>(hwc.size(1));
  image.pixels.assign(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel());
  return image;
}

at::Tensor tensor_from_image(const Image& image) {
  if (image.pixels.size() != static_cast<size_t>(image.width) * image.height * image.channels ||
      image.pixels.empty())
    throw std::invalid_argument("tensor_from_image: pixel buffer does not match the image size");
  at::Tensor hwc = at::empty({image.height, image.width, image.channels}, at::TensorOptions().dtype(at::kByte));
  std::memcpy(hwc.data_ptr<uint8_t>(), image.pixels.data(), image.pixels.size());
  return hwc.permute({2, 0, 1}).contiguous();
}

Image make_grid(const at::Tensor& images, int64_t nrow, int64_t padding) {
  if (!images.defined() || images.dim() != 4 || images.size(0) == 0)
    throw std::invalid_argument("make_grid: expected a non-empty tensor [N,C,H,W]");
  if (nrow < 1) throw std::invalid_argument("make_grid: nrow must be >= 1, got " + std::to_string(nrow));
  if (padding < 0) throw std::invalid_argument("make_grid: padding must be >= 0, got " + std::to_string(padding));
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  check_channels(static_cast<int>(c), "make_grid");
  if (n == 1) padding = 0;  // torchvision returns a single image as it is
  // [−1, 1] → [0, 255], rounded to nearest as torchvision's save_image (x·255 + 0.5, clamp).
  at::Tensor u8 = at::nan_to_num(images.detach().to(at::kCPU, at::kFloat), 0.0, 1.0, -1.0)
                      .add(1.0)
                      .mul(0.5 * 255.0)
                      .add(0.5)
                      .clamp(0.0, 255.0)
                      .floor()
                      .to(at::kByte);
  // torchvision layout: xmaps = min(nrow, N) columns, ceil(N / xmaps) rows, each cell
  // (H + padding) × (W + padding), plus `padding` on the top/left border; pad value 0.
  const int64_t xmaps = std::min(nrow, n), ymaps = (n + xmaps - 1) / xmaps;
  const int64_t cell_h = h + padding, cell_w = w + padding;
  at::Tensor grid = at::zeros({c, ymaps * cell_h + padding, xmaps * cell_w + padding}, at::kByte);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t y = k / xmaps, x = k % xmaps;
    grid.narrow(1, y * cell_h + padding, h).narrow(2, x * cell_w + padding, w).copy_(u8[k]);
  }
  return image_from_tensor(grid);
}

}  // namespace ddpm
