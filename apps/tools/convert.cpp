// ddpm-convert: see interop/convert.hpp for the formats.
#include "tools/tools.hpp"

#include <CLI/CLI.hpp>

#include <iostream>
#include <stdexcept>

#include "tools/common.hpp"
#include "ddpm/interop/convert.hpp"
#include "ddpm/models/unet.hpp"

namespace ddpm::cli {

int convert_main(int argc, char** argv) {
  CLI::App app{
      "ddpm-convert: import pretrained DDPM weights into a libddpm checkpoint, or export one to diffusers.\n"
      "  ddpm-convert SOURCE --out model.pt             (SOURCE: a diffusers UNet2DModel folder, or a\n"
      "                                                  torch.save / .safetensors file in the original layout)\n"
      "  ddpm-convert CHECKPOINT --to diffusers DIR      (config.json, diffusion_pytorch_model.safetensors,\n"
      "                                                  scheduler/scheduler_config.json)"};
  app.name("ddpm-convert");
  std::string source, out, to = "libddpm", from = "auto";
  int64_t image_size = 0;
  bool no_ema = false;
  RuntimeOptions runtime;
  app.add_option("source", source, "Source: diffusers folder, original-layout weights, or libddpm checkpoint")->required();
  app.add_option("--out", out, "Where to write (a checkpoint file; with --to diffusers a folder)")->required();
  app.add_option("--to", to, "Target format: libddpm | diffusers")->capture_default_str()
      ->check(CLI::IsMember({"libddpm", "diffusers"}));
  app.add_option("--from", from, "Source format: auto | original | diffusers | libddpm")->capture_default_str();
  app.add_option("--image-size", image_size,
                 "Original layout: the image size the model was trained at (default: 32 for 4 levels, 256 for 6)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--no-ema", no_ema, "libddpm source: the raw weights instead of the EMA weights");
  add_runtime_options(app, runtime);
  return run_app(app, argc, argv, [&] {
    apply_runtime(runtime);
    interop::ConvertOptions options;
    options.from = interop::parse_source_format(from);
    options.image_size = image_size;
    options.use_ema = !no_ema;
    const interop::Imported m = interop::load_source(source, options);
    if (to == "diffusers") interop::export_diffusers(m.config, *m.model, out);
    else interop::write_checkpoint(m, out);
    int64_t params = 0;  // all of them: a sampling checkpoint's parameters do not require grad
    for (const auto& p : m.model->parameters()) params += p.numel();
    std::cout << "ddpm-convert: " << source << " -> " << out << " (" << to << "), " << params
              << " parameters, " << m.config.model.image_channels << "x" << m.config.model.image_height << "x"
              << m.config.model.image_width << ", sampler " << to_string(m.config.sample.kind) << " variance "
              << to_string(m.config.sample.variance) << (m.config.sample.clip_x0 ? " clip-x0" : "") << "\n";
    return 0;
  });
}

}  // namespace ddpm::cli
