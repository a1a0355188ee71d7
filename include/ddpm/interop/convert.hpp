#pragma once
// What ddpm-convert does, as a library: open any supported source (a diffusers folder, an
// original-layout state dict, a libddpm checkpoint) as a config + U-Net, and write it as a
// libddpm checkpoint or a diffusers folder.
#include <cstdint>
#include <string>

#include "ddpm/interop/diffusers.hpp"

namespace ddpm::interop {

/// The format of a model to convert: detected, the DDPM authors' original layout, a diffusers
/// folder, or a libddpm checkpoint.
enum class SourceFormat { Auto, Original, Diffusers, Libddpm };
/// "auto" | "original" | "diffusers" | "libddpm"; throws std::invalid_argument naming --from.
SourceFormat parse_source_format(const std::string& text);
/// "auto", "original", "diffusers" or "libddpm".
const char* to_string(SourceFormat f);

/// How load_source reads its source (ddpm-convert's options).
struct ConvertOptions {
  SourceFormat from = SourceFormat::Auto;  ///< Auto: a folder is diffusers, a libddpm checkpoint is one, else original
  int64_t image_size = 0;                  ///< original layout: 0 = by level count (4 → 32, 6 → 256)
  bool use_ema = true;                     ///< libddpm source: its EMA weights when present
};

/// The source as a config + model (CPU, eval mode). Throws std::invalid_argument, one line.
Imported load_source(const std::string& source, const ConvertOptions& options);

/// Writes a sampling checkpoint (config + weights; no optimizer, no EMA) that ddpm-sample reads.
void write_checkpoint(const Imported& model, const std::string& path);

}  // namespace ddpm::interop
