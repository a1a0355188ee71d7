#include "ddpm/data/image.hpp"
#include "ddpm/io/atomic_file.hpp"
#include "ddpm/util/limits.hpp"
#include "ddpm/io/read_file.hpp"
#include "io/little_endian.hpp"

#include <ATen/ATen.h>
// Implementations live in libstb.so (Debian's stb package): headers only here.
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>

namespace ddpm {
namespace {

std::vector<uint8_t> read_file(const std::string& path) {
  const std::string bytes = io::read_regular_file(path, "image file", limits::kMaxImageFileBytes);
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

// stb_image decodes a JPEG, BMP, TGA or GIF cut short without complaint (it reads
// zeros past the end), so truncation is detected here from each format's own
// structure. Returns why the file is truncated, or "" when it is complete (or of a
// format stb_image checks itself, such as PNG).
uint32_t le16(const std::vector<uint8_t>& b, size_t i) { return io::le16(&b[i]); }
uint32_t le32(const std::vector<uint8_t>& b, size_t i) { return io::le32(&b[i]); }

std::string jpeg_truncation(const std::vector<uint8_t>& b) {
  // The end-of-image marker FF D9 must follow the last start-of-scan FF DA. (In the
  // entropy-coded data a 0xFF byte is always stuffed as FF 00, so markers cannot
  // appear there by accident.)
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
  return last_sos != 0 && eoi_after_sos ? "" : "truncated JPEG (no end-of-image marker after the scan)";
}

std::string bmp_truncation(const std::vector<uint8_t>& b) {
  if (b.size() < 26) return "truncated BMP header";
  const uint32_t offset = le32(b, 10), header = le32(b, 14);
  int64_t w, h;
  uint32_t bpp, compression = 0;
  if (header == 12) {  // OS/2 BITMAPCOREHEADER
    w = le16(b, 18), h = le16(b, 20), bpp = le16(b, 24);
  } else {
    if (b.size() < 34) return "truncated BMP header";
    w = static_cast<int32_t>(le32(b, 18)), h = static_cast<int32_t>(le32(b, 22)), bpp = le16(b, 28);
    compression = le32(b, 30);
  }
  if (compression != 0 && compression != 3 && compression != 6) return "";  // RLE: sizes vary
  const int64_t stride = ((std::abs(w) * bpp + 31) / 32) * 4;
  return static_cast<int64_t>(b.size()) < offset + stride * std::abs(h) ? "truncated BMP (pixel data cut short)" : "";
}

std::string tga_truncation(const std::vector<uint8_t>& b) {
  if (b.size() < 18) return "truncated TGA header";
  const int type = b[2];
  const int64_t w = le16(b, 12), h = le16(b, 14), pixel_bytes = (b[16] + 7) / 8;
  size_t pos = 18 + b[0];
  if (b[1] == 1) pos += static_cast<size_t>(le16(b, 5)) * ((b[7] + 7) / 8);  // colour map
  if (type == 1 || type == 2 || type == 3)
    return static_cast<int64_t>(b.size()) < static_cast<int64_t>(pos) + w * h * pixel_bytes
               ? "truncated TGA (pixel data cut short)"
               : "";
  if (type == 9 || type == 10 || type == 11) {  // run-length packets
    for (int64_t pixels = 0; pixels < w * h;) {
      if (pos >= b.size()) return "truncated TGA (run-length data cut short)";
      const uint8_t packet = b[pos++];
      const int64_t count = (packet & 0x7F) + 1;
      pos += static_cast<size_t>((packet & 0x80) ? pixel_bytes : count * pixel_bytes);
      pixels += count;
    }
    return pos > b.size() ? "truncated TGA (run-length data cut short)" : "";
  }
  return "";
}

std::string gif_truncation(const std::vector<uint8_t>& b) {
  // Walk the blocks up to the end of the first image's data sub-blocks.
  const char* cut = "truncated GIF (first frame cut short)";
  if (b.size() < 13) return cut;
  size_t pos = 13;
  if (b[10] & 0x80) pos += 3u << ((b[10] & 7) + 1);  // global colour table
  auto skip_sub_blocks = [&]() {
    while (pos < b.size() && b[pos] != 0) pos += 1 + b[pos];
    if (pos >= b.size()) return false;
    ++pos;  // block terminator
    return true;
  };
  while (pos < b.size()) {
    if (b[pos] == 0x21) {  // extension: label, then sub-blocks
      pos += 2;
      if (!skip_sub_blocks()) return cut;
    } else if (b[pos] == 0x2C) {  // image descriptor, local table, LZW code size, data
      if (pos + 10 > b.size()) return cut;
      const uint8_t packed = b[pos + 9];
      pos += 10;
      if (packed & 0x80) pos += 3u << ((packed & 7) + 1);
      pos += 1;
      return skip_sub_blocks() ? "" : cut;
    } else {
      return "";  // trailer or something stb_image will judge itself
    }
  }
  return cut;
}

std::string png_truncation(const std::vector<uint8_t>& b) {
  // Walk the chunks (length, type, data, CRC) to a complete IEND.
  for (size_t pos = 8; pos + 12 <= b.size();) {
    const size_t length = (size_t(b[pos]) << 24) | (b[pos + 1] << 16) | (b[pos + 2] << 8) | b[pos + 3];
    if (std::memcmp(&b[pos + 4], "IEND", 4) == 0) return "";
    pos += 12 + length;
  }
  return "truncated PNG (no complete IEND chunk)";
}

// Why stb must not decode these bytes ("" = it may): not one of the formats libddpm reads, or cut
// short (stb fills a truncated image with garbage instead of failing).
std::string undecodable(const std::vector<uint8_t>& b) {
  if (b.size() >= 8 && std::memcmp(b.data(), "\x89PNG\r\n\x1a\n", 8) == 0) return png_truncation(b);
  if (b.size() >= 2 && b[0] == 0xFF && b[1] == 0xD8) return jpeg_truncation(b);
  if (b.size() >= 2 && b[0] == 'B' && b[1] == 'M') return bmp_truncation(b);
  if (b.size() >= 4 && std::memcmp(b.data(), "GIF8", 4) == 0) return gif_truncation(b);
  // TGA has no magic number: stb decodes as TGA whatever header passes its test (colour-map type
  // 0 or 1, image type 1-3 or 9-11), whatever the file's name, so the check goes by those bytes,
  // not by a ".tga" name (a 34-byte run-length TGA named .png decoded to 6168 x 6168 pixels).
  if (b.size() >= 3 && b[1] <= 1 && (b[2] == 1 || b[2] == 2 || b[2] == 3 || b[2] == 9 || b[2] == 10 || b[2] == 11))
    return tga_truncation(b);
  // Nothing else reaches stb: its other decoders (PNM, PSD, HDR, PIC) are not formats libddpm
  // reads, and its 16-bit PNM path over-reads the heap when channels are converted (a 10-byte
  // "P5 6 6 363" file named .png; found by scripts/fuzz.sh image).
  return "not a PNG, JPEG, BMP, GIF or TGA image";
}

// stb leaves its reason NULL on some failures; never build a std::string from NULL.
const char* failure_reason() {
  const char* why = stbi_failure_reason();
  return why ? why : "unknown decoder error";
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
  if (const std::string why = undecodable(bytes); !why.empty())
    throw std::runtime_error("cannot decode image file '" + path + "': " + why);

  int w = 0, h = 0, file_channels = 0;
  if (!stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &file_channels))
    throw std::runtime_error("cannot decode image file '" + path + "': " + failure_reason());
  // The header's size, before decoding: a small file can claim a huge image (20000² took 966 MB).
  if (static_cast<int64_t>(w) * h > kMaxImagePixels)
    throw std::runtime_error("image file '" + path + "': " + std::to_string(w) + "x" + std::to_string(h) +
                             " pixels is more than this reader accepts (" + std::to_string(kMaxImagePixels) + ")");
  // Gray+alpha has no place among 1/3/4 channels: keep the alpha, as RGBA.
  const int want = channels != 0 ? channels : (file_channels == 2 ? 4 : file_channels);
  // For a GIF, stbi_load_from_memory returns the first frame.
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &file_channels, want),
      stbi_image_free);
  if (!data) throw std::runtime_error("cannot decode image file '" + path + "': " + failure_reason());
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
  const int64_t sh = std::max<int64_t>(height, std::llround(image.height * scale));
  const int64_t sw = std::max<int64_t>(width, std::llround(image.width * scale));
  const int c = image.channels;
  const int64_t top = (sh - height) / 2, left = (sw - width) / 2;

  Image out;
  out.width = width;
  out.height = height;
  out.channels = c;
  out.pixels.resize(static_cast<size_t>(width) * height * c);
  if (sh == image.height && sw == image.width) {  // no scaling: the crop alone
    for (int y = 0; y < height; ++y)
      std::memcpy(&out.pixels[static_cast<size_t>(y) * width * c],
                  &image.pixels[(static_cast<size_t>(top + y) * sw + left) * c], static_cast<size_t>(width) * c);
    return out;
  }
  // Only the crop is resampled, never the whole scaled image: a 1×2^24 strip scaled to cover
  // 32×32 would be 32×2^29 pixels (it took 3.4 GB, then aborted). stbir's transform is the
  // one stbir_resize_uint8 uses for sw × sh (scale output/input as a float), shifted by the
  // crop's corner, so every output pixel is the one the full resize would have there.
  const float x_scale = static_cast<float>(sw) / image.width, y_scale = static_cast<float>(sh) / image.height;
  // Only the rows and columns the crop needs go to stbir (with the filter's reach on each side:
  // 2 pixels at the wider scale, doubled; nothing outside touches the output), when that is
  // less than half of them. stbir decodes whole input rows as floats (a 2^24-wide strip is
  // 64 MB a row), and an offset as large as 2^28 in its float arithmetic trips its own
  // assertion (the SIGABRT of a 1×2^24 image); in the window the offset is a few pixels.
  struct Window {
    int64_t first, count;
    float offset;
  };
  auto window = [](int64_t size, float scale, int64_t crop_first, int64_t crop_size) {
    const double reach = 4.0 / std::min(1.0, static_cast<double>(scale)) + 4;
    const double s = scale;
    const int64_t first = std::max<int64_t>(0, static_cast<int64_t>(std::floor(crop_first / s - reach)));
    const int64_t last = std::min<int64_t>(size, static_cast<int64_t>(std::ceil((crop_first + crop_size) / s + reach)));
    if (last - first >= size / 2) return Window{0, size, static_cast<float>(crop_first)};
    return Window{first, last - first, static_cast<float>(static_cast<double>(crop_first) - first * static_cast<double>(scale))};
  };
  const Window wx = window(image.width, x_scale, left, width), wy = window(image.height, y_scale, top, height);
  const size_t stride = static_cast<size_t>(image.width) * c;
  if (!stbir_resize_subpixel(image.pixels.data() + static_cast<size_t>(wy.first) * stride + static_cast<size_t>(wx.first) * c,
                             static_cast<int>(wx.count), static_cast<int>(wy.count), static_cast<int>(stride),
                             out.pixels.data(), width, height, 0, STBIR_TYPE_UINT8, c, STBIR_ALPHA_CHANNEL_NONE, 0,
                             STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP, STBIR_FILTER_DEFAULT, STBIR_FILTER_DEFAULT,
                             STBIR_COLORSPACE_LINEAR, nullptr, x_scale, y_scale, wx.offset, wy.offset))
    throw std::runtime_error("resize_center_crop: stbir_resize_subpixel failed");
  return out;
}

std::string encode_png(const Image& image, const std::string& what) {
  check_channels(image.channels, what.c_str());
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height * image.channels)
    throw std::invalid_argument(what + ": pixel buffer does not match " + std::to_string(image.width) + "x" +
                                std::to_string(image.height) + "x" + std::to_string(image.channels));
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  if (!stbi_write_png_to_func(append, &png, image.width, image.height, image.channels, image.pixels.data(),
                              image.width * image.channels))
    throw std::runtime_error(what + ": cannot encode PNG");
  return png;
}

void save_png(const std::string& path, const Image& image) {
  const std::string png = encode_png(image, "save_png '" + path + "'");
  // Atomic: a failed write (full disk) leaves the old file, never a partial PNG.
  io::write_file_atomically(path, png);
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
