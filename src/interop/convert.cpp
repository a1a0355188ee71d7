// Source detection and the two writers of ddpm-convert.
#include "ddpm/interop/convert.hpp"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/interop/ddpm_original.hpp"
#include "io/read_file.hpp"
#include "util/enum_names.hpp"

namespace fs = std::filesystem;

namespace ddpm::interop {

namespace {
constexpr util::EnumName<SourceFormat> kSourceFormats[] = {{SourceFormat::Auto, "auto"},
                                                           {SourceFormat::Original, "original"},
                                                           {SourceFormat::Diffusers, "diffusers"},
                                                           {SourceFormat::Libddpm, "libddpm"}};
}  // namespace

SourceFormat parse_source_format(const std::string& text) { return util::parse_enum(kSourceFormats, text, "--from"); }

const char* to_string(SourceFormat f) { return util::enum_name(kSourceFormats, f); }

namespace {

// libddpm checkpoints are torch::serialize archives holding a "libddpm" record (checkpoint.hpp).
bool is_libddpm_checkpoint(const std::string& path) {
  if (fs::is_directory(path)) return fs::exists(path + "/checkpoints");
  std::ifstream in(path, std::ios::binary);
  char head[4] = {};
  if (!in.read(head, 4) || std::string(head, 4) != std::string("PK\x03\x04", 4)) return false;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  // The record names sit in the zip's central directory at the end of the file.
  const std::streamoff tail = std::min<std::streamoff>(size, 1 << 20);
  std::string end(static_cast<size_t>(tail), '\0');
  in.seekg(size - tail);
  in.read(end.data(), tail);
  return end.find("/libddpm") != std::string::npos || end.find("libddpm-checkpoint") != std::string::npos;
}

}  // namespace

Imported load_source(const std::string& source, const ConvertOptions& options) {
  if (!fs::exists(source)) throw std::invalid_argument("source '" + source + "': no such file or folder");
  // A FIFO or device would block the format probe below forever.
  if (!fs::is_directory(source)) io::require_regular_file(source, "source");
  SourceFormat f = options.from;
  if (f == SourceFormat::Auto) {
    if (is_libddpm_checkpoint(source)) f = SourceFormat::Libddpm;
    else if (fs::is_directory(source)) f = SourceFormat::Diffusers;
    else f = SourceFormat::Original;
  }
  Imported out;
  switch (f) {
    case SourceFormat::Libddpm: {
      LoadedModel m = load_model_for_sampling(source, c10::kCPU, options.use_ema);
      out.config = m.config;
      out.model = m.model;
      break;
    }
    case SourceFormat::Diffusers:
      if (!fs::is_directory(source))
        throw std::invalid_argument("source '" + source + "': a diffusers model is a folder (config.json + weights)");
      out = import_diffusers(source);
      break;
    default: {
      const StateDict w = read_weights(source);
      if (w.count("time_embedding.linear_1.weight"))
        throw std::invalid_argument("source '" + source +
                                    "': diffusers weights; convert the folder that holds them and config.json");
      const std::string what = "'" + source + "'";
      out.config = original_config(w, options.image_size, what);
      out.model = import_original(w, out.config, what);
    }
  }
  out.model->eval();
  return out;
}

void write_checkpoint(const Imported& m, const std::string& path) {
  CheckpointContents contents;
  contents.config_toml = config_to_toml(m.config);
  contents.step = 0;
  contents.model = m.model.get();
  save_checkpoint(path, contents);
}

}  // namespace ddpm::interop
