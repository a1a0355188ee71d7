#include "tools/options.hpp"

#include <memory>
#include <stdexcept>

#include "ddpm/util/errors.hpp"

namespace ddpm::cli {
namespace {

// The part of a Config an area's options write to, for binding a standalone area struct
// (ddpm-sample's SamplerConfig, ddpm-schedule's ScheduleConfig): keys read and write a whole
// Config, so a view copies the area in and out around each access.
template <class Area>
struct AreaView {
  Area* target;
  Area& (*project)(Config&);

  std::string get(const ConfigKey& key) const {
    Config c;
    project(c) = *target;
    return key.get(c);
  }
  void set(const ConfigKey& key, const std::string& text) const {
    Config c;
    project(c) = *target;
    key.set(c, text);
    *target = project(c);
  }
};

struct WholeView {
  Config* target;
  std::string get(const ConfigKey& key) const { return key.get(*target); }
  void set(const ConfigKey& key, const std::string& text) const { key.set(*target, text); }
};

template <class View>
void bind(CLI::App& app, const ConfigKey& key, const std::string& option_name, View view) {
  const std::string name = "--" + option_name;
  if (app.get_option_no_throw(name) != nullptr) return;
  auto store = [view, &key, name](const std::string& text) {
    try {
      view.set(key, text);
    } catch (const std::invalid_argument& e) {
      throw CLI::ValidationError(name, e.what());
    }
  };
  CLI::Option* opt;
  if (key.type == KeyType::Boolean) {
    opt = app.add_flag_function(
        name + ",!--no-" + option_name, [store](int64_t count) { store(count > 0 ? "true" : "false"); }, key.help);
  } else {
    std::string help = key.help;
    if (key.type == KeyType::Choice) {
      help += " {";
      for (size_t i = 0; i < key.choices.size(); ++i) help += (i ? ", " : "") + key.choices[i];
      help += "}";
    }
    opt = app.add_option_function<std::string>(name, store, help);
    opt->type_name(key.type == KeyType::Integer || key.type == KeyType::Unsigned ? "INT"
                   : key.type == KeyType::Float || key.type == KeyType::OptionalFloat ? "FLOAT"
                   : key.type == KeyType::IntegerList                                 ? "INT,..."
                                                                                      : "TEXT");
  }
  opt->default_function([view, &key] { return view.get(key); })->capture_default_str()->group(key.group);
}

template <class Area>
void bind_area(CLI::App& app, KeyArea area, Area& target, Area& (*project)(Config&),
               const std::map<std::string, std::string>& rename = {}) {
  for (const ConfigKey& key : config_keys()) {
    if (key.area != area) continue;
    auto it = rename.find(key.name);
    bind(app, key, it == rename.end() ? key.name : it->second, AreaView<Area>{&target, project});
  }
}

}  // namespace

void add_area_options(CLI::App& app, KeyArea area, UNetConfig& t) {
  bind_area<UNetConfig>(app, area, t, [](Config& c) -> UNetConfig& { return c.model; });
}
void add_area_options(CLI::App& app, KeyArea area, ScheduleConfig& t) {
  bind_area<ScheduleConfig>(app, area, t, [](Config& c) -> ScheduleConfig& { return c.schedule; });
}
void add_area_options(CLI::App& app, KeyArea area, DataConfig& t) {
  bind_area<DataConfig>(app, area, t, [](Config& c) -> DataConfig& { return c.data; });
}
void add_area_options(CLI::App& app, KeyArea area, TrainConfig& t) {
  bind_area<TrainConfig>(app, area, t, [](Config& c) -> TrainConfig& { return c.train; });
}
void add_area_options(CLI::App& app, SamplerConfig& t, const std::map<std::string, std::string>& rename) {
  bind_area<SamplerConfig>(app, KeyArea::Sample, t, [](Config& c) -> SamplerConfig& { return c.sample; }, rename);
}

void add_config_options(CLI::App& app, Config& config, bool distill) {
  for (const ConfigKey& key : config_keys())
    if (key.area != KeyArea::Distilled && (distill || key.area != KeyArea::Distill))
      bind(app, key, key.name, WholeView{&config});
}

CLI::Option* add_config_file_option(CLI::App& app, std::function<void(const Config&)> apply, const std::string& help) {
  // Runs first: CLI11 calls option callbacks in the order the options were added.
  return app
      .add_option_function<std::string>(
          "--config",
          [apply](const std::string& path) {
            try {
              apply(config_from_file(path));
            } catch (const std::invalid_argument& e) {
              throw CLI::ValidationError("--config", e.what());
            }
          },
          help)
      ->type_name("FILE")
      ->group("Config");
}

CLI::Option* add_config_file_option(CLI::App& app, Config& config, const std::string& help) {
  return add_config_file_option(app, [&config](const Config& c) { config = c; }, help);
}

std::vector<std::string> given_keys(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->count() == 0) continue;
    std::string name = opt->get_single_name();
    if (find_config_key(name) != nullptr) out.push_back(name);
  }
  return out;
}

Config config_from_args(const std::vector<std::string>& args) {
  Config config;
  CLI::App app;
  add_config_file_option(app, config, "TOML config file");
  add_config_options(app, config);
  try {
    app.parse(std::vector<std::string>(args.rbegin(), args.rend()));  // CLI11 takes them reversed
  } catch (const CLI::Error& e) {
    throw std::invalid_argument(first_line(e.what()));
  }
  config.resolve();
  return config;
}

}  // namespace ddpm::cli
