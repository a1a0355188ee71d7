#include "cli/options_data.hpp"

namespace ddpm::cli {

void add_data_options(CLI::App& app, DataConfig& config) {
  app.add_option("--data", config.source,
                 "Training images: a folder (recursive; PNG, JPEG, BMP, TGA, GIF) or idx:PATH for an "
                 "MNIST-family IDX images file (PATH or PATH.gz)")
      ->group("Data");
  app.add_flag("--hflip,!--no-hflip", config.hflip, "Random horizontal flips (p = 1/2)")
      ->capture_default_str()
      ->group("Data");
  app.add_option("--workers", config.workers, "Data loader threads (0 = load in the training thread)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group("Data");
  app.add_option("--prefetch", config.prefetch, "Batches the loader prepares ahead")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group("Data");
  app.add_flag("--cache,!--no-cache", config.cache, "Keep decoded images in memory (uint8)")
      ->capture_default_str()
      ->group("Data");
}

}  // namespace ddpm::cli
