#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddpm/data/image.hpp"
#include "test_util.hpp"

namespace {

using ddpm::test::error_of;
using ddpm::test::read_bytes;
using ddpm::test::tiny_gif;
using ddpm::test::write_bytes;

ddpm::Image random_image(int w, int h, int c, unsigned seed) {
  std::mt19937 rng(seed);
  ddpm::Image im;
  im.width = w;
  im.height = h;
  im.channels = c;
  im.pixels.resize(static_cast<size_t>(w) * h * c);
  for (auto& p : im.pixels) p = static_cast<uint8_t>(rng() & 0xFF);
  return im;
}

// A smooth image (JPEG keeps it nearly exactly at quality 100).
ddpm::Image smooth_image(int w, int h, int c) {
  ddpm::Image im;
  im.width = w;
  im.height = h;
  im.channels = c;
  im.pixels.resize(static_cast<size_t>(w) * h * c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        im.pixels[(static_cast<size_t>(y) * w + x) * c + k] = static_cast<uint8_t>(40 + 4 * x + 3 * y + 20 * k);
  return im;
}

uint8_t px(const ddpm::Image& im, int y, int x, int k) {
  return im.pixels[(static_cast<size_t>(y) * im.width + x) * im.channels + k];
}





}  // namespace

TEST(Image, PngRoundTripsExactlyForEveryChannelCount) {
  const auto dir = ddpm::test::make_temp_dir("img-png");
  for (int c : {1, 3, 4}) {
    const auto im = random_image(13, 7, c, 100 + c);
    const std::string path = dir + "/x" + std::to_string(c) + ".png";
    ddpm::save_png(path, im);
    const auto back = ddpm::load_image(path);
    EXPECT_EQ(back.width, 13);
    EXPECT_EQ(back.height, 7);
    EXPECT_EQ(back.channels, c);
    EXPECT_EQ(back.pixels, im.pixels) << "channels " << c;
  }
}

TEST(Image, ReadsBmpAndTgaLosslessly) {
  const auto dir = ddpm::test::make_temp_dir("img-fmt");
  for (int c : {3, 4}) {
    const auto im = random_image(9, 5, c, 7 + c);
    const std::string bmp = dir + "/a" + std::to_string(c) + ".bmp", tga = dir + "/a" + std::to_string(c) + ".tga";
    ASSERT_TRUE(stbi_write_bmp(bmp.c_str(), im.width, im.height, c, im.pixels.data()));
    ASSERT_TRUE(stbi_write_tga(tga.c_str(), im.width, im.height, c, im.pixels.data()));
    for (const auto& path : {bmp, tga}) {
      const auto back = ddpm::load_image(path, c);
      EXPECT_EQ(back.width, 9);
      EXPECT_EQ(back.height, 5);
      EXPECT_EQ(back.pixels, im.pixels) << path;
    }
  }
  // Gray TGA keeps one channel.
  const auto gray = random_image(6, 4, 1, 3);
  const std::string tga1 = dir + "/g.tga";
  ASSERT_TRUE(stbi_write_tga(tga1.c_str(), 6, 4, 1, gray.pixels.data()));
  const auto back = ddpm::load_image(tga1);
  EXPECT_EQ(back.channels, 1);
  EXPECT_EQ(back.pixels, gray.pixels);
}

TEST(Image, ReadsJpegApproximately) {
  const auto dir = ddpm::test::make_temp_dir("img-jpg");
  const auto im = smooth_image(16, 12, 3);
  const std::string path = dir + "/a.jpg";
  ASSERT_TRUE(stbi_write_jpg(path.c_str(), im.width, im.height, 3, im.pixels.data(), 100));
  const auto back = ddpm::load_image(path, 3);
  ASSERT_EQ(back.width, 16);
  ASSERT_EQ(back.height, 12);
  double err = 0;
  for (size_t i = 0; i < im.pixels.size(); ++i) err += std::abs(int(back.pixels[i]) - int(im.pixels[i]));
  EXPECT_LT(err / im.pixels.size(), 3.0);
}

TEST(Image, ReadsTheFirstFrameOfAHandMadeGif) {
  const auto dir = ddpm::test::make_temp_dir("img-gif");
  const std::string path = dir + "/a.gif";
  write_bytes(path, tiny_gif());
  const auto im = ddpm::load_image(path, 3);
  ASSERT_EQ(im.width, 2);
  ASSERT_EQ(im.height, 2);
  const uint8_t expect[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < 3; ++k) EXPECT_EQ(px(im, i / 2, i % 2, k), expect[i][k]) << "pixel " << i;
  // stb_image reports GIFs as RGBA.
  EXPECT_EQ(ddpm::load_image(path).channels, 4);
  EXPECT_EQ(px(ddpm::load_image(path), 0, 0, 3), 255);
}

TEST(Image, ConvertsBetweenGrayRgbAndRgba) {
  const auto dir = ddpm::test::make_temp_dir("img-conv");
  const auto rgb = random_image(8, 6, 3, 11);
  const std::string rgb_path = dir + "/rgb.png";
  ddpm::save_png(rgb_path, rgb);

  // RGB → gray: luma, within one level of 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601).
  const auto gray = ddpm::load_image(rgb_path, 1);
  ASSERT_EQ(gray.channels, 1);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 8; ++x) {
      const double luma = 0.299 * px(rgb, y, x, 0) + 0.587 * px(rgb, y, x, 1) + 0.114 * px(rgb, y, x, 2);
      EXPECT_NEAR(px(gray, y, x, 0), luma, 1.5);
    }
  // RGB → RGBA: opaque alpha.
  const auto rgba = ddpm::load_image(rgb_path, 4);
  ASSERT_EQ(rgba.channels, 4);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 8; ++x) {
      for (int k = 0; k < 3; ++k) EXPECT_EQ(px(rgba, y, x, k), px(rgb, y, x, k));
      EXPECT_EQ(px(rgba, y, x, 3), 255);
    }
  // Gray → RGB: replicated.
  const auto g = random_image(5, 3, 1, 12);
  const std::string g_path = dir + "/g.png";
  ddpm::save_png(g_path, g);
  const auto g3 = ddpm::load_image(g_path, 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x)
      for (int k = 0; k < 3; ++k) EXPECT_EQ(px(g3, y, x, k), px(g, y, x, 0));
  // RGBA → RGB: alpha dropped, colour kept.
  const auto a = random_image(5, 3, 4, 13);
  const std::string a_path = dir + "/a.png";
  ddpm::save_png(a_path, a);
  const auto a3 = ddpm::load_image(a_path, 3);
  ASSERT_EQ(a3.channels, 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x)
      for (int k = 0; k < 3; ++k) EXPECT_EQ(px(a3, y, x, k), px(a, y, x, k));
  // Gray+alpha → RGBA by default.
  const auto ga = random_image(4, 4, 2, 14);
  const std::string ga_path = dir + "/ga.png";
  ASSERT_TRUE(stbi_write_png(ga_path.c_str(), 4, 4, 2, ga.pixels.data(), 8));
  const auto ga4 = ddpm::load_image(ga_path);
  ASSERT_EQ(ga4.channels, 4);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(ga4.pixels[i * 4 + 0], ga.pixels[i * 2]);
    EXPECT_EQ(ga4.pixels[i * 4 + 2], ga.pixels[i * 2]);
    EXPECT_EQ(ga4.pixels[i * 4 + 3], ga.pixels[i * 2 + 1]);
  }
  EXPECT_THROW(ddpm::load_image(rgb_path, 2), std::invalid_argument);
}

TEST(Image, ResizeCenterCropGivesTheExactSizeForOddShapes) {
  const std::vector<std::pair<int, int>> sources = {{37, 23}, {23, 37}, {1, 1}, {5, 101}, {64, 64}, {3, 2}};
  const std::vector<std::pair<int, int>> targets = {{16, 16}, {7, 11}, {28, 28}, {1, 1}, {33, 17}};
  for (auto [sw, sh] : sources)
    for (auto [th, tw] : targets)
      for (int c : {1, 3, 4}) {
        const auto out = ddpm::resize_center_crop(random_image(sw, sh, c, sw * 7 + sh), th, tw);
        EXPECT_EQ(out.height, th);
        EXPECT_EQ(out.width, tw);
        EXPECT_EQ(out.channels, c);
        EXPECT_EQ(out.pixels.size(), static_cast<size_t>(th) * tw * c);
      }
}

TEST(Image, ResizeKeepsConstantsAndCropsTheCentre) {
  // A constant image stays constant whatever the scale.
  ddpm::Image flat;
  flat.width = 41;
  flat.height = 19;
  flat.channels = 3;
  flat.pixels.assign(41 * 19 * 3, 77);
  for (auto out : {ddpm::resize_center_crop(flat, 8, 8), ddpm::resize_center_crop(flat, 40, 30)})
    for (auto p : out.pixels) ASSERT_EQ(p, 77);

  // Three vertical bands 0 | 200 | 0 of equal width: a square crop of the height
  // keeps exactly the middle band, without resampling when the height already fits.
  auto bands = [](int band, int h) {
    ddpm::Image im;
    im.width = 3 * band;
    im.height = h;
    im.channels = 1;
    im.pixels.resize(static_cast<size_t>(3 * band) * h);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < 3 * band; ++x) im.pixels[static_cast<size_t>(y) * 3 * band + x] = (x / band == 1) ? 200 : 0;
    return im;
  };
  const auto exact = ddpm::resize_center_crop(bands(10, 10), 10, 10);
  for (auto p : exact.pixels) EXPECT_EQ(p, 200);
  // Scaled by 1/2 first (60×20 → 30×10), the middle 10 columns remain; away from the
  // band edges the filter sees only the middle band.
  const auto half = ddpm::resize_center_crop(bands(20, 20), 10, 10);
  for (int y = 0; y < 10; ++y)
    for (int x = 2; x < 8; ++x) EXPECT_NEAR(px(half, y, x, 0), 200, 2) << y << "," << x;
  // Tall image: rows are cropped, not columns.
  ddpm::Image tall;
  tall.width = 4;
  tall.height = 12;
  tall.channels = 1;
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 4; ++x) tall.pixels.push_back(static_cast<uint8_t>(y * 10 + x));
  const auto mid = ddpm::resize_center_crop(tall, 4, 4);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) EXPECT_EQ(px(mid, y, x, 0), (y + 4) * 10 + x);
}

TEST(Image, TensorConversionUsesChwLayout) {
  const auto im = random_image(5, 3, 3, 21);
  const at::Tensor t = ddpm::tensor_from_image(im);
  ASSERT_EQ(t.scalar_type(), at::kByte);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 3, 5}));
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x)
      for (int k = 0; k < 3; ++k) EXPECT_EQ(t[k][y][x].item<uint8_t>(), px(im, y, x, k));
  const auto back = ddpm::image_from_tensor(t);
  EXPECT_EQ(back.width, 5);
  EXPECT_EQ(back.height, 3);
  EXPECT_EQ(back.pixels, im.pixels);
  EXPECT_THROW(ddpm::image_from_tensor(at::zeros({3, 4, 4})), std::invalid_argument);  // float
  EXPECT_THROW(ddpm::image_from_tensor(at::zeros({2, 4, 4}, at::kByte)), std::invalid_argument);
}

TEST(Image, MakeGridFollowsTorchvisionLayoutAndRounding) {
  const int64_t n = 5, c = 3, h = 4, w = 5, nrow = 3, pad = 2;
  const std::vector<float> values = {-1.f, 1.f, 0.f, 2.f, -0.5f};
  at::Tensor batch = at::empty({n, c, h, w});
  for (int64_t k = 0; k < n; ++k) batch[k].fill_(values[k]);
  batch[0][1][0][0] = 0.3f;  // one distinct pixel to pin orientation
  const auto grid = ddpm::make_grid(batch, nrow, pad);
  // columns = min(nrow, N), rows = ceil(N / columns); cells of (H+pad)×(W+pad) plus a border.
  ASSERT_EQ(grid.width, 3 * (w + pad) + pad);
  ASSERT_EQ(grid.height, 2 * (h + pad) + pad);
  ASSERT_EQ(grid.channels, c);
  auto to_u8 = [](float v) { return static_cast<int>(std::lround(std::clamp((v + 1.0) / 2.0, 0.0, 1.0) * 255.0)); };
  std::vector<int> owner(static_cast<size_t>(grid.width) * grid.height, -1);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t top = (k / nrow) * (h + pad) + pad, left = (k % nrow) * (w + pad) + pad;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        owner[(top + y) * grid.width + left + x] = static_cast<int>(k);
        for (int64_t ch = 0; ch < c; ++ch) {
          const float v = (k == 0 && ch == 1 && y == 0 && x == 0) ? 0.3f : values[k];
          EXPECT_EQ(px(grid, int(top + y), int(left + x), int(ch)), to_u8(v)) << k << " " << y << " " << x;
        }
      }
  }
  EXPECT_EQ(to_u8(0.f), 128);
  EXPECT_EQ(to_u8(-0.5f), 64);
  // Everything else is padding, black.
  for (int y = 0; y < grid.height; ++y)
    for (int x = 0; x < grid.width; ++x)
      if (owner[static_cast<size_t>(y) * grid.width + x] < 0)
        for (int ch = 0; ch < c; ++ch) EXPECT_EQ(px(grid, y, x, ch), 0);

  // A single image comes back as itself; a gray batch stays gray.
  const auto single = ddpm::make_grid(at::zeros({1, 1, 3, 7}), 8, 2);
  EXPECT_EQ(single.width, 7);
  EXPECT_EQ(single.height, 3);
  EXPECT_EQ(single.channels, 1);
  // Fewer images than nrow: one row of N.
  const auto row = ddpm::make_grid(at::zeros({2, 1, 3, 3}), 8, 1);
  EXPECT_EQ(row.width, 2 * 4 + 1);
  EXPECT_EQ(row.height, 4 + 1);
  EXPECT_THROW(ddpm::make_grid(at::zeros({2, 3, 3}), 8, 2), std::invalid_argument);
}

TEST(Image, ErrorsNameTheFile) {
  const auto dir = ddpm::test::make_temp_dir("img-err");
  const std::string missing = dir + "/missing.png";
  EXPECT_NE(error_of([&] { ddpm::load_image(missing); }).find(missing), std::string::npos);

  const std::string text = dir + "/notes.png";
  std::ofstream(text) << "not an image at all";
  EXPECT_NE(error_of([&] { ddpm::load_image(text); }).find(text), std::string::npos);

  const std::string empty = dir + "/empty.png";
  std::ofstream{empty};
  EXPECT_NE(error_of([&] { ddpm::load_image(empty); }).find(empty), std::string::npos);

  // Truncated files of every format (stb_image itself accepts most of these cut
  // short, reading zeros): half the file, and the file less its last byte.
  const auto im = smooth_image(32, 32, 3);
  const std::string png = dir + "/full.png", jpg = dir + "/full.jpg", bmp = dir + "/full.bmp",
                    tga = dir + "/full.tga", rle = dir + "/rle.tga", gif = dir + "/full.gif";
  ddpm::save_png(png, im);
  ASSERT_TRUE(stbi_write_jpg(jpg.c_str(), 32, 32, 3, im.pixels.data(), 90));
  ASSERT_TRUE(stbi_write_bmp(bmp.c_str(), 32, 32, 3, im.pixels.data()));
  stbi_write_tga_with_rle = 0;
  ASSERT_TRUE(stbi_write_tga(tga.c_str(), 32, 32, 3, im.pixels.data()));
  stbi_write_tga_with_rle = 1;
  ASSERT_TRUE(stbi_write_tga(rle.c_str(), 32, 32, 3, im.pixels.data()));
  write_bytes(gif, tiny_gif());
  int n = 0;
  for (const auto& full : {png, jpg, bmp, tga, rle, gif}) {
    const auto bytes = read_bytes(full);
    ASSERT_NO_THROW(ddpm::load_image(full)) << full;
    // GIF: cut inside the first frame's data (the file holds two frames).
    for (size_t keep : {bytes.size() / 2, full == gif ? size_t(38) : bytes.size() - 1}) {
      const std::string cut = dir + "/cut" + std::to_string(n++) + full.substr(full.size() - 4);
      write_bytes(cut, std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(keep)));
      const auto message = error_of([&] { ddpm::load_image(cut); });
      EXPECT_NE(message.find(cut), std::string::npos)
          << full << " cut to " << keep << " bytes: no error naming " << cut << ": '" << message << "'";
    }
  }

  const std::string unwritable = dir + "/no/such/dir/out.png";
  EXPECT_NE(error_of([&] { ddpm::save_png(unwritable, im); }).find(unwritable), std::string::npos);
}
