#pragma once
// Small training fixtures shared by the trainer, ddpm-train and distillation tests.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "ddpm/data/dataset.hpp"
#include "ddpm/pipeline/config.hpp"
#include "test_util.hpp"

namespace ddpm::test {

// 16 smooth 1×8×8 images: a bright disc at a different place in each.
inline std::shared_ptr<ddpm::Dataset> disc_images() {
  at::Tensor images = at::zeros({16, 1, 8, 8}, at::kByte);
  auto a = images.accessor<uint8_t, 4>();
  for (int n = 0; n < 16; ++n) {
    const double cy = 1.5 + (n / 4) * 1.5, cx = 1.5 + (n % 4) * 1.5;
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        const double d2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
        a[n][0][y][x] = static_cast<uint8_t>(std::lround(255.0 * std::exp(-d2 / 3.0)));
      }
  }
  return ddpm::make_tensor_dataset(images, "discs");
}

// configs/tiny.toml for those images, logging every step, into run_dir.
inline ddpm::Config tiny_train_config(const std::string& run_dir) {
  ddpm::Config c = ddpm::config_from_file(source_dir() + "/configs/tiny.toml");
  c.set_shape(1, 8, 8);
  c.train.run_dir = run_dir;
  c.train.log_every = 1;
  c.data.workers = 0;
  return c;
}

// The lines of a text file (metrics.jsonl).
inline std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace ddpm::test
