// libddpm from another CMake project (find_package(ddpm) + ddpm::ddpm): train a tiny model
// for a few steps, reload it from its run directory as ddpm-sample would, sample, save a grid.
// This file is also docs/library.md's C++ example, and CTest's install_consumer test runs it.
#include <ddpm/ddpm.hpp>

#include <ATen/ATen.h>

#include <iostream>

int main() {
  ddpm::set_threads(0);  // all cores

  // 64 images of 16×16: a bright 6×6 square at a different place on each.
  at::Tensor images = at::zeros({64, 1, 16, 16}, at::kByte);
  for (int64_t k = 0; k < 64; ++k)
    images[k].narrow(1, k % 10, 6).narrow(2, (k / 10) % 10, 6).fill_(255);
  auto dataset = ddpm::make_tensor_dataset(images, "squares");

  ddpm::Config config;
  config.model.base_channels = 16;
  config.model.channel_mult = {1, 2};
  config.model.num_res_blocks = 1;
  config.model.attention_resolutions = {8};
  config.model.groups = 8;
  config.model.dropout = 0.0;
  config.schedule.kind = "cosine";
  config.schedule.timesteps = 100;
  config.train.steps = 20;
  config.train.batch_size = 16;
  config.train.lr = 1e-3;
  config.train.run_dir = "consumer-run";
  config.set_shape(/*channels=*/1, /*height=*/16, /*width=*/16);

  ddpm::Trainer trainer(config, dataset);
  trainer.fit();  // consumer-run/: config.toml, checkpoints/, metrics.jsonl

  // Everything needed to sample comes from the checkpoint.
  ddpm::LoadedModel loaded = ddpm::load_model_for_sampling("consumer-run");
  ddpm::SamplerConfig sampler;
  sampler.kind = ddpm::SamplerKind::Ddim;
  sampler.steps = 20;
  sampler.prediction = loaded.config.train.prediction;
  ddpm::Denoiser denoiser = [&](const at::Tensor& x_t, const at::Tensor& t) { return loaded.model->forward(x_t, t); };
  at::Tensor x = ddpm::sample(loaded.schedule, denoiser, sampler, /*n=*/16, 1, 16, 16);

  ddpm::save_png("consumer-grid.png", ddpm::make_grid(x, /*nrow=*/4));
  std::cout << "libddpm " << ddpm::version() << ": trained " << loaded.step << " steps, wrote consumer-grid.png\n";
  return loaded.step == 20 && x.size(0) == 16 ? 0 : 1;
}
