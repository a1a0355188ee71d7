#pragma once
// Image files (stb_image / stb_image_write / stb_image_resize) and grids.
#include <ATen/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

/// An 8-bit image, interleaved HWC.
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

/// Loads PNG/JPEG/BMP/TGA/GIF (first frame). channels = 0 keeps the file's
/// channel count; 1, 3 or 4 converts. Throws std::runtime_error naming the file.
Image load_image(const std::string& path, int channels = 0);
/// Resizes the shorter side to fit, then centre-crops to height × width.
Image resize_center_crop(const Image& image, int height, int width);
/// Writes a PNG (1, 3 or 4 channels). Throws std::runtime_error naming the file.
void save_png(const std::string& path, const Image& image);

/// uint8 [C,H,W] ↔ Image.
Image image_from_tensor(const at::Tensor& chw_uint8);
at::Tensor tensor_from_image(const Image& image);  ///< uint8 [C,H,W]

/// [N,C,H,W] floats in [−1, 1] → one grid image with `nrow` images per row and
/// `padding` pixels between them (torchvision's make_grid layout).
Image make_grid(const at::Tensor& images, int64_t nrow = 8, int64_t padding = 2);

}  // namespace ddpm
