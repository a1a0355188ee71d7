// Importing the original DDPM and diffusers weights, checked against outputs computed by those
// implementations (tests/data/ddpm_ref, made by scripts/make-ddpm-reference.py), and the
// libddpm → diffusers → libddpm round trip.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <fstream>

#include "ddpm/pipeline/config.hpp"
#include "ddpm/interop/ddpm_original.hpp"
#include "ddpm/interop/diffusers.hpp"
#include "interop/diffusers_json.hpp"
#include "io/json.hpp"
#include "ddpm/io/safetensors.hpp"
#include "ddpm/io/torch_file.hpp"
#include "test_util.hpp"

using namespace ddpm;
using namespace ddpm::interop;
using ddpm::test::error_of;

namespace {

std::string ref_path(const std::string& name) { return test::data_dir() + "/ddpm_ref/" + name; }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

at::Tensor eval(UNet& model, const std::map<std::string, at::Tensor>& io) {
  at::NoGradGuard no_grad;
  model->eval();
  return model->forward(io.at("x"), io.at("t"));
}

json::Value shapes_file(const std::string& name) { return json::parse(test::read_string(ref_path("shapes/" + name + ".json"))); }

/// Random tensors with the names and shapes that the reference implementation's model has.
StateDict random_weights(const json::Value& shapes_json) {
  StateDict sd;
  at::manual_seed(5);
  for (const auto& [name, shape] : shapes_json.find("shapes")->members()) {
    std::vector<int64_t> s;
    for (const auto& d : shape.items()) s.push_back(d.as_int64());
    sd[name] = at::randn(s) * 0.02;
  }
  return sd;
}

}  // namespace

TEST(Interop, OriginalLayoutReproducesTheReferenceOutput) {
  const StateDict w = torch_file::read_state_dict(ref_path("original/model.ckpt"));
  const auto io = safetensors::read_file(ref_path("original/io.safetensors")).tensors;
  // 2 levels: the image size is not in the file.
  EXPECT_NE(error_of([&] { original_config(w, 0, "model.ckpt"); }).find("--image-size"), std::string::npos);
  const Config c = original_config(w, 16, "model.ckpt");
  EXPECT_EQ(c.model.base_channels, 32);
  EXPECT_EQ(c.model.channel_mult, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(c.model.num_res_blocks, 1);
  EXPECT_EQ(c.model.attention_resolutions, (std::vector<int64_t>{8}));
  UNet model = import_original(w, c, "model.ckpt");
  const double err = max_abs_diff(eval(model, io), io.at("eps"));
  std::cout << "original layout: max |ours - reference| = " << err << "\n";
  EXPECT_LT(err, 1e-5);
  // The interleaved embedding (libddpm's default) is a different function: the option matters.
  Config wrong = c;
  wrong.model.time_embedding = TimeEmbedding::Interleaved;
  wrong.model.time_freq_shift = 0;
  UNet other = import_original(w, wrong, "model.ckpt");
  EXPECT_GT(max_abs_diff(eval(other, io), io.at("eps")), 1e-3);
}

TEST(Interop, DiffusersReproducesTheReferenceOutput) {
  const Imported im = import_diffusers(ref_path("diffusers"));
  EXPECT_EQ(im.config.model.time_embedding, TimeEmbedding::SinCos);
  EXPECT_EQ(im.config.model.time_freq_shift, 1.0);
  EXPECT_EQ(im.config.sample.variance, Variance::FixedLarge);
  EXPECT_TRUE(im.config.sample.clip_x0);
  EXPECT_EQ(im.config.schedule.kind, "linear");
  const auto io = safetensors::read_file(ref_path("diffusers/io.safetensors")).tensors;
  UNet model = im.model;
  const double err = max_abs_diff(eval(model, io), io.at("eps"));
  std::cout << "diffusers: max |ours - reference| = " << err << "\n";
  EXPECT_LT(err, 1e-5);
}

TEST(Interop, DiffusersExportOfAnImportedModelIsTheSameFileContent) {
  const Imported im = import_diffusers(ref_path("diffusers"));
  const StateDict theirs = safetensors::read_file(ref_path("diffusers/diffusion_pytorch_model.safetensors")).tensors;
  const StateDict ours = export_diffusers_weights(*im.model);
  ASSERT_EQ(ours.size(), theirs.size());
  for (const auto& [k, t] : theirs) {
    ASSERT_TRUE(ours.count(k)) << k;
    EXPECT_TRUE(at::equal(ours.at(k), t)) << k;
  }
  // And our config.json describes the same UNet2DModel.
  const json::Value j = diffusers_unet_json(im.config);
  const json::Value orig = json::parse(test::read_string(ref_path("diffusers/config.json")));
  for (const char* key : {"block_out_channels", "down_block_types", "up_block_types", "layers_per_block", "freq_shift",
                          "flip_sin_to_cos", "norm_eps", "norm_num_groups", "downsample_padding", "sample_size"})
    EXPECT_EQ(json::write(*j.find(key)), json::write(*orig.find(key))) << key;
}

TEST(Interop, Cifar10RoundTripThroughDiffusersIsBitExact) {
  for (TimeEmbedding te : {TimeEmbedding::Interleaved, TimeEmbedding::SinCos}) {
    Config c = config_from_file(test::source_dir() + "/configs/cifar10-32.toml");
    c.model.time_embedding = te;
    c.model.time_freq_shift = te == TimeEmbedding::SinCos ? 1.0 : 0.0;
    c.sample.variance = Variance::FixedLarge;
    c.sample.clip_x0 = true;
    at::manual_seed(11);
    UNet model(c.model);
    EXPECT_EQ(count_parameters(*model), 35746307);
    const std::string dir = test::make_temp_dir("rt") + "/cifar10-diffusers";
    export_diffusers(c, *model, dir);
    const Imported back = import_diffusers(dir);
    EXPECT_EQ(back.config.model.time_embedding, te);
    EXPECT_EQ(back.config.model.channel_mult, c.model.channel_mult);
    EXPECT_EQ(back.config.model.attention_resolutions, c.model.attention_resolutions);
    EXPECT_EQ(back.config.model.dropout, c.model.dropout);
    EXPECT_EQ(back.config.model.norm_eps, c.model.norm_eps);
    EXPECT_EQ(back.config.schedule.beta_end, c.schedule.beta_end);
    EXPECT_EQ(back.config.sample.variance, Variance::FixedLarge);
    EXPECT_TRUE(back.config.sample.clip_x0);
    auto a = model->named_parameters(), b = back.model->named_parameters();
    ASSERT_EQ(a.size(), b.size());
    for (const auto& item : a) EXPECT_TRUE(at::equal(item.value(), b[item.key()])) << item.key();
    const std::map<std::string, at::Tensor> io{{"x", at::randn({1, 3, 32, 32})}, {"t", at::tensor({500})}};
    UNet m2 = back.model;
    EXPECT_TRUE(at::equal(eval(model, io), eval(m2, io)));
  }
}

TEST(Interop, FullSizeArchitecturesAreAccepted) {
  // Names and shapes of the reference implementations' full-size models, random values.
  for (const char* name : {"original-cifar10-32", "original-256", "diffusers-cifar10-32", "diffusers-256"}) {
    const json::Value f = shapes_file(name);
    const int64_t expected = f.find("parameters")->as_int64();
    const StateDict w = random_weights(f);
    const bool diffusers = std::string(name).rfind("diffusers", 0) == 0;
    const Config c = diffusers ? diffusers_config(*f.find("config"), nullptr, name) : original_config(w, 0, name);
    EXPECT_EQ(parameter_count(c.model), expected) << name;
    UNet model = diffusers ? import_diffusers_weights(w, c, name) : import_original(w, c, name);
    EXPECT_EQ(count_parameters(*model), expected) << name;
    std::cout << name << ": " << expected << " parameters, image " << c.model.image_height << "\n";
  }
  EXPECT_EQ(shapes_file("original-cifar10-32").find("parameters")->as_int64(), 35746307);
}

TEST(Interop, WrongKeysAndShapesNameTheKey) {
  const StateDict good = torch_file::read_state_dict(ref_path("original/model.ckpt"));
  const Config c = original_config(good, 16, "m.ckpt");
  {
    StateDict w = good;
    w["extra.weight"] = at::zeros({1});
    EXPECT_NE(error_of([&] { import_original(w, c, "m.ckpt"); }).find("unexpected tensor 'extra.weight'"), std::string::npos);
  }
  {
    StateDict w = good;
    w.erase("mid.attn_1.q.weight");
    const std::string e = error_of([&] { import_original(w, c, "m.ckpt"); });
    EXPECT_NE(e.find("missing tensor 'mid.attn_1.q.weight'"), std::string::npos) << e;
    EXPECT_NE(e.find("m.ckpt"), std::string::npos) << e;
  }
  {
    StateDict w = good;
    w["up.0.block.1.conv2.weight"] = at::zeros({32, 32, 3, 1});
    EXPECT_NE(error_of([&] { import_original(w, c, "m.ckpt"); }).find("'up.0.block.1.conv2.weight' has shape"),
              std::string::npos);
  }
  {
    StateDict w = good;
    w.erase("conv_in.weight");
    EXPECT_NE(error_of([&] { original_config(w, 16, "m.ckpt"); }).find("conv_in.weight"), std::string::npos);
  }
}

TEST(Interop, UnsupportedDiffusersConfigsNameTheKey) {
  const json::Value orig = json::parse(test::read_string(ref_path("diffusers/config.json")));
  auto with = [&](const std::string& key, const std::string& value_json) {
    json::Value j = json::Value::object();
    for (const auto& [k, v] : orig.members())
      if (k != key) j.set(k, v);
    j.set(key, json::parse(value_json));
    return error_of([&] { diffusers_config(j, nullptr, "config.json"); });
  };
  EXPECT_NE(with("downsample_padding", "1").find("downsample_padding"), std::string::npos);
  EXPECT_NE(with("time_embedding_type", "\"fourier\"").find("time_embedding_type"), std::string::npos);
  EXPECT_NE(with("class_embed_type", "\"timestep\"").find("class_embed_type"), std::string::npos);
  EXPECT_NE(with("down_block_types", "[\"DownBlock2D\", \"CrossAttnDownBlock2D\"]").find("CrossAttnDownBlock2D"),
            std::string::npos);
  EXPECT_NE(with("something_new", "1").find("something_new"), std::string::npos);
  EXPECT_NE(with("out_channels", "5").find("out_channels"), std::string::npos);
}

TEST(Interop, TimeEmbeddingOptionIsKeptInTheConfig) {
  Config c;
  c.model.time_embedding = TimeEmbedding::CosSin;
  c.model.time_freq_shift = 1.0;
  const std::string toml = config_to_toml(c);
  EXPECT_NE(toml.find("time-embedding = \"cos-sin\""), std::string::npos) << toml;
  const Config back = config_from_toml(toml);
  EXPECT_EQ(back.model.time_embedding, TimeEmbedding::CosSin);
  EXPECT_EQ(back.model.time_freq_shift, 1.0);
  // A config written before the option existed (no such keys) keeps libddpm's own embedding.
  const Config old = config_from_toml("base-channels = 64\n");
  EXPECT_EQ(old.model.time_embedding, TimeEmbedding::Interleaved);
  EXPECT_EQ(old.model.time_freq_shift, 0.0);
  EXPECT_NE(error_of([] { config_from_toml("time-embedding = \"sideways\"\n"); }).find("time-embedding"), std::string::npos);
  // sin-cos with shift 1 is the closed form [sin(t·f_i) | cos(t·f_i)], f_i = 10⁴^(−i/(half−1)).
  const at::Tensor t = at::tensor({0, 7, 999});
  const at::Tensor e = timestep_embedding(t, 8, TimeEmbedding::SinCos, 1.0);
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t i = 0; i < 4; ++i) {
      const double arg = static_cast<double>(t[b].item<int64_t>()) * std::pow(1e4, -static_cast<double>(i) / 3.0);
      EXPECT_NEAR(e[b][i].item<float>(), std::sin(arg), 2e-4);
      EXPECT_NEAR(e[b][4 + i].item<float>(), std::cos(arg), 2e-4);
    }
}

TEST(Interop, InterleavedExportIsTheSameFunctionInDiffusersLayout) {
  // Without the _libddpm hint, the exported weights read as diffusers' [sin | cos], shift 0: the
  // permuted first time-MLP layer must make that the same network.
  Config c;
  c.image_size = "16";
  c.channels = 3;
  c.model.base_channels = 32;
  c.model.channel_mult = {1, 2};
  c.model.num_res_blocks = 1;
  c.model.attention_resolutions = {8};
  c.resolve();
  at::manual_seed(21);
  UNet model(c.model);
  {
    // The initialisation zeroes the output conv (scale 1e-10): perturb every weight so the
    // time embedding reaches the output.
    at::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(at::randn_like(p) * 0.05);
  }
  Config as_diffusers = c;
  as_diffusers.model.time_embedding = TimeEmbedding::SinCos;
  UNet other = import_diffusers_weights(export_diffusers_weights(*model), as_diffusers, "exported");
  const std::map<std::string, at::Tensor> io{{"x", at::randn({2, 3, 16, 16})}, {"t", at::tensor({5, 900})}};
  const double err = max_abs_diff(eval(model, io), eval(other, io));
  std::cout << "interleaved vs exported sin-cos: max diff " << err << "\n";
  EXPECT_LT(err, 1e-5);
}
