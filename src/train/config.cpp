#include "ddpm/train/config.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "cli/options_train.hpp"

namespace ddpm {

namespace {
[[noreturn]] void bad(const std::string& key, const std::string& what) {
  throw std::invalid_argument(key + ": " + what);
}

std::string first_line(std::string s) {
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}
}  // namespace

EmaOptions TrainConfig::ema_options() const { return {ema_decay, parse_ema_warmup(ema_warmup), ema_power}; }

void TrainConfig::validate() const {
  if (steps < 1) bad("steps", "must be >= 1, got " + std::to_string(steps));
  if (batch_size < 1) bad("batch-size", "must be >= 1, got " + std::to_string(batch_size));
  // Upper bounds, checked before anything is allocated (a typo must not reach bad_alloc).
  if (batch_size > kMaxBatch) bad("batch-size", "must be <= " + std::to_string(kMaxBatch) + ", got " + std::to_string(batch_size));
  if (sample_n < 1 || sample_n > kMaxSampleN)
    bad("sample-n", "must be in [1, " + std::to_string(kMaxSampleN) + "], got " + std::to_string(sample_n));
  if (!(lr >= 0.0)) bad("lr", "must be >= 0");
  if (!(adam_beta1 >= 0.0 && adam_beta1 < 1.0)) bad("adam-beta1", "must be in [0, 1)");
  if (!(adam_beta2 >= 0.0 && adam_beta2 < 1.0)) bad("adam-beta2", "must be in [0, 1)");
  if (!(adam_eps > 0.0)) bad("adam-eps", "must be > 0");
  if (!(weight_decay >= 0.0)) bad("weight-decay", "must be >= 0");
  if (warmup_steps < 0) bad("warmup-steps", "must be >= 0");
  if (!(grad_clip >= 0.0)) bad("grad-clip", "must be >= 0 (0 = no clipping)");
  if (grad_accum < 1) bad("grad-accum", "must be >= 1");
  if (!(ema_decay >= 0.0 && ema_decay <= 1.0)) bad("ema-decay", "must be in [0, 1]");
  parse_ema_warmup(ema_warmup);
  if (!(ema_power > 0.0)) bad("ema-power", "must be > 0");
  if (ema_update_every < 1) bad("ema-update-every", "must be >= 1");
  if (!(min_snr_gamma > 0.0)) bad("min-snr-gamma", "must be > 0");
  if (sample_every < 0) bad("sample-every", "must be >= 0 (0 = no samples)");
  if (sample_n < 1) bad("sample-n", "must be >= 1");
  if (save_every < 1) bad("save-every", "must be >= 1");
  if (keep_last < 0) bad("keep-last", "must be >= 0 (0 = keep all)");
  if (log_every < 1) bad("log-every", "must be >= 1");
  if (run_dir.empty()) bad("run-dir", "must not be empty");
}

std::pair<int64_t, int64_t> parse_image_size(const std::string& text) {
  auto number = [&](const std::string& s) -> int64_t {
    if (s.empty() || s.size() > 6 || !std::all_of(s.begin(), s.end(), [](unsigned char ch) { return std::isdigit(ch); }))
      bad("image-size", "'" + text + "' is not N or HxW with positive integers");
    int64_t v = std::stoll(s);
    if (v < 1) bad("image-size", "'" + text + "': sizes must be >= 1");
    if (v > kMaxImageSide) bad("image-size", "'" + text + "': sizes must be <= " + std::to_string(kMaxImageSide));
    return v;
  };
  auto x = text.find_first_of("xX");
  if (x == std::string::npos) {
    int64_t n = number(text);
    return {n, n};
  }
  return {number(text.substr(0, x)), number(text.substr(x + 1))};
}

void Config::resolve() {
  if (!image_size.empty()) {
    auto [h, w] = parse_image_size(image_size);
    model.image_height = data.height = h;
    model.image_width = data.width = w;
  }
  if (channels != 0) {
    if (channels != 1 && channels != 3 && channels != 4) bad("channels", "must be 0, 1, 3 or 4");
    model.image_channels = data.channels = channels;
  }
  sample.prediction = train.prediction;
}

void Config::set_shape(int64_t c, int64_t h, int64_t w) {
  channels = c;
  image_size = h == w ? std::to_string(h) : std::to_string(h) + "x" + std::to_string(w);
  resolve();
}

void Config::validate() const {
  Config c = *this;
  c.resolve();
  c.model.validate();
  c.schedule.validate();
  c.train.validate();
  c.sample.validate(c.schedule.timesteps);
}

std::string config_to_toml(const Config& config) {
  Config copy = config;
  CLI::App app("libddpm run configuration");
  cli::add_config_options(app, copy);
  return app.config_to_str(/*default_also=*/true, /*write_description=*/true);
}

Config config_from_toml(const std::string& text) {
  Config config;
  CLI::App app;
  cli::add_config_options(app, config);
  app.allow_config_extras(CLI::config_extras_mode::error);
  std::istringstream in(text);
  try {
    app.parse_from_stream(in);
  } catch (const CLI::Error& e) {
    throw std::invalid_argument("config: " + first_line(e.what()));
  }
  config.resolve();
  return config;
}

Config config_from_args(const std::vector<std::string>& args) {
  Config config;
  CLI::App app;
  app.set_config("--config");
  cli::add_config_options(app, config);
  app.allow_config_extras(CLI::config_extras_mode::error);
  try {
    app.parse(std::vector<std::string>(args.rbegin(), args.rend()));  // CLI11 takes them reversed
  } catch (const CLI::Error& e) {
    throw std::invalid_argument(first_line(e.what()));
  }
  config.resolve();
  return config;
}

Config config_from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("config file '" + path + "': cannot be opened");
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return config_from_toml(text.str());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("config file '" + path + "': " + e.what());
  }
}

}  // namespace ddpm
