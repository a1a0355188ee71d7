#pragma once
// Image files (stb_image / stb_image_write / stb_image_resize) and grids.
#include <ATen/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ddpm/util/limits.hpp"

namespace ddpm {

/// An 8-bit image, interleaved HWC.
struct Image {
  /// Width, height, channel count, and the pixels (rows top to bottom, channels interleaved).
  ///@{
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
  ///@}
};

/// Images with more pixels than this are refused from their header, before decoding.
inline constexpr int64_t kMaxImagePixels = limits::kMaxImagePixels;

/// Loads PNG/JPEG/BMP/TGA/GIF (first frame). channels = 0 keeps the file's
/// channel count (gray+alpha becomes RGBA); 1, 3 or 4 converts (stb_image's rules:
/// gray = (77 R + 150 G + 29 B) >> 8, alpha dropped or set to 255).
/// Throws std::runtime_error naming the file when it cannot be opened or decoded
/// (including a truncated PNG, JPEG, BMP, TGA or GIF: stb_image alone would read
/// zeros past the end of most of these).
Image load_image(const std::string& path, int channels = 0);
/// Resizes (stbir_resize_uint8's filter) so that the image just covers height × width
/// (the shorter side, relative to the target's aspect, fits), then centre-crops. Only the
/// crop is computed: memory is bounded by the output, whatever the source's aspect.
Image resize_center_crop(const Image& image, int height, int width);
/// Writes a PNG (1, 3 or 4 channels). Throws std::runtime_error naming the file.
void save_png(const std::string& path, const Image& image);
/// The PNG file's bytes, in memory (1, 3 or 4 channels). `what` names the image in errors.
std::string encode_png(const Image& image, const std::string& what = "encode_png");

/// uint8 [C,H,W] ↔ Image.
Image image_from_tensor(const at::Tensor& chw_uint8);
at::Tensor tensor_from_image(const Image& image);  ///< uint8 [C,H,W]

/// [N,C,H,W] floats in [−1, 1] → one grid image with `nrow` images per row and
/// `padding` pixels between them and around the border, pad value black
/// (torchvision's make_grid layout; a single image gets no padding). Values are
/// mapped with round(clamp((x + 1) / 2, 0, 1) · 255); NaN → mid-gray. C stays as
/// given (1, 3 or 4; torchvision would turn 1 channel into 3).
Image make_grid(const at::Tensor& images, int64_t nrow = 8, int64_t padding = 2);

}  // namespace ddpm
