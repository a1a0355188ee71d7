#pragma once
// The one description of every configuration key: name, group, type, help, bounds, and how
// to read and write it in a Config. The TOML reader/writer (config.cpp) and the tools' option
// binding (apps/tools/options.cpp) are both generated from this table, so a new key is one
// entry here. Keys are flat and equal to the long option names: `lr = 0.0002` ≡ `--lr 0.0002`.
#include <functional>
#include <string>
#include <vector>

#include "ddpm/pipeline/config.hpp"

namespace ddpm {

/// The value type of a config key.
enum class KeyType {
  Integer,        ///< int64, within [min, max]
  Unsigned,       ///< uint64 (seeds): no sign, no wrap-around
  Float,          ///< double, within [min, max]
  OptionalFloat,  ///< double or unset ("" / absent)
  Boolean,        ///< true | false (a flag, with --no-NAME, on the command line)
  String,         ///< free text (paths, sizes)
  Choice,         ///< one of `choices` (aliases accepted by `set`)
  IntegerList,    ///< TOML array of integers; "1,2,2" on the command line ("" = empty)
};

/// Which part of Config a key lives in (the tools bind one area at a time, e.g. the sampler's).
/// Distill: ddpm-distill's options; Distilled: what a student records (no tool binds it).
enum class KeyArea { Top, Model, Schedule, Data, Train, Distill, Distilled, Sample };

/// One configuration key: its name, type, bounds, help, and how to read and write it in a
/// Config. The TOML reader/writer and the command-line options are generated from the table.
struct ConfigKey {
  std::string name;   ///< TOML key and long option without "--"
  /// The part of Config it lives in.
  KeyArea area;
  std::string group;  ///< help section: Data, Model, Schedule, Training, Sampling
  /// Its value type.
  KeyType type;
  /// One line for --help.
  std::string help;
  std::vector<std::string> choices;  ///< Choice: the canonical values
  /// Integer/Float bounds (inclusive), when bounded.
  ///@{
  double min = 0, max = 0;           ///< Integer/Float bounds (inclusive), when bounded
  ///@}
  /// Whether min and max apply.
  bool bounded = false;
  /// May change when a run is resumed (steps, logging, saving, sample grids, workers, ...).
  bool operational = false;
  /// The value as text: "32", "0.0002", "true", "1,2,2", "" for unset.
  std::function<std::string(const Config&)> get;
  /// Parses `text` (the get() format; Choice also takes aliases), checks it and stores it.
  /// Throws std::invalid_argument with the reason only ("must be >= 1 (got 0)"); callers
  /// prefix the key or option name.
  std::function<void(Config&, const std::string& text)> set;
};

/// Every key, in the order config files are written.
const std::vector<ConfigKey>& config_keys();
/// The key named `name` (without "--"), or nullptr.
const ConfigKey* find_config_key(const std::string& name);

}  // namespace ddpm
