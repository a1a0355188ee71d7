// The Evaluator (eval/evaluator.hpp): its numbers are those of the metric functions on the
// sets' features, a statistics reference gives the same FID, and ddpm-eval compare --json
// writes exactly its result.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdio>
#include <string>

#include "ddpm/eval/evaluator.hpp"
#include "ddpm/eval/stats_file.hpp"
#include "io/json.hpp"
#include "test_util.hpp"

using namespace ddpm;
using namespace ddpm::eval;

namespace {

// A TorchScript feature network (NVIDIA Inception's calling convention, called on the gray
// images repeated to 3 channels): 6-d features of the first channel, the means of the image,
// its top half, its left half and its bottom-right quarter, its standard deviation and maximum.
std::string save_features(const std::string& dir) {
  torch::jit::Module m("Features");
  m.define(R"(
def forward(self, img, return_features: bool = False):
    x = img.float()[:, 0]
    if return_features:
        return torch.stack([x.mean([1, 2]), x[:, :4].mean([1, 2]), x[:, :, :4].mean([1, 2]),
                            x[:, 4:, 4:].mean([1, 2]), x.std([1, 2]), x.amax([1, 2])], 1)
    return x.sum()
)");
  const std::string path = dir + "/features.pt";
  m.save(path);
  return path;
}

class EvaluatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = ddpm::test::make_temp_dir("ddpm-evaluator");
    features = save_features(dir);
    ddpm::test::write_idx_pair(dir + "/real.idx", "", 60, 1);
    ddpm::test::write_idx_pair(dir + "/fake.idx", "", 40, 2);
  }
  std::string dir, features;
};

TEST_F(EvaluatorTest, NumbersAreTheMetricsOfTheFeatures) {
  EvalOptions options;
  options.kid_options.subset_size = 20;
  options.kid_options.subsets = 7;
  options.pr_k = 2;
  options.batch_size = 16;
  Evaluator evaluator(load_feature_network(features, {}), options);
  auto real = open_image_set("idx:" + dir + "/real.idx");
  auto fake = open_image_set("idx:" + dir + "/fake.idx");
  evaluator.reference_from_images(*real);
  const EvalResult r = evaluator.compare(*fake);

  auto net = load_feature_network(features, {});
  const at::Tensor fr = compute_features(*net, *real), ff = compute_features(*net, *fake);
  ASSERT_TRUE(at::equal(fr, evaluator.reference().features));
  ASSERT_TRUE(r.fid && r.kid && r.pr);
  EXPECT_DOUBLE_EQ(*r.fid, frechet_distance(compute_stats(fr), compute_stats(ff)));
  EXPECT_GT(*r.fid, 0.0);
  const KidResult kid = kernel_inception_distance(fr, ff, options.kid_options);
  EXPECT_DOUBLE_EQ(r.kid->mean, kid.mean);
  EXPECT_DOUBLE_EQ(r.kid->std, kid.std);
  EXPECT_EQ(r.kid->subset_size, 20);
  const PrecisionRecall pr = precision_recall(fr, ff, 2);
  EXPECT_DOUBLE_EQ(r.pr->precision, pr.precision);
  EXPECT_DOUBLE_EQ(r.pr->recall, pr.recall);
  EXPECT_EQ(r.n_real, 60);
  EXPECT_EQ(r.n_fake, 40);
  EXPECT_EQ(r.real, real->describe());
  EXPECT_EQ(r.fake, fake->describe());

  // The JSON: the same numbers (6 significant digits), in ddpm-eval's order.
  const json::Value v = json::parse(r.to_json());
  std::string keys;
  for (const auto& [key, value] : v.members()) keys += key + " ";
  EXPECT_EQ(keys, "features real fake n_real n_fake fid kid kid_std kid_subset_size precision recall pr_k ");
  EXPECT_NEAR(v.find("fid")->as_double(), *r.fid, 1e-5 * *r.fid);
  EXPECT_EQ(v.find("n_real")->as_int64(), 60);
  EXPECT_EQ(v.find("pr_k")->as_int64(), 2);

  // Statistics of the same reference: the same FID; KID and precision/recall need features.
  write_stats_npz(dir + "/real.npz", evaluator.reference().stats);
  Evaluator from_stats(load_feature_network(features, {}), options);
  from_stats.reference_from_stats(dir + "/real.npz");
  const EvalResult s = from_stats.compare(*fake);
  ASSERT_TRUE(s.fid);
  EXPECT_NEAR(*s.fid, *r.fid, 1e-9 * (1 + *r.fid));
  EXPECT_FALSE(s.kid || s.pr);
  EXPECT_EQ(s.n_real, 60);
  EXPECT_EQ(s.real.rfind("statistics '" + dir + "/real.npz' (60 images", 0), 0u) << s.real;
}

TEST_F(EvaluatorTest, ReferenceOfAnotherDimensionIsNamed) {
  Evaluator evaluator(load_feature_network(features, {}));
  evaluator.reference_from_images(*open_image_set("idx:" + dir + "/real.idx"));
  const std::string e = ddpm::test::error_of([&] { evaluator.compare(at::zeros({5, 4}), "four", "--real ref"); });
  EXPECT_NE(e.find("--real ref"), std::string::npos) << e;
  EXPECT_NE(e.find("statistics are 6-d but the features are 4-d"), std::string::npos) << e;
}

// ddpm-eval compare --json writes the Evaluator's result, laid out as it always was.
TEST_F(EvaluatorTest, DdpmEvalJsonIsTheResult) {
  const std::string out = dir + "/out.json";
  auto run = ddpm::test::run_command(ddpm::test::bin_dir() + "ddpm-eval compare --real idx:" + dir +
                                     "/real.idx --fake idx:" + dir + "/fake.idx --features " + features +
                                     " --kid-subset-size 20 --kid-subsets 7 --pr-k 2 --threads 1 --device cpu"
                                     " --json " + out);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EvalOptions options;
  options.kid_options.subset_size = 20;
  options.kid_options.subsets = 7;
  options.pr_k = 2;
  Evaluator evaluator(load_feature_network(features, {}), options);
  evaluator.reference_from_images(*open_image_set("idx:" + dir + "/real.idx"));
  const EvalResult r = evaluator.compare(*open_image_set("idx:" + dir + "/fake.idx"));
  const std::string written = ddpm::test::read_string(out);
  EXPECT_EQ(written, r.to_json() + "\n");
  EXPECT_EQ(written.rfind("{\"features\": \"", 0), 0u) << written;
  EXPECT_NE(written.find("\"n_real\": 60, \"n_fake\": 40, \"fid\": "), std::string::npos) << written;
  char fid[40];
  std::snprintf(fid, sizeof fid, "FID %.4f\n", *r.fid);
  EXPECT_NE(run.output.find(fid), std::string::npos) << run.output;
}

}  // namespace
