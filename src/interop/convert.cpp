// Source detection and the two writers of ddpm-convert.
#include "ddpm/interop/convert.hpp"

#include <filesystem>
#include <stdexcept>

#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/interop/ddpm_original.hpp"
#include "ddpm/io/read_file.hpp"
#include "ddpm/util/limits.hpp"
#include "io/zip.hpp"
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

// libddpm checkpoints are torch::serialize archives whose data.pkl holds the "libddpm" record
// "libddpm-checkpoint" (checkpoint.hpp); read through the zip reader, never searched for in the
// raw bytes. A file the zip reader refuses is not a checkpoint: the reader of the format it is
// taken for then says what is wrong with it.
bool is_libddpm_checkpoint(const std::string& path) {
  if (fs::is_directory(path)) return fs::exists(path + "/checkpoints");
  const std::string bytes = io::read_regular_file(path, "source", limits::kMaxModelFileBytes);
  if (!io::looks_like_zip(bytes)) return false;
  try {
    const io::ZipReader zip(bytes);
    for (const io::ZipEntry& e : zip.entries()) {
      const size_t slash = e.name.find('/');
      if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0 && e.method == 0 &&
          zip.stored(e).find("libddpm-checkpoint") != std::string_view::npos)
        return true;
    }
  } catch (const std::invalid_argument&) {
  }
  return false;
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
