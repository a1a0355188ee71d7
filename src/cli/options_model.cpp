#include "cli/options_model.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace ddpm::cli {

namespace {

/// Comma/space separated integers; empty pieces are skipped so "" and "[]" mean none.
std::vector<int64_t> parse_int_list(const std::string& key, const std::vector<std::string>& pieces) {
  std::vector<int64_t> out;
  for (const std::string& piece : pieces) {
    std::string item;
    for (char ch : piece + ",") {
      if (ch == ',' || ch == ' ' || ch == '[' || ch == ']' || ch == '"' || ch == '\'') {
        if (item.empty()) continue;
        size_t used = 0;
        int64_t v = 0;
        try {
          v = std::stoll(item, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != item.size()) throw CLI::ValidationError(key, "'" + item + "' is not an integer");
        out.push_back(v);
        item.clear();
      } else {
        item += ch;
      }
    }
  }
  return out;
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

void add_list_option(CLI::App& app, const std::string& name, std::vector<int64_t>& target, const std::string& help) {
  app.add_option_function<std::vector<std::string>>(
         name, [&target, name](const std::vector<std::string>& pieces) { target = parse_int_list(name, pieces); },
         help + " (comma-separated)")
      ->delimiter(',')
      ->default_str(join(target));
}

}  // namespace

void add_model_options(CLI::App& app, UNetConfig& c) {
  const std::string group = "Model";
  app.add_option("--base-channels", c.base_channels, "channels of the first level (ch)")
      ->capture_default_str()->group(group);
  add_list_option(app, "--channel-mult", c.channel_mult, "channel multiplier per level, e.g. 1,2,2,2");
  app.get_option("--channel-mult")->group(group);
  app.add_option("--num-res-blocks", c.num_res_blocks, "residual blocks per level")->capture_default_str()->group(group);
  add_list_option(app, "--attention-resolutions", c.attention_resolutions,
                  "feature-map heights with self-attention, e.g. 16; empty for none");
  app.get_option("--attention-resolutions")->group(group);
  app.add_option("--num-heads", c.num_heads, "attention heads")->capture_default_str()->group(group);
  app.add_option("--dropout", c.dropout, "dropout in the residual blocks")->capture_default_str()->group(group);
  app.add_option("--groups", c.groups, "GroupNorm groups")->capture_default_str()->group(group);
  app.add_option("--norm-eps", c.norm_eps, "GroupNorm epsilon")->capture_default_str()->group(group);
  app.add_option("--resample", c.resample, "downsampling: conv (stride-2 3x3) | avgpool")
      ->capture_default_str()
      ->check(CLI::IsMember({"conv", "avgpool"}))
      ->group(group);
  app.add_flag("--learned-variance,!--no-learned-variance", c.learned_variance,
               "also output the variance interpolation (2x image channels)")
      ->group(group);
  app.add_flag("--channels-last,!--no-channels-last", c.channels_last, "channels_last memory format")->group(group);
  app.add_option_function<std::string>(
         "--time-embedding",
         [&c](const std::string& s) {
           try {
             c.time_embedding = parse_time_embedding(s);
           } catch (const std::invalid_argument&) {
             throw CLI::ValidationError("--time-embedding", "expected interleaved, sin-cos or cos-sin, got '" + s + "'");
           }
         },
         "timestep embedding: interleaved (libddpm) | sin-cos (DDPM, diffusers) | cos-sin")
      ->default_function([&c] { return std::string(to_string(c.time_embedding)); })
      ->capture_default_str()
      ->group(group);
  app.add_option("--time-freq-shift", c.time_freq_shift,
                 "embedding frequencies exp(-ln(1e4) i/(d/2 - shift)); DDPM: 1 (sin-cos, cos-sin only)")
      ->capture_default_str()
      ->group(group);
}

}  // namespace ddpm::cli
