// Class-conditional training end to end: labels in the data (IDX file, class folders) with
// their one-line errors, the classes in the config, and a tiny model trained here on two
// classes that differ visibly (bright left half vs bright right half) that must draw the
// requested class.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "ddpm/data/dataset.hpp"
#include "ddpm/data/image.hpp"
#include "ddpm/eval/image_set.hpp"
#include "ddpm/runtime.hpp"
#include "ddpm/samplers/steering.hpp"
#include "ddpm/pipeline/config.hpp"
#include "ddpm/train/trainer.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace {

// n images of 8×8: class 0 bright on the left half, class 1 on the right; a little noise.
at::Tensor halves(int64_t n, const at::Tensor& labels) {
  at::Tensor x = at::full({n, 1, 8, 8}, 40.0, at::kFloat);
  for (int64_t i = 0; i < n; ++i) x[i].narrow(2, labels[i].item<int64_t>() == 0 ? 0 : 4, 4).fill_(215.0);
  x = x + at::randn({n, 1, 8, 8}) * 15.0;
  return x.round().clamp(0, 255).to(at::kByte);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<uint8_t> idx_labels(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> b{0, 0, 8, 1, 0, 0, 0, static_cast<uint8_t>(labels.size())};
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

TEST(Labels, CountsRangesAndEmptyClassesAreOneLineErrors) {
  auto d = ddpm::make_tensor_dataset(at::zeros({4, 1, 8, 8}, at::kByte));
  EXPECT_NE(error_of([&] { d->set_labels(at::tensor({0, 1, 1}, at::kLong), 0, {}, "--labels 'x'"); })
                .find("--labels 'x': 3 labels for 4 images"),
            std::string::npos);
  EXPECT_NE(error_of([&] { d->set_labels(at::tensor({0, 1, 2, 1}, at::kLong), 2, {}, "--labels 'x'"); })
                .find("label 2 is out of range [0, 2)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { d->set_labels(at::tensor({0, 2, 2, 0}, at::kLong), 0, {}, "--labels 'x'"); })
                .find("class 1 has no images"),
            std::string::npos);
  d->set_labels(at::tensor({0, 2, 1, 0}, at::kLong), 0, {}, "--labels 'x'");
  EXPECT_EQ(d->num_classes(), 3);

  // From an IDX labels file, through open_dataset.
  const std::string dir = ddpm::test::make_temp_dir("labels-idx");
  for (int i = 0; i < 3; ++i) {
    ddpm::Image im;
    im.width = im.height = 8;
    im.channels = 1;
    im.pixels.assign(64, static_cast<uint8_t>(i * 50));
    fs::create_directories(dir + "/img");
    ddpm::save_png(dir + "/img/" + std::to_string(i) + ".png", im);
  }
  ddpm::test::write_bytes(dir + "/good-labels", idx_labels({1, 0, 1}));
  ddpm::test::write_bytes(dir + "/short-labels", idx_labels({1, 0}));
  ddpm::DataConfig c;
  c.source = dir + "/img";
  c.workers = 0;
  c.labels = "idx:" + dir + "/good-labels";
  auto ds = ddpm::open_dataset(c);
  EXPECT_TRUE(at::equal(ds->labels(), at::tensor({1, 0, 1}, at::kLong)));
  c.labels = "idx:" + dir + "/short-labels";
  const std::string e = error_of([&] { ddpm::open_dataset(c); });
  EXPECT_NE(e.find("2 labels for 3 images"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  c.labels = dir + "/missing";
  EXPECT_NE(error_of([&] { ddpm::open_dataset(c); }).find("no such file"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Labels, ClassFoldersAreSortedNamesAndGoIntoTheConfig) {
  const std::string dir = ddpm::test::make_temp_dir("labels-folders");
  auto put = [&](const std::string& rel) {
    ddpm::Image im;
    im.width = im.height = 8;
    im.channels = 1;
    im.pixels.assign(64, 100);
    fs::create_directories(fs::path(dir + "/" + rel).parent_path());
    ddpm::save_png(dir + "/" + rel, im);
  };
  put("sneaker/a.png");
  put("boot/b.png");
  put("boot/deeper/c.png");  // deeper files belong to their first-level folder
  ddpm::DataConfig dc;
  dc.source = dir;
  dc.workers = 0;
  dc.class_folders = true;
  auto ds = ddpm::open_dataset(dc);  // files sorted: boot/b, boot/deeper/c, sneaker/a
  EXPECT_EQ(ds->class_names(), (std::vector<std::string>{"boot", "sneaker"}));
  EXPECT_TRUE(at::equal(ds->labels(), at::tensor({0, 0, 1}, at::kLong)));

  ddpm::Config config;
  config.set_classes(*ds);
  EXPECT_EQ(config.model.num_classes, 2);
  EXPECT_EQ(config.model.class_names, ds->class_names());
  // Stored in the TOML the checkpoint keeps.
  const ddpm::Config back = ddpm::config_from_toml(ddpm::config_to_toml(config));
  EXPECT_EQ(back.model.num_classes, 2);
  EXPECT_EQ(back.model.class_names, ds->class_names());
  ddpm::Config wrong;
  wrong.model.num_classes = 3;
  EXPECT_NE(error_of([&] { wrong.set_classes(*ds); }).find("num-classes: 3, but the labels have 2 classes"),
            std::string::npos);
  ddpm::Config unlabelled;
  unlabelled.model.num_classes = 2;
  EXPECT_NE(error_of([&] { unlabelled.set_classes(*ddpm::make_tensor_dataset(at::zeros({2, 1, 8, 8}, at::kByte))); })
                .find("the data has no labels"),
            std::string::npos);

  fs::create_directories(dir + "/empty");
  EXPECT_NE(error_of([&] { ddpm::open_dataset(dc); }).find("class 1 ('empty') has no images"), std::string::npos);
  fs::remove_all(dir + "/empty");
  put("stray.png");
  EXPECT_NE(error_of([&] { ddpm::open_dataset(dc); }).find("is not inside a class folder"), std::string::npos);
  dc.labels = "idx:x";
  EXPECT_NE(error_of([&] { dc.validate(); }).find("not both"), std::string::npos);
  fs::remove_all(dir);
}

// A few hundred steps of the tiny U-Net (seconds on a CPU) learn the two halves well enough
// that the class asked for is drawn in >= 90% of the images, with and without guidance.
TEST(ConditionalTraining, TinyModelDrawsTheRequestedClass) {
  ddpm::set_threads(2);
  at::manual_seed(0);
  const int64_t n = 64;
  const at::Tensor labels = at::arange(n, at::kLong) % 2;
  auto data = ddpm::make_tensor_dataset(halves(n, labels), "halves");
  data->set_labels(labels, 0, {}, "test");

  ddpm::Config c = ddpm::config_from_file(ddpm::test::source_dir() + "/configs/tiny.toml");
  c.set_shape(1, 8, 8);
  c.set_classes(*data);
  ASSERT_EQ(c.model.num_classes, 2);
  c.model.attention_resolutions = {};
  c.train.steps = 300;
  c.train.batch_size = 16;
  c.train.lr = 2e-3;
  c.train.ema_decay = 0.99;
  c.train.cond_drop = 0.1;
  c.train.log_every = 1000;
  c.data.workers = 0;
  c.train.run_dir = ddpm::test::make_temp_dir("cond-train");
  ddpm::TrainerOptions o;
  o.write_files = false;
  ddpm::Trainer trainer(c, data, c10::kCPU, o);
  trainer.fit();

  ddpm::UNet model = trainer.ema_model();
  model->eval();
  const ddpm::ConditionalDenoiser net = [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& l) {
    at::NoGradGuard g;
    return model->forward(x, t, l);
  };
  ddpm::SamplerConfig s;
  s.kind = ddpm::SamplerKind::Ddim;
  s.steps = 20;
  s.seed = 1;
  const int64_t m = 40;
  for (double w : {-1.0, 2.0}) {  // −1: plain conditional
    for (int64_t cls : {0, 1}) {
      const at::Tensor want = at::full({m}, cls, at::kLong);
      const ddpm::Denoiser d = w < 0 ? ddpm::with_labels(net, want) : ddpm::classifier_free_guidance(net, want, w);
      const at::Tensor x = ddpm::sample(trainer.schedule(), d, s, m, 1, 8, 8);
      const at::Tensor left = x.narrow(3, 0, 4).reshape({m, -1}).mean(1), right = x.narrow(3, 4, 4).reshape({m, -1}).mean(1);
      const int64_t hits = (cls == 0 ? left > right : right > left).sum().item<int64_t>();
      std::printf("class %lld, guidance %g: %lld of %lld images of the class\n", static_cast<long long>(cls), w,
                  static_cast<long long>(hits), static_cast<long long>(m));
      EXPECT_GE(hits, m * 9 / 10) << "class " << cls << ", guidance " << w;
    }
  }

  // ddpm-eval's sampled sets (and the trainer's evaluations) draw every class equally: image k
  // asks for class k mod K, whatever the batching.
  EXPECT_TRUE(at::equal(ddpm::balanced_labels(3, 4, 5), at::tensor({1, 2, 0, 1, 2}, at::kLong)));
  const ddpm::LoadedModel loaded{c, model, trainer.schedule(), c.train.steps, true, "(in memory)"};
  for (double w : {0.0, 2.0}) {
    ddpm::Guidance g;
    g.weight = w;
    auto set = ddpm::eval::sampled_image_set(loaded, s, m, nullptr, g);
    EXPECT_NE(set->describe().find(w > 0 ? "2 classes equally, guidance 2" : "2 classes equally"), std::string::npos)
        << set->describe();
    const at::Tensor split = at::cat({set->batch(0, 15), set->batch(15, m - 15)});
    EXPECT_TRUE(at::equal(split, set->batch(0, m))) << "guidance " << w;
    const at::Tensor x = split.to(at::kFloat);
    const at::Tensor left = x.narrow(3, 0, 4).reshape({m, -1}).mean(1), right = x.narrow(3, 4, 4).reshape({m, -1}).mean(1);
    const at::Tensor want_left = at::arange(m, at::kLong).remainder(2) == 0;
    const int64_t hits = ((left > right) == want_left).sum().item<int64_t>();
    std::printf("sampled set, guidance %g: %lld of %lld images of class k mod 2\n", w, static_cast<long long>(hits),
                static_cast<long long>(m));
    EXPECT_GE(hits, m * 9 / 10) << "guidance " << w;
  }
  // Guidance needs a class-conditional model.
  ddpm::Config unconditional = c;
  unconditional.model.num_classes = 0;
  unconditional.model.class_names.clear();
  const ddpm::LoadedModel plain{unconditional, model, trainer.schedule(), c.train.steps, true, "(in memory)"};
  ddpm::Guidance one;
  one.weight = 1.0;
  EXPECT_NE(error_of([&] { ddpm::eval::sampled_image_set(plain, s, m, nullptr, one); })
                .find("--guidance: the checkpoint's model is unconditional"),
            std::string::npos);
  fs::remove_all(c.train.run_dir);
}

}  // namespace
