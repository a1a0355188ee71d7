// Feature networks and image sets: a TorchScript module built here (none can be downloaded),
// the small classifier trained on separable synthetic data, PNG grids cut back into images,
// IDX label files, sampled sets' batch invariance.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>

#include <fstream>
#include <string>
#include <vector>

#include "ddpm/data/dataset.hpp"
#include "ddpm/data/image.hpp"
#include "ddpm/eval/classifier.hpp"
#include "ddpm/eval/features.hpp"
#include "ddpm/eval/image_set.hpp"
#include "ddpm/eval/stats.hpp"
#include "test_util.hpp"

using namespace ddpm::eval;
using ddpm::test::error_of;

namespace {

// A TorchScript module with NVIDIA Inception's calling convention: forward(img, return_features)
// on uint8 [N, 3, H, W]; "features" are the per-channel means and maxima (6-d).
std::string save_script(const std::string& dir, const std::string& name, const std::string& source) {
  torch::jit::Module m("Features");
  m.define(source);
  const std::string path = dir + "/" + name;
  m.save(path);
  return path;
}

const char* kFeaturesSource = R"(
def forward(self, img, return_features: bool = False):
    x = img.float()
    if return_features:
        return torch.cat([x.mean([2, 3]), x.amax([2, 3])], 1)
    return x.sum()
)";

at::Tensor random_images(int64_t n, int64_t c, int64_t h, int64_t w, int seed) {
  at::manual_seed(seed);
  return at::randint(0, 256, {n, c, h, w}, at::kByte);
}

bool one_line_with(const std::string& message, const std::string& part) {
  return message.find(part) != std::string::npos && message.find('\n') == std::string::npos;
}

}  // namespace

TEST(ScriptFeatures, CallsForwardWithReturnFeaturesOnRgbUint8) {
  const std::string dir = ddpm::test::make_temp_dir("eval_script");
  const std::string path = save_script(dir, "f.pt", kFeaturesSource);
  auto net = load_feature_network(path, {});
  at::Tensor gray = random_images(5, 1, 6, 6, 1);
  at::Tensor f = net->features(gray);
  ASSERT_EQ(f.sizes(), (std::vector<int64_t>{5, 6}));
  // Gray repeated to 3 channels: the three channel means are the gray mean.
  at::Tensor mean = gray.to(at::kFloat).mean({2, 3});
  for (int c = 0; c < 3; ++c) EXPECT_TRUE(at::allclose(f.select(1, c), mean.squeeze(1)));
  EXPECT_TRUE(at::equal(f.select(1, 3), gray.to(at::kFloat).amax({2, 3}).squeeze(1)));
  EXPECT_NE(net->describe().find("TorchScript '" + path + "'"), std::string::npos) << net->describe();
  EXPECT_NE(net->describe().find("6-d"), std::string::npos) << net->describe();

  // "signed" input maps 0..255 to [−1, 1]; resize 12 upsamples first.
  ScriptOptions opt;
  opt.input = ScriptInput::Signed;
  opt.resize = 12;
  auto signed_net = load_torchscript_features(path, opt);
  at::Tensor constant = at::full({2, 3, 6, 6}, 255, at::kByte);
  at::Tensor s = signed_net->features(constant);
  EXPECT_TRUE(at::allclose(s, at::ones({2, 6})));
}

TEST(ScriptFeatures, WrongOutputsAreOneLineErrors) {
  const std::string dir = ddpm::test::make_temp_dir("eval_script_bad");
  at::Tensor images = random_images(4, 3, 5, 5, 2);
  auto error_for = [&](const std::string& name, const std::string& source) {
    auto net = load_feature_network("torchscript:" + save_script(dir, name, source), {});
    return error_of([&] { net->features(images); });
  };
  EXPECT_TRUE(one_line_with(error_for("maps.pt", "def forward(self, x):\n    return x.float()\n"),
                            "forward returned [4, 3, 5, 5]"));
  EXPECT_TRUE(one_line_with(error_for("int.pt", "def forward(self, x):\n    return x.sum([2, 3])\n"),
                            "expected floating features [N, D]"));
  EXPECT_TRUE(one_line_with(error_for("rows.pt", "def forward(self, x):\n    return x.float().mean([2, 3])[:2]\n"),
                            "for 4 images"));
  EXPECT_TRUE(one_line_with(error_for("tuple.pt", "def forward(self, x):\n    return (x, x)\n"), "expected a tensor"));
  EXPECT_TRUE(one_line_with(error_for("throws.pt", "def forward(self, x):\n    return x.float().view(7, -1)\n"),
                            "forward failed"));
  // Not TorchScript at all.
  std::ofstream(dir + "/junk.pt") << "junk";
  EXPECT_TRUE(one_line_with(error_of([&] { load_feature_network(dir + "/junk.pt", {}); }), "cannot load"));
  EXPECT_TRUE(one_line_with(error_of([&] { load_feature_network(dir + "/missing.pt", {}); }), "cannot open"));
  EXPECT_TRUE(one_line_with(error_of([&] { load_feature_network("classifier:" + dir + "/junk.pt", {}); }),
                            "not a libddpm classifier"));
}

TEST(Classifier, LearnsSeparableClassesAndRoundTrips) {
  // Three classes of 8×8 images: bright top half, bright left half, dark; plus noise.
  at::manual_seed(3);
  const int64_t n = 600;
  at::Tensor labels = at::randint(0, 3, {n}, at::kLong);
  at::Tensor images = at::randint(0, 60, {n, 1, 8, 8}, at::kLong);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = labels[i].item<int64_t>();
    if (y == 0) images[i].narrow(1, 0, 4).add_(180);
    if (y == 1) images[i].narrow(2, 0, 4).add_(180);
  }
  images = images.to(at::kByte);
  ClassifierConfig config;
  config.height = config.width = 8;
  config.classes = 3;
  config.width1 = 4;
  config.width2 = 8;
  config.hidden = 16;
  Classifier model(config);
  FitOptions opt;
  opt.epochs = 3;
  opt.batch_size = 32;
  FitReport report = fit_classifier(model, images.narrow(0, 0, 500), labels.narrow(0, 0, 500),
                                    images.narrow(0, 500, 100), labels.narrow(0, 500, 100), opt);
  EXPECT_GT(report.test_accuracy, 0.95);
  EXPECT_EQ(report.train_count, 500);
  EXPECT_EQ(report.test_count, 100);

  const std::string dir = ddpm::test::make_temp_dir("eval_classifier");
  save_classifier(dir + "/clf.pt", model, report.test_accuracy);
  EXPECT_TRUE(is_classifier_file(dir + "/clf.pt"));
  auto net = load_feature_network(dir + "/clf.pt", {});  // auto-detected
  at::Tensor f = net->features(images.narrow(0, 0, 10));
  ASSERT_EQ(f.sizes(), (std::vector<int64_t>{10, 16}));
  c10::InferenceMode guard;
  model->eval();
  EXPECT_TRUE(at::allclose(f, model->features(images.narrow(0, 0, 10).to(at::kFloat) / 127.5 - 1.0)));
  EXPECT_NE(net->describe().find("16-d"), std::string::npos) << net->describe();
  // Images of another size: one line.
  EXPECT_TRUE(one_line_with(error_of([&] { net->features(random_images(2, 1, 28, 28, 4)); }), "1×8×8"));
  EXPECT_TRUE(one_line_with(error_of([&] {
                              Classifier m(config);
                              fit_classifier(m, images, labels.narrow(0, 0, 10), images, labels, opt);
                            }),
                            "10 labels for 600 images"));
}

TEST(ImageSets, GridIsCutBackIntoItsImages) {
  const std::string dir = ddpm::test::make_temp_dir("eval_grid");
  for (int64_t channels : {1, 3}) {
    at::Tensor images = random_images(10, channels, 7, 5, 5);
    // make_grid takes [−1, 1]: exact for uint8 values through x / 127.5 − 1.
    ddpm::save_png(dir + "/g.png", ddpm::make_grid(images.to(at::kFloat) / 127.5 - 1.0, 4, 2));
    GridLayout layout;
    layout.cols = 4;
    layout.rows = 3;
    layout.count = 10;
    auto set = open_image_set("grid:" + dir + "/g.png", layout);
    ASSERT_EQ(set->size(), 10);
    EXPECT_EQ(set->channels(), channels);
    EXPECT_TRUE(at::equal(set->batch(0, 10), images));
    // Wrong layouts: one line each.
    layout.cols = 3;
    EXPECT_TRUE(one_line_with(error_of([&] { open_image_set("grid:" + dir + "/g.png", layout); }), "does not fit"));
    layout.cols = 4;
    layout.rows = 0;  // square cells assumed: 5 wide, but 7 high
    EXPECT_TRUE(one_line_with(error_of([&] { open_image_set("grid:" + dir + "/g.png", layout); }), "--grid-rows"));
  }
  // Square cells: rows found from the height.
  at::Tensor sq = random_images(16, 1, 6, 6, 6);
  ddpm::save_png(dir + "/s.png", ddpm::make_grid(sq.to(at::kFloat) / 127.5 - 1.0, 8, 2));
  auto set = open_image_set("grid:" + dir + "/s.png", GridLayout{});
  EXPECT_TRUE(at::equal(set->batch(0, 16), sq));
}

TEST(ImageSets, IdxImagesAndLabels) {
  const std::string dir = ddpm::test::make_temp_dir("eval_idx");
  std::vector<uint8_t> labels = {0, 0, 8, 1, 0, 0, 0, 4, 3, 1, 4, 1};
  ddpm::test::write_bytes(dir + "/labels.idx", labels);
  at::Tensor l = ddpm::read_idx_labels(dir + "/labels.idx");
  EXPECT_TRUE(at::equal(l, at::tensor({3, 1, 4, 1}, at::kLong)));
  labels.pop_back();
  ddpm::test::write_bytes(dir + "/short.idx", labels);
  EXPECT_TRUE(one_line_with(error_of([&] { ddpm::read_idx_labels(dir + "/short.idx"); }), "expected 12"));
  std::vector<uint8_t> images = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1, 10, 20, 30, 40};
  ddpm::test::write_bytes(dir + "/images.idx", images);
  EXPECT_TRUE(one_line_with(error_of([&] { ddpm::read_idx_labels(dir + "/images.idx"); }), "expected 1 (labels)"));
  auto set = open_image_set("idx:" + dir + "/images.idx", {}, 3);
  EXPECT_EQ(set->channels(), 3);
  EXPECT_TRUE(at::equal(set->batch(1, 1), at::tensor({30, 40, 30, 40, 30, 40}, at::kByte).view({1, 3, 2, 1})));
  EXPECT_TRUE(one_line_with(error_of([&] { open_image_set(dir + "/empty-folder-that-is-missing"); }), "missing"));
}

TEST(ImageSets, FeaturesOfASetAgainstItselfGiveZeroDistance) {
  const std::string dir = ddpm::test::make_temp_dir("eval_same");
  auto net = load_feature_network(save_script(dir, "f.pt", kFeaturesSource), {});
  auto set = tensor_image_set(random_images(40, 3, 4, 4, 7), "random");
  at::Tensor a = compute_features(*net, *set, 7), b = compute_features(*net, *set, 40);
  EXPECT_TRUE(at::equal(a, b));  // batching does not change the features
  EXPECT_NEAR(frechet_distance(compute_stats(a), compute_stats(b)), 0.0, 1e-9);
}

TEST(ImageSets, ToUint8MatchesMakeGridRounding) {
  at::Tensor x = at::tensor({-1.0f, -0.999f, 0.0f, 0.5f, 1.0f, 2.0f, NAN}).view({1, 1, 1, 7});
  at::Tensor grid = ddpm::tensor_from_image(ddpm::make_grid(x, 1, 0));
  EXPECT_TRUE(at::equal(to_uint8_images(x)[0], grid));
}
