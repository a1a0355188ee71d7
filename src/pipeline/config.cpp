#include "ddpm/pipeline/config.hpp"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "ddpm/io/read_file.hpp"
#include "io/toml.hpp"
#include "ddpm/util/limits.hpp"
#include "ddpm/util/errors.hpp"
#include "ddpm/pipeline/config_keys.hpp"
#include "util/enum_names.hpp"

namespace ddpm {

namespace {
[[noreturn]] void bad(const std::string& key, const std::string& what) { bad_input(key, what); }
}  // namespace

EmaOptions TrainConfig::ema_options() const { return {ema_decay, parse_ema_warmup(ema_warmup), ema_power}; }

namespace {
constexpr util::EnumName<LrSchedule> kLrSchedules[] = {{LrSchedule::Constant, "constant"},
                                                       {LrSchedule::Cosine, "cosine"}};
}  // namespace

LrSchedule parse_lr_schedule(const std::string& text) { return util::parse_enum(kLrSchedules, text, "lr-schedule"); }

std::string to_string(LrSchedule s) { return util::enum_name(kLrSchedules, s); }

void TrainConfig::validate() const {
  if (steps < 1) bad("steps", "must be >= 1, got " + std::to_string(steps));
  if (batch_size < 1) bad("batch-size", "must be >= 1, got " + std::to_string(batch_size));
  // Upper bounds, checked before anything is allocated (a typo must not reach bad_alloc).
  if (batch_size > kMaxBatch) bad("batch-size", "must be <= " + std::to_string(kMaxBatch) + ", got " + std::to_string(batch_size));
  if (sample_n < 1 || sample_n > kMaxSampleN)
    bad("sample-n", "must be in [1, " + std::to_string(kMaxSampleN) + "], got " + std::to_string(sample_n));
  // Finite: an infinite step size (or eps, decay, clip) turns every weight into inf/NaN at step 1.
  if (!(lr > 0.0 && std::isfinite(lr))) bad("lr", "must be a finite number > 0, got " + std::to_string(lr));
  if (!(adam_beta1 >= 0.0 && adam_beta1 < 1.0)) bad("adam-beta1", "must be in [0, 1)");
  if (!(adam_beta2 >= 0.0 && adam_beta2 < 1.0)) bad("adam-beta2", "must be in [0, 1)");
  if (!(adam_eps > 0.0 && std::isfinite(adam_eps))) bad("adam-eps", "must be a finite number > 0");
  if (!(weight_decay >= 0.0 && std::isfinite(weight_decay))) bad("weight-decay", "must be a finite number >= 0");
  if (warmup_steps < 0) bad("warmup-steps", "must be >= 0");
  if (!(grad_clip >= 0.0 && std::isfinite(grad_clip))) bad("grad-clip", "must be a finite number >= 0 (0 = no clipping)");
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
  if (eval_every < 0) bad("eval-every", "must be >= 0 (0 = no evaluation)");
  if (eval_n < 10) bad("eval-n", "must be >= 10");
  if (!(eval_guidance.sigma_low >= 0.0 && eval_guidance.sigma_low < eval_guidance.sigma_high))
    bad("eval-guidance-interval", "must be LOW,HIGH with 0 <= LOW < HIGH");
  if (eval_every > 0 && (eval_features.empty() || eval_ref.empty()))
    bad("eval-every", "needs --eval-features and --eval-ref");
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

void Config::set_classes(const Dataset& data) {
  if (!data.labels().defined()) {
    if (model.num_classes > 0)
      bad("num-classes", std::to_string(model.num_classes) +
                             " classes, but the data has no labels (give --labels idx:PATH or --class-folders)");
    return;
  }
  if (model.num_classes == 0) model.num_classes = data.num_classes();
  if (model.num_classes != data.num_classes())
    bad("num-classes", std::to_string(model.num_classes) + ", but the labels have " + std::to_string(data.num_classes()) +
                           " classes (ids 0 .. " + std::to_string(data.num_classes() - 1) + ")");
  if (!data.class_names().empty()) {
    if (model.class_names.empty()) model.class_names = data.class_names();
    if (model.class_names != data.class_names())
      bad("class-names", "the data's class folders are not the classes of the run's config");
  }
}

int64_t DistillConfig::rounds() const {
  int64_t r = 0;
  while ((final_steps << r) < start_steps && r < 62) ++r;
  return r;
}

void DistillConfig::validate() const {
  if (!active()) return;
  if ((final_steps << rounds()) != start_steps || final_steps >= start_steps)
    bad("final-steps", "must be start-steps / 2^k with k >= 1 (N halves every round; got start-steps " +
                           std::to_string(start_steps) + ", final-steps " + std::to_string(final_steps) + ")");
  if (!(guidance.weight >= 0.0 && guidance.weight <= 1000.0)) bad("guidance", "must be in [0, 1000]");
  if (!(guidance.sigma_low >= 0.0 && guidance.sigma_low < guidance.sigma_high))
    bad("guidance-interval", "expected LOW,HIGH with 0 <= LOW < HIGH");
  if (!guidance_given && guidance.limited())
    bad("guidance-interval", "needs guidance (without it the teacher's eval-guidance and its interval are used)");
}

void Config::validate() const {
  Config c = *this;
  c.resolve();
  c.distill.validate();
  c.model.validate();
  c.schedule.validate();
  c.train.validate();
  c.sample.validate(c.schedule.timesteps);
  // Checked before training: the run would die at its first sample grid, and no spacing
  // helps at steps = T (Lin et al. 2024 §3.2: ε is pure noise at ᾱ_{T−1} = 0).
  if (c.schedule.zero_terminal_snr && c.train.prediction == Prediction::Epsilon)
    bad("prediction", "epsilon cannot be used with zero-terminal-snr: at t = T-1 alpha_bar = 0, x_t is pure "
                      "noise and x0 cannot be recovered from a predicted epsilon; use --prediction v (Lin et al. "
                      "2024) or --prediction x0");
}

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A TOML value as the key's text form (see ConfigKey::get), checking its TOML type.
std::string key_text(const ConfigKey& key, const toml::Value& v) {
  using K = toml::Value::Kind;
  auto expected = [&](const char* what) -> std::string {
    bad(key.name, std::string("expected ") + what + ", got " + v.kind_name());
  };
  switch (key.type) {
    case KeyType::Integer:
    case KeyType::Unsigned:
      if (v.kind != K::Integer) return expected("an integer");
      return std::to_string(v.integer);
    case KeyType::Float:
    case KeyType::OptionalFloat:
      if (v.kind == K::Integer) return std::to_string(v.integer);
      if (v.kind == K::Float) return toml::format_float(v.floating);
      if (key.type == KeyType::OptionalFloat && v.kind == K::String && v.string.empty()) return "";
      return expected("a number");
    case KeyType::Boolean:
      if (v.kind != K::Boolean) return expected("true or false");
      return v.boolean ? "true" : "false";
    case KeyType::String:
      if (v.kind == K::Integer) return std::to_string(v.integer);  // image-size = 28
      if (v.kind != K::String) return expected("a string");
      return v.string;
    case KeyType::Choice:
      if (v.kind == K::String) return v.string;
      if (v.kind == K::Integer) return std::to_string(v.integer);  // channels = 3
      return expected("a string");
    case KeyType::IntegerList: {
      if (v.kind == K::String) return v.string;  // "1,2,2" (and "" in configs written by earlier versions)
      if (v.kind != K::Array) return expected("an array of integers");
      std::string out;
      for (const toml::Value& e : v.array) {
        if (e.kind != K::Integer) bad(key.name, std::string("expected integers in the array, got ") + e.kind_name());
        out += (out.empty() ? "" : ",") + std::to_string(e.integer);
      }
      return out;
    }
  }
  return "";
}

void apply(Config& config, const std::string& group, const toml::Value& table) {
  for (const auto& [name, value] : table.table) {
    const std::string where = "line " + std::to_string(value.line) + ": ";
    if (value.kind == toml::Value::Kind::Table && group.empty()) {
      // [model], [training], ...: the keys of that group, for those who like sections.
      bool known = false;
      for (const ConfigKey& k : config_keys()) known = known || lower(k.group) == lower(name);
      if (!known) throw std::invalid_argument(where + "unknown table [" + name + "] (keys are flat, or in [data], "
                                              "[model], [schedule], [training] or [sampling])");
      apply(config, name, value);
      continue;
    }
    const ConfigKey* key = find_config_key(name);
    if (key == nullptr || (!group.empty() && lower(key->group) != lower(group)))
      throw std::invalid_argument(where + "unknown key '" + (group.empty() ? name : group + "." + name) + "'");
    try {
      key->set(config, key_text(*key, value));
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      // key_text's errors already start with the key
      throw std::invalid_argument(where + (what.rfind(name + ":", 0) == 0 ? what : name + ": " + what));
    }
  }
}

std::string toml_value(const ConfigKey& key, const Config& config) {
  const std::string text = key.get(config);
  switch (key.type) {
    case KeyType::Integer:
    case KeyType::Unsigned:
    case KeyType::Float:
    case KeyType::Boolean:
      return text;
    case KeyType::OptionalFloat:
      return text.empty() ? std::string() : text;
    case KeyType::IntegerList: {
      std::string out = "[";
      for (char c : text) out += c == ',' ? std::string(", ") : std::string(1, c);
      return out + "]";
    }
    case KeyType::Choice:
      if (key.name == "channels") return text;
      return toml::quote(text);
    case KeyType::String:
      return toml::quote(text);
  }
  return text;
}

}  // namespace

std::string config_to_toml(const Config& config) {
  std::string out = "# libddpm run configuration\n";
  std::string group;
  for (const ConfigKey& key : config_keys()) {
    if (key.group != group) {
      group = key.group;
      out += "\n# ---- " + group + "\n";
    }
    const std::string value = toml_value(key, config);
    out += "# " + key.help + "\n";
    // An unset optional is written commented out: absent keys keep their defaults.
    out += value.empty() ? "# " + key.name + " =\n" : key.name + " = " + value + "\n";
  }
  return out;
}

Config config_from_toml(const std::string& text) { return config_from_toml(text, Config{}); }

Config config_from_toml(const std::string& text, Config config) {
  toml::Value doc;
  try {
    doc = toml::parse(text);
  } catch (const toml::ParseError& e) {
    throw std::invalid_argument(std::string("config: ") + e.what());
  }
  try {
    apply(config, "", doc);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("config: ") + e.what());
  }
  config.resolve();
  return config;
}

Config config_from_file(const std::string& path) {
  // A config is a few KiB; anything past kMaxTomlBytes is not one (and is not read into memory).
  const std::string text = io::read_regular_file(path, "config file", limits::kMaxTomlBytes);
  try {
    return config_from_toml(text);
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    if (what.rfind("config: ", 0) == 0) what = what.substr(8);
    throw std::invalid_argument("config file '" + path + "': " + what);
  }
}

}  // namespace ddpm
