#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/options.hpp"
#include "ddpm/data/dataset.hpp"
#include "ddpm/data/image.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace {

using ddpm::test::error_of;
using ddpm::test::read_bytes;
using ddpm::test::tiny_gif;
using ddpm::test::write_bytes;

ddpm::Image solid(int w, int h, std::vector<uint8_t> color) {
  ddpm::Image im;
  im.width = w;
  im.height = h;
  im.channels = static_cast<int>(color.size());
  for (int i = 0; i < w * h; ++i) im.pixels.insert(im.pixels.end(), color.begin(), color.end());
  return im;
}

ddpm::Image noise(int w, int h, int c, unsigned seed) {
  ddpm::Image im;
  im.width = w;
  im.height = h;
  im.channels = c;
  im.pixels.resize(static_cast<size_t>(w) * h * c);
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = static_cast<uint8_t>((i * 2654435761u + seed) >> 7);
  return im;
}



void png(const std::string& path, const ddpm::Image& im) {
  fs::create_directories(fs::path(path).parent_path());
  ddpm::save_png(path, im);
}



// A folder with one file of every format, gray/RGB/RGBA, odd sizes, nested
// folders, a truncated PNG, a text file named .jpg and a plain text file.
struct MixedFolder {
  std::string dir;
  std::vector<std::string> readable, unreadable;
  MixedFolder() : dir(ddpm::test::make_temp_dir("data-mixed")) {
    png(dir + "/a.png", solid(13, 7, {10, 200, 30}));  // first in order: fixes 3 channels
    png(dir + "/b_gray.PNG", solid(9, 9, {77}));
    png(dir + "/c_rgba.png", solid(6, 11, {1, 2, 3, 128}));
    const auto smooth = solid(20, 16, {90, 120, 150});
    fs::create_directories(dir + "/sub/deeper");
    EXPECT_TRUE(stbi_write_jpg((dir + "/sub/d.jpg").c_str(), 20, 16, 3, smooth.pixels.data(), 95));
    EXPECT_TRUE(stbi_write_bmp((dir + "/sub/deeper/e.bmp").c_str(), 20, 16, 3, smooth.pixels.data()));
    EXPECT_TRUE(stbi_write_tga((dir + "/sub/f.tga").c_str(), 20, 16, 3, smooth.pixels.data()));
    write_bytes(dir + "/sub/g.gif", tiny_gif());
    readable = {dir + "/a.png",          dir + "/b_gray.PNG", dir + "/c_rgba.png", dir + "/sub/d.jpg",
                dir + "/sub/deeper/e.bmp", dir + "/sub/f.tga",  dir + "/sub/g.gif"};
    // Unreadable: a truncated PNG and a text file with an image extension.
    auto bytes = read_bytes(dir + "/a.png");
    bytes.resize(bytes.size() / 2);
    write_bytes(dir + "/sub/broken.png", bytes);
    std::ofstream(dir + "/fake.jpg") << "this is not a JPEG";
    unreadable = {dir + "/fake.jpg", dir + "/sub/broken.png"};
    // Ignored: not an image extension.
    std::ofstream(dir + "/notes.txt") << "hello";
  }
};

ddpm::DataConfig folder_config(const std::string& dir, int64_t h, int64_t w, int64_t channels = 0) {
  ddpm::DataConfig config;
  config.source = dir;
  config.height = h;
  config.width = w;
  config.channels = channels;
  return config;
}

// N images 1×3×4, image i filled with 10·i except a marker column so flips show.
at::Tensor indexed_images(int64_t n) {
  at::Tensor images = at::empty({n, 1, 3, 4}, at::kByte);
  for (int64_t i = 0; i < n; ++i) {
    images[i].fill_(10 * i);
    images[i].select(2, 0).fill_(255);  // leftmost column
  }
  return images;
}

// Recovers (dataset index, flipped) from a loader sample made from indexed_images.
std::pair<int64_t, bool> identify(const at::Tensor& sample) {
  const at::Tensor u8 = sample.add(1.0).mul(127.5).round().to(at::kByte);
  const bool flipped = u8[0][0][3].item<uint8_t>() == 255 && u8[0][0][0].item<uint8_t>() != 255;
  return {u8[0][0][1].item<uint8_t>() / 10, flipped};
}

std::vector<at::Tensor> take(ddpm::DataLoader& loader, int count) {
  std::vector<at::Tensor> out;
  for (int i = 0; i < count; ++i) out.push_back(loader.next());
  return out;
}

bool same(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!a[i].equal(b[i])) return false;
  return true;
}

ddpm::DataConfig loader_config(int64_t workers, bool hflip = false, int64_t prefetch = 4) {
  ddpm::DataConfig config;
  config.source = "unused";
  config.workers = workers;
  config.hflip = hflip;
  config.prefetch = prefetch;
  return config;
}

}  // namespace

// ---------------------------------------------------------------- folders

TEST(Data, FolderReadsEveryFormatAndSkipsUnreadableFiles) {
  MixedFolder folder;
  for (bool cache : {true, false}) {
    auto config = folder_config(folder.dir, 8, 10);
    config.cache = cache;
    const auto ds = ddpm::open_dataset(config);
    ASSERT_EQ(ds->size(), 7) << ds->describe();
    EXPECT_EQ(ds->channels(), 3);
    EXPECT_EQ(ds->height(), 8);
    EXPECT_EQ(ds->width(), 10);
    EXPECT_EQ(ds->skipped(), folder.unreadable);
    for (int64_t i = 0; i < ds->size(); ++i) {
      const at::Tensor t = ds->get(i);
      EXPECT_EQ(t.scalar_type(), at::kByte);
      EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 8, 10}));
    }
    // Sorted order: a.png (solid 10,200,30), b_gray.PNG (77 everywhere), c_rgba (alpha dropped).
    const at::Tensor a = ds->get(0);
    EXPECT_TRUE(a[0].eq(10).all().item<bool>());
    EXPECT_TRUE(a[1].eq(200).all().item<bool>());
    EXPECT_TRUE(a[2].eq(30).all().item<bool>());
    EXPECT_TRUE(ds->get(1).eq(77).all().item<bool>());
    EXPECT_TRUE(ds->get(2)[2].eq(3).all().item<bool>());
    // BMP and TGA are lossless: solid (90, 120, 150).
    for (int64_t i : {4, 5}) EXPECT_TRUE(ds->get(i)[1].eq(120).all().item<bool>()) << i;
    // JPEG: close.
    EXPECT_LT(ds->get(3).to(at::kFloat).sub(at::tensor({90.f, 120.f, 150.f}).view({3, 1, 1})).abs().max().item<float>(),
              4.f);
    // GIF 2×2 → 8×10: top-left quarter red.
    EXPECT_GT(ds->get(6)[0][0][0].item<uint8_t>(), 200);
    EXPECT_LT(ds->get(6)[1][0][0].item<uint8_t>(), 50);
    EXPECT_THROW(ds->get(7), std::out_of_range);
  }
}

TEST(Data, ChannelsAreAutoOrForced) {
  const auto dir = ddpm::test::make_temp_dir("data-ch");
  png(dir + "/0.png", solid(5, 5, {60}));
  png(dir + "/1.png", solid(5, 5, {0, 255, 0}));
  png(dir + "/2.png", solid(5, 5, {9, 9, 9, 50}));
  // Auto: the first image is gray → 1 channel; colour images become luma.
  auto gray = ddpm::open_dataset(folder_config(dir, 5, 5));
  EXPECT_EQ(gray->channels(), 1);
  EXPECT_NEAR(gray->get(1)[0][0][0].item<uint8_t>(), 0.587 * 255, 1.5);
  // Forced RGB: gray replicated.
  auto rgb = ddpm::open_dataset(folder_config(dir, 5, 5, 3));
  EXPECT_EQ(rgb->channels(), 3);
  EXPECT_TRUE(rgb->get(0).eq(60).all().item<bool>());
  // Forced RGBA: opaque alpha where there was none, kept where there was.
  auto rgba = ddpm::open_dataset(folder_config(dir, 5, 5, 4));
  EXPECT_TRUE(rgba->get(1)[3].eq(255).all().item<bool>());
  EXPECT_TRUE(rgba->get(2)[3].eq(50).all().item<bool>());
  // Native size when none is given.
  auto native = ddpm::open_dataset(folder_config(dir, 0, 0));
  EXPECT_EQ(native->height(), 5);
  EXPECT_EQ(native->width(), 5);
}

TEST(Data, OddSizesAreResizedAndCroppedExactly) {
  const auto dir = ddpm::test::make_temp_dir("data-odd");
  png(dir + "/a.png", noise(37, 23, 3, 1));
  png(dir + "/b.png", noise(5, 101, 3, 2));
  png(dir + "/c.png", noise(1, 1, 3, 3));
  png(dir + "/d.png", noise(64, 64, 3, 4));
  const auto ds = ddpm::open_dataset(folder_config(dir, 9, 13));
  ASSERT_EQ(ds->size(), 4);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(ds->get(i).sizes(), (std::vector<int64_t>{3, 9, 13}));
  // The dataset applies exactly resize_center_crop.
  const auto expect = ddpm::tensor_from_image(ddpm::resize_center_crop(noise(37, 23, 3, 1), 9, 13));
  EXPECT_TRUE(ds->get(0).equal(expect));
}

TEST(Data, EmptyOrUnreadableFoldersAreClearErrors) {
  const auto empty = ddpm::test::make_temp_dir("data-empty");
  auto message = error_of([&] { ddpm::open_dataset(folder_config(empty, 8, 8)); });
  EXPECT_NE(message.find(empty), std::string::npos) << message;
  EXPECT_THROW(ddpm::open_dataset(folder_config(empty, 8, 8)), std::invalid_argument);

  const auto text_only = ddpm::test::make_temp_dir("data-text");
  std::ofstream(text_only + "/readme.txt") << "no images here";
  message = error_of([&] { ddpm::open_dataset(folder_config(text_only, 8, 8)); });
  EXPECT_NE(message.find(text_only), std::string::npos) << message;

  const auto broken = ddpm::test::make_temp_dir("data-broken");
  std::ofstream(broken + "/x.png") << "not a png";
  std::ofstream(broken + "/y.gif") << "GIF8";
  EXPECT_THROW(ddpm::open_dataset(folder_config(broken, 8, 8)), std::invalid_argument);
  message = error_of([&] { ddpm::open_dataset(folder_config(broken, 8, 8)); });
  EXPECT_NE(message.find(broken), std::string::npos) << message;

  const std::string missing = empty + "/does-not-exist";
  message = error_of([&] { ddpm::open_dataset(folder_config(missing, 8, 8)); });
  EXPECT_NE(message.find(missing), std::string::npos) << message;
}

TEST(Data, ConfigValidationNamesTheOption) {
  ddpm::DataConfig ok;
  ok.source = "x";
  EXPECT_NO_THROW(ok.validate());
  auto expect_bad = [](ddpm::DataConfig c, const std::string& option) {
    const auto message = error_of([&] { c.validate(); });
    EXPECT_NE(message.find(option), std::string::npos) << "'" << message << "' lacks " << option;
  };
  auto c = ok;
  c.source = "";
  expect_bad(c, "--data");
  c = ok;
  c.channels = 2;
  expect_bad(c, "--channels");
  c = ok;
  c.height = 8;
  expect_bad(c, "--image-size");
  c = ok;
  c.workers = -1;
  expect_bad(c, "--workers");
  c = ok;
  c.prefetch = 0;
  expect_bad(c, "--prefetch");
}

TEST(Data, CliOptionsBindTheConfig) {
  ddpm::DataConfig config;
  CLI::App app("test");
  ddpm::cli::add_data_options(app, config);
  const char* argv[] = {"test", "--data", "idx:/x", "--hflip", "--workers", "3", "--prefetch", "7", "--no-cache"};
  app.parse(9, const_cast<char**>(argv));
  EXPECT_EQ(config.source, "idx:/x");
  EXPECT_TRUE(config.hflip);
  EXPECT_EQ(config.workers, 3);
  EXPECT_EQ(config.prefetch, 7);
  EXPECT_FALSE(config.cache);

  ddpm::DataConfig defaults;
  CLI::App app2("test");
  ddpm::cli::add_data_options(app2, defaults);
  const char* argv2[] = {"test", "--data", "dir"};
  app2.parse(3, const_cast<char**>(argv2));
  EXPECT_FALSE(defaults.hflip);
  EXPECT_EQ(defaults.workers, 2);
  EXPECT_EQ(defaults.prefetch, 4);
  EXPECT_TRUE(defaults.cache);
  CLI::App app3("test");
  ddpm::cli::add_data_options(app3, defaults);
  const char* argv3[] = {"test", "--workers", "-1"};
  EXPECT_THROW(app3.parse(3, const_cast<char**>(argv3)), CLI::ParseError);
}

// ---------------------------------------------------------------- IDX

namespace {
std::vector<uint8_t> idx_bytes(uint32_t n, uint32_t rows, uint32_t cols) {
  std::vector<uint8_t> b = {0, 0, 0x08, 3};
  for (uint32_t d : {n, rows, cols})
    for (int shift : {24, 16, 8, 0}) b.push_back(static_cast<uint8_t>(d >> shift));
  for (uint32_t i = 0; i < n * rows * cols; ++i) b.push_back(static_cast<uint8_t>(i * 7 + 3));
  return b;
}
}  // namespace

TEST(Data, ReadsIdxFilesPlainAndGzipped) {
  const auto dir = ddpm::test::make_temp_dir("data-idx");
  const std::string plain = dir + "/tiny-idx3-ubyte";
  write_bytes(plain, idx_bytes(3, 4, 5));
  const at::Tensor raw = ddpm::read_idx_images(plain);
  ASSERT_EQ(raw.sizes(), (std::vector<int64_t>{3, 1, 4, 5}));
  // Row-major: image i, row r, column c is byte 16 + i·20 + r·5 + c.
  for (int i = 0; i < 3; ++i)
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 5; ++c)
        EXPECT_EQ(raw[i][0][r][c].item<uint8_t>(), static_cast<uint8_t>((i * 20 + r * 5 + c) * 7 + 3));

  // gzip -c, read directly; "idx:PATH" finds PATH.gz when PATH is absent.
  const std::string zipped_base = dir + "/z/tiny-idx3-ubyte";
  fs::create_directories(dir + "/z");
  const auto gz = ddpm::test::run_command("gzip -c '" + plain + "' > '" + zipped_base + ".gz'");
  ASSERT_EQ(gz.exit_code, 0) << gz.output;
  EXPECT_TRUE(ddpm::read_idx_images(zipped_base + ".gz").equal(raw));
  ddpm::DataConfig config;
  config.source = "idx:" + zipped_base;
  const auto ds = ddpm::open_dataset(config);
  EXPECT_EQ(ds->size(), 3);
  EXPECT_EQ(ds->channels(), 1);
  EXPECT_EQ(ds->height(), 4);
  EXPECT_EQ(ds->width(), 5);
  EXPECT_TRUE(ds->get(2).equal(raw[2]));

  // Converted and resized, cached or not.
  for (bool cache : {true, false}) {
    config.channels = 3;
    config.height = config.width = 8;
    config.cache = cache;
    const auto big = ddpm::open_dataset(config);
    EXPECT_EQ(big->get(1).sizes(), (std::vector<int64_t>{3, 8, 8}));
    ddpm::Image gray;
    gray.width = 5;
    gray.height = 4;
    gray.channels = 1;
    const at::Tensor src = raw[1][0].contiguous();
    gray.pixels.assign(src.data_ptr<uint8_t>(), src.data_ptr<uint8_t>() + 20);
    const at::Tensor want = ddpm::tensor_from_image(ddpm::resize_center_crop(gray, 8, 8));
    for (int k = 0; k < 3; ++k) EXPECT_TRUE(big->get(1)[k].equal(want[0])) << "channel " << k;
  }
}

TEST(Data, BadIdxFilesAreErrorsNamingTheFile) {
  const auto dir = ddpm::test::make_temp_dir("data-badidx");
  auto expect_bad = [](const std::string& path) {
    const auto message = error_of([&] { ddpm::read_idx_images(path); });
    EXPECT_NE(message.find(path), std::string::npos) << "'" << message << "'";
    EXPECT_THROW(ddpm::read_idx_images(path), std::invalid_argument);
  };
  auto good = idx_bytes(2, 3, 3);
  auto bytes = good;
  bytes[2] = 0x0D;  // float elements
  write_bytes(dir + "/type", bytes);
  expect_bad(dir + "/type");
  bytes = good;
  bytes.pop_back();  // one byte short
  write_bytes(dir + "/short", bytes);
  expect_bad(dir + "/short");
  bytes = good;
  bytes[0] = 1;
  write_bytes(dir + "/magic", bytes);
  expect_bad(dir + "/magic");
  // A corrupted gzip: flip bits in the middle of the compressed stream.
  write_bytes(dir + "/ok", idx_bytes(50, 10, 10));
  ASSERT_EQ(ddpm::test::run_command("gzip -c '" + dir + "/ok' > '" + dir + "/bad.gz'").exit_code, 0);
  bytes = read_bytes(dir + "/bad.gz");
  bytes[bytes.size() / 2] ^= 0x55;
  write_bytes(dir + "/bad.gz", bytes);
  expect_bad(dir + "/bad.gz");
  expect_bad(dir + "/missing");
  ddpm::DataConfig config;
  config.source = "idx:" + dir + "/missing";
  EXPECT_THROW(ddpm::open_dataset(config), std::invalid_argument);
}

TEST(Data, OpensFashionMnistWhenInstalled) {
  const std::string base = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte";
  if (!fs::exists(base) && !fs::exists(base + ".gz"))
    GTEST_SKIP() << "optional system data: Fashion-MNIST is not installed at " << base << "[.gz]";
  ddpm::DataConfig config;
  config.source = "idx:" + base;
  const auto ds = ddpm::open_dataset(config);
  EXPECT_EQ(ds->size(), 60000);
  EXPECT_EQ(ds->channels(), 1);
  EXPECT_EQ(ds->height(), 28);
  EXPECT_EQ(ds->width(), 28);
  // Real pictures: not blank, with black backgrounds and bright pixels.
  const at::Tensor first = ds->get(0);
  EXPECT_EQ(first.min().item<uint8_t>(), 0);
  EXPECT_GT(first.max().item<uint8_t>(), 200);
}

// ---------------------------------------------------------------- loader

TEST(Loader, BatchesAreScaledToMinusOneOne) {
  at::Tensor images = at::empty({6, 3, 2, 2}, at::kByte);
  for (int i = 0; i < 6; ++i) images[i].copy_(at::arange(12, at::kLong).mul(21).add(i).to(at::kByte).view({3, 2, 2}));
  images[0].fill_(0);
  images[1].fill_(255);
  ddpm::DataLoader loader(ddpm::make_tensor_dataset(images), 6, 1, loader_config(2));
  const at::Tensor batch = loader.next();
  ASSERT_EQ(batch.scalar_type(), at::kFloat);
  ASSERT_EQ(batch.sizes(), (std::vector<int64_t>{6, 3, 2, 2}));
  EXPECT_EQ(batch.min().item<float>(), -1.f);
  EXPECT_EQ(batch.max().item<float>(), 1.f);
  // x / 127.5 − 1 exactly, for whichever image landed where.
  const at::Tensor back = batch.add(1).mul(127.5);
  EXPECT_LT(back.sub(back.round()).abs().max().item<float>(), 1e-4f);
  std::multiset<double> got, want;
  for (int i = 0; i < 6; ++i) {
    got.insert(back[i].sum().item<double>());
    want.insert(images[i].to(at::kDouble).sum().item<double>());
  }
  EXPECT_EQ(got, want);
}

TEST(Loader, EachEpochIsAReshuffledPermutationWithDropLast) {
  const int64_t n = 10, b = 3;
  ddpm::DataLoader loader(ddpm::make_tensor_dataset(indexed_images(n)), b, 42, loader_config(2));
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 3; ++e) {
    EXPECT_EQ(loader.state().epoch, e);
    EXPECT_EQ(loader.state().position, 0);
    std::vector<int64_t> seen;
    for (int k = 0; k < 3; ++k) {
      const at::Tensor batch = loader.next();
      for (int64_t j = 0; j < b; ++j) seen.push_back(identify(batch[j]).first);
    }
    // The first 9 entries of this epoch's permutation; the 10th is dropped.
    const auto perm = ddpm::epoch_permutation(n, 42, e);
    EXPECT_EQ(seen, std::vector<int64_t>(perm.begin(), perm.begin() + 9));
    EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 9u);
    epochs.push_back(seen);
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);
  // epoch_permutation is a permutation.
  auto p = ddpm::epoch_permutation(1000, 7, 3);
  std::sort(p.begin(), p.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(p[i], i);
}

TEST(Loader, StreamDependsOnSeedNotOnWorkers) {
  const auto ds = ddpm::make_tensor_dataset(indexed_images(11));
  std::vector<at::Tensor> reference;
  {
    ddpm::DataLoader loader(ds, 4, 123, loader_config(0, true));
    reference = take(loader, 12);
  }
  for (int64_t workers : {1, 2, 5})
    for (int64_t prefetch : {1, 3}) {
      ddpm::DataLoader loader(ds, 4, 123, loader_config(workers, true, prefetch));
      EXPECT_TRUE(same(take(loader, 12), reference)) << workers << " workers, prefetch " << prefetch;
    }
  ddpm::DataLoader other(ds, 4, 124, loader_config(2, true));
  EXPECT_FALSE(same(take(other, 12), reference));
}

TEST(Loader, FlipsFollowTheFlipDecision) {
  const int64_t n = 16;
  const auto images = indexed_images(n);
  for (bool hflip : {false, true}) {
    ddpm::DataLoader loader(ddpm::make_tensor_dataset(images), n, 9, loader_config(2, hflip));
    int flips = 0;
    for (int64_t e = 0; e < 4; ++e) {
      const at::Tensor batch = loader.next();
      const auto perm = ddpm::epoch_permutation(n, 9, e);
      for (int64_t pos = 0; pos < n; ++pos) {
        const auto [index, flipped] = identify(batch[pos]);
        EXPECT_EQ(index, perm[pos]);
        EXPECT_EQ(flipped, hflip && ddpm::flip_decision(9, e, pos)) << e << " " << pos;
        // A flipped sample is exactly the mirror image.
        const at::Tensor original = images[index].to(at::kFloat).div(127.5).sub(1);
        EXPECT_TRUE(batch[pos].equal(flipped ? original.flip({2}) : original));
        flips += flipped;
      }
    }
    if (hflip) {
      EXPECT_GT(flips, 16);  // about half of 64
      EXPECT_LT(flips, 48);
    } else {
      EXPECT_EQ(flips, 0);
    }
  }
}

TEST(Loader, ResumesExactlyFromAState) {
  const auto ds = ddpm::make_tensor_dataset(indexed_images(10));
  ddpm::DataLoader first(ds, 3, 5, loader_config(2, true));
  take(first, 4);  // into the second epoch
  const ddpm::LoaderState saved = first.state();
  EXPECT_EQ(saved.epoch, 1);
  EXPECT_EQ(saved.position, 3);
  const auto following = take(first, 7);

  ddpm::DataLoader resumed(ds, 3, 5, loader_config(3, true), saved);
  EXPECT_EQ(resumed.state().epoch, saved.epoch);
  EXPECT_EQ(resumed.state().position, saved.position);
  EXPECT_TRUE(same(take(resumed, 7), following));

  first.reset(saved);
  EXPECT_TRUE(same(take(first, 7), following));
  ddpm::DataLoader sync(ds, 3, 5, loader_config(0, true), saved);
  EXPECT_TRUE(same(take(sync, 7), following));

  // A bad state is refused, and the loader still works afterwards.
  EXPECT_THROW(first.reset({-1, 0}), std::invalid_argument);
  EXPECT_THROW(first.reset({0, 11}), std::invalid_argument);
  first.reset(saved);
  EXPECT_TRUE(same(take(first, 2), std::vector<at::Tensor>(following.begin(), following.begin() + 2)));
}

TEST(Loader, BatchesLargerThanTheDatasetWrapAcrossEpochs) {
  // 16 images, batch 64: four whole epochs per batch, each reshuffled.
  const auto dir = ddpm::test::make_temp_dir("data-wrap");
  for (int i = 0; i < 16; ++i) {
    auto im = solid(6, 5, {static_cast<uint8_t>(10 * i), 0, 0});
    png(dir + "/img" + std::to_string(100 + i) + ".png", im);
  }
  const auto ds = ddpm::open_dataset(folder_config(dir, 4, 4));
  ddpm::DataLoader loader(ds, 64, 3, loader_config(2));
  EXPECT_EQ(loader.batches_per_epoch(), 0);
  for (int k = 0; k < 2; ++k) {
    const at::Tensor batch = loader.next();
    ASSERT_EQ(batch.sizes(), (std::vector<int64_t>{64, 3, 4, 4}));
    EXPECT_GE(batch.min().item<float>(), -1.f);
    EXPECT_LE(batch.max().item<float>(), 1.f);
    for (int e = 0; e < 4; ++e) {
      std::set<int> values;
      for (int j = 0; j < 16; ++j)
        values.insert(static_cast<int>(std::lround((batch[e * 16 + j][0][0][0].item<float>() + 1) * 127.5)));
      EXPECT_EQ(values.size(), 16u) << "epoch " << e << " of batch " << k;
    }
    EXPECT_EQ(loader.state().epoch, 4 * (k + 1));
  }
  // Not a multiple: 10 images, batch 25 → state moves by 2.5 epochs.
  ddpm::DataLoader odd(ddpm::make_tensor_dataset(indexed_images(10)), 25, 1, loader_config(1));
  odd.next();
  EXPECT_EQ(odd.state().epoch, 2);
  EXPECT_EQ(odd.state().position, 5);
}

TEST(Loader, ShutsDownCleanlyAndReportsErrors) {
  const auto ds = ddpm::make_tensor_dataset(indexed_images(8));
  { ddpm::DataLoader unused(ds, 2, 1, loader_config(4, false, 2)); }  // never read
  {
    ddpm::DataLoader full(ds, 2, 1, loader_config(4, false, 8));
    full.next();  // queue refills while we destroy it
  }
  EXPECT_THROW(ddpm::DataLoader(ds, 0, 1, loader_config(1)), std::invalid_argument);

  // A file removed after opening (no cache): next() reports it, naming the file.
  const auto dir = ddpm::test::make_temp_dir("data-gone");
  png(dir + "/a.png", solid(4, 4, {1, 2, 3}));
  png(dir + "/b.png", solid(4, 4, {4, 5, 6}));
  auto config = folder_config(dir, 4, 4);
  config.cache = false;
  const auto lazy = ddpm::open_dataset(config);
  fs::remove(dir + "/b.png");
  for (int64_t workers : {0, 2}) {
    ddpm::DataLoader loader(lazy, 2, 1, loader_config(workers));
    const auto message = error_of([&] { loader.next(); });
    EXPECT_NE(message.find(dir + "/b.png"), std::string::npos) << "'" << message << "'";
  }
}
