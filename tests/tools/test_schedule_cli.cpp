// ddpm-schedule: CSV against the float64 reference, bad parameters, config files, the noising strip.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ddpm/data/image.hpp"
#include "ddpm/math/schedule.hpp"
#include "schedule_reference.hpp"
#include "test_util.hpp"

namespace {

using ddpm::test::run_command;

std::string tool() { return ddpm::test::bin_dir() + "ddpm-schedule"; }

struct Csv {
  std::string header;
  std::vector<std::vector<double>> rows;  // t, beta, alpha_bar, logsnr, posterior_variance
};

Csv parse_csv(const std::string& text) {
  Csv csv;
  std::istringstream in(text);
  std::getline(in, csv.header);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::istringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) {
      char* end = nullptr;
      row.push_back(std::strtod(cell.c_str(), &end));  // strtod reads "-inf"
      if (end == cell.c_str() || *end != '\0') throw std::runtime_error("bad CSV cell '" + cell + "' in: " + line);
    }
    csv.rows.push_back(row);
  }
  return csv;
}

TEST(ScheduleCli, PrintsEveryReferenceCase) {
  const auto cases = ddpm::test::load_reference(ddpm::test::data_dir() + "/schedules.json");
  ASSERT_FALSE(cases.empty());
  const std::vector<std::string> columns = {"beta", "alpha_bar", "logsnr", "posterior_variance"};
  for (const auto& rc : cases) {
    SCOPED_TRACE(rc.name + ": " + rc.flags);
    // Only stdout: a log line on stdout would break the CSV.
    const auto r = run_command(tool() + " " + rc.flags + " 2>/dev/null");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const Csv csv = parse_csv(r.output);
    ASSERT_EQ(csv.header, "t,beta,alpha_bar,logsnr,posterior_variance");
    ASSERT_EQ(static_cast<int64_t>(csv.rows.size()), rc.config.timesteps);
    for (size_t i = 0; i < csv.rows.size(); ++i) {
      ASSERT_EQ(csv.rows[i].size(), 5u) << "row " << i;
      ASSERT_EQ(csv.rows[i][0], static_cast<double>(i));
    }
    for (const auto& [i, row] : rc.rows) {
      for (size_t c = 0; c < columns.size(); ++c) {
        const double printed = csv.rows[i][c + 1], expected = row.at(columns[c]);
        EXPECT_TRUE(ddpm::test::matches_reference(columns[c], printed, expected, 1e-6))
            << columns[c] << "[" << i << "] printed " << printed << " vs reference " << expected;
      }
    }
    // At least 10 significant digits: the printed values are the library's float64 tables.
    const ddpm::NoiseSchedule s(rc.config);
    const at::Tensor tables[] = {s.beta64, s.alpha_bar64, s.logsnr64, s.posterior_variance64};
    for (size_t c = 0; c < 4; ++c) {
      for (size_t i = 0; i < csv.rows.size(); ++i) {
        const double want = tables[c][static_cast<int64_t>(i)].item<double>(), got = csv.rows[i][c + 1];
        if (std::isinf(want)) {
          ASSERT_EQ(got, want);
        } else {
          ASSERT_LE(std::abs(got - want), 1e-10 * std::abs(want)) << columns[c] << "[" << i << "]";
        }
      }
    }
  }
}

TEST(ScheduleCli, BadParametersExitTwoNamingTheParameter) {
  // The list (each tool start loads LibTorch, so the rest is left to test_schedule).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--timesteps 1", "timesteps"},
      {"--beta-start 0.03", "beta-start"},
      {"--beta-end 1.5", "beta-end"},
      {"--input-scale 0", "input-scale"},
      {"--schedule exponential", "exponential"},
      {"--schedule sigmoid --sigmoid-tau 0", "sigmoid-tau"},
      {"--schedule cosine-logsnr --logsnr-max -20", "logsnr-max"},
      {"--timesteps ten", "timesteps"},
  };
  for (const auto& [flags, name] : cases) {
    const auto r = run_command(tool() + " " + flags);
    EXPECT_EQ(r.exit_code, 2) << flags << "\n" << r.output;
    EXPECT_NE(r.output.find(name), std::string::npos) << flags << "\n" << r.output;
    // One line, no CSV, no backtrace.
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << flags << "\n" << r.output;
  }
}

TEST(ScheduleCli, ConfigFileUsesTheOptionNames) {
  const std::string dir = ddpm::test::make_temp_dir("ddpm-schedule-cli");
  const std::string path = dir + "/train.toml";
  {
    std::ofstream f(path);
    // A training config: keys of other areas are ignored by ddpm-schedule.
    f << "schedule = \"sigmoid\"\ntimesteps = 50\nsigmoid-start = -2\nsigmoid-tau = 0.5\n"
         "input-scale = 0.7\nzero-terminal-snr = true\nbase-channels = 64\n";
  }
  const auto from_file = run_command(tool() + " --config " + path + " 2>/dev/null");
  const auto from_flags = run_command(tool() +
                                      " --schedule sigmoid --timesteps 50 --sigmoid-start -2 --sigmoid-tau 0.5"
                                      " --input-scale 0.7 --zero-terminal-snr 2>/dev/null");
  ASSERT_EQ(from_file.exit_code, 0) << from_file.output;
  ASSERT_EQ(from_flags.exit_code, 0) << from_flags.output;
  EXPECT_EQ(from_file.output, from_flags.output);
  const Csv csv = parse_csv(from_flags.output);
  ASSERT_EQ(csv.rows.size(), 50u);
  EXPECT_EQ(csv.rows.back()[2], 0.0);  // zero terminal SNR took effect
  // ... and differs from the defaults.
  EXPECT_NE(run_command(tool() + " --timesteps 50 2>/dev/null").output, from_flags.output);
}

class StripTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ddpm::test::make_temp_dir("ddpm-schedule-strip");
    image_ = dir_ + "/in.png";
    // A 12 × 10 RGB gradient: smooth, so noise shows as departure from it.
    ddpm::Image img;
    img.width = 12;
    img.height = 10;
    img.channels = 3;
    for (int y = 0; y < 10; ++y)
      for (int x = 0; x < 12; ++x)
        for (int c = 0; c < 3; ++c) img.pixels.push_back(static_cast<uint8_t>(20 * x + 10 * y + 40 * c));
    ddpm::save_png(image_, img);
  }
  std::string dir_, image_;
};

TEST_F(StripTest, WritesKFramesSideBySide) {
  const std::string out = dir_ + "/strip.png";
  const auto r = run_command(tool() + " --strip " + image_ + " --out " + out + " --frames 5 --timesteps 100 --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const ddpm::Image strip = ddpm::load_image(out);
  // make_grid layout, one row: K cells of (W + 2) plus a 2-pixel border.
  EXPECT_EQ(strip.width, 5 * (12 + 2) + 2);
  EXPECT_EQ(strip.height, 10 + 2 * 2);
  EXPECT_EQ(strip.channels, 3);
  const at::Tensor grid = ddpm::tensor_from_image(strip).to(at::kFloat);  // [3, H, W]
  const at::Tensor orig = ddpm::tensor_from_image(ddpm::load_image(image_)).to(at::kFloat);
  auto frame = [&](int k) { return grid.narrow(1, 2, 10).narrow(2, 2 + k * 14, 12); };
  // t = 0: √(1−ᾱ_0) = 0.01, so the first frame is the image up to a few levels.
  EXPECT_LT((frame(0) - orig).abs().mean().item<double>(), 3.0);
  // t = T−1: ᾱ ≈ 0.36 for T = 100 (linear), so the frame departs from the image by far more.
  EXPECT_GT((frame(4) - orig).abs().mean().item<double>(), 20.0);
  // Frames get noisier with t.
  double prev = -1;
  for (int k = 0; k < 5; ++k) {
    const double d = (frame(k) - orig).abs().mean().item<double>();
    EXPECT_GT(d, prev) << "frame " << k;
    prev = d;
  }
}

TEST_F(StripTest, SeededResizableAndValidated) {
  auto bytes = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const std::string a = dir_ + "/a.png", b = dir_ + "/b.png", c = dir_ + "/c.png";
  const std::string base = tool() + " --strip " + image_ + " --frames 3 --size 8 --timesteps 50 --out ";
  ASSERT_EQ(run_command(base + a + " --seed 1").exit_code, 0);
  ASSERT_EQ(run_command(base + b + " --seed 1").exit_code, 0);
  ASSERT_EQ(run_command(base + c + " --seed 2").exit_code, 0);
  EXPECT_EQ(bytes(a), bytes(b));
  EXPECT_NE(bytes(a), bytes(c));
  const ddpm::Image img = ddpm::load_image(a);
  EXPECT_EQ(img.width, 3 * (8 + 2) + 2);
  EXPECT_EQ(img.height, 8 + 4);

  auto r = run_command(tool() + " --strip " + image_ + " --out " + dir_ + "/x.png --frames 0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--frames"), std::string::npos) << r.output;
  r = run_command(tool() + " --strip " + dir_ + "/missing.png --out " + dir_ + "/x.png");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("missing.png"), std::string::npos) << r.output;
  // Every undecodable image of the fuzz corpus: one line naming the file, exit 2 (was exit 1).
  for (const auto& e : std::filesystem::directory_iterator(ddpm::test::data_dir() + "/fuzz/image")) {
    r = run_command(tool() + " --strip " + e.path().string() + " --out " + dir_ + "/x.png");
    EXPECT_EQ(r.exit_code, 2) << e.path() << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find(e.path().filename().string()), std::string::npos) << r.output;
  }
  r = run_command(tool() + " --strip " + image_);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--out"), std::string::npos) << r.output;
}

}  // namespace
