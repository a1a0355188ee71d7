#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/io/atomic_file.hpp"
#include "ddpm/util/errors.hpp"


#include <ATen/ATen.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "io/torch_archive.hpp"

namespace fs = std::filesystem;

namespace ddpm {
namespace {

constexpr const char* kMarker = "libddpm-checkpoint";

[[noreturn]] void fail(const std::string& path, const std::string& what) { bad_input("checkpoint '" + path + "'", what); }

// "ckpt-00001000.pt" → 1000; -1 for any other name (".tmp" files of interrupted saves included).
int64_t step_of(const std::string& name) {
  const std::string prefix = "ckpt-", suffix = ".pt";
  if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return -1;
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); }))
    return -1;
  return std::stoll(digits);
}

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  throw CorruptCheckpointError("checkpoint '" + path + "': " + what);
}

bool finite(const at::Tensor& t) {
  return !t.defined() || !at::isFloatingType(t.scalar_type()) || at::isfinite(t).all().item<bool>();
}

std::string first_non_finite(const torch::nn::Module& m, const std::string& what) {
  for (const auto& p : m.named_parameters())
    if (!finite(p.value())) return what + " weight " + p.key();
  for (const auto& b : m.named_buffers())
    if (!finite(b.value())) return what + " buffer " + b.key();
  return "";
}

}  // namespace

std::string first_non_finite(const CheckpointContents& c) {
  if (c.model)
    if (std::string bad = first_non_finite(*c.model, "model"); !bad.empty()) return bad;
  if (c.ema)
    if (std::string bad = first_non_finite(*c.ema, "EMA"); !bad.empty()) return bad;
  if (c.optimizer)
    for (const auto& [key, state] : c.optimizer->state()) {
      std::vector<at::Tensor> moments;
      if (const auto* s = dynamic_cast<const torch::optim::AdamWParamState*>(state.get()))
        moments = {s->exp_avg(), s->exp_avg_sq(), s->max_exp_avg_sq()};
      else if (const auto* a = dynamic_cast<const torch::optim::AdamParamState*>(state.get()))
        moments = {a->exp_avg(), a->exp_avg_sq(), a->max_exp_avg_sq()};
      for (const at::Tensor& m : moments)
        if (!finite(m)) return "optimizer moment of a parameter";
    }
  return "";
}

void save_checkpoint(const std::string& path, const CheckpointContents& c) {
  if (!c.model) throw std::invalid_argument("save_checkpoint: no model given");
  // A checkpoint is what a run falls back to: one written from diverged weights would poison it.
  if (const std::string bad = first_non_finite(c); !bad.empty())
    throw std::runtime_error("checkpoint '" + path + "': not written: the " + bad + " holds NaN or infinity");
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive archive;
    auto cu = archive.compilation_unit();
    archive.write("libddpm", c10::IValue(std::string(kMarker)));
    archive.write("format_version", c10::IValue(kCheckpointFormatVersion));
    archive.write("config", c10::IValue(c.config_toml));
    archive.write("step", c10::IValue(c.step));
    {
      torch::serialize::OutputArchive sub(cu);
      c.model->save(sub);
      archive.write("model", sub);
    }
    if (c.ema) {
      torch::serialize::OutputArchive sub(cu);
      c.ema->save(sub);
      archive.write("ema", sub);
      archive.write("ema_updates", c10::IValue(c.ema_updates));
    }
    if (c.optimizer) {
      torch::serialize::OutputArchive sub(cu);
      c.optimizer->save(sub);
      archive.write("optimizer", sub);
    }
    if (!c.rng.empty()) {
      torch::serialize::OutputArchive sub(cu);
      for (const auto& [name, state] : c.rng) sub.write(name, state);
      archive.write("rng", sub);
    }
    if (!c.objective.empty()) {
      torch::serialize::OutputArchive sub(cu);
      for (const auto& [name, state] : c.objective) sub.write(name, state);
      archive.write("objective", sub);
    }
    archive.write("data_epoch", c10::IValue(c.data_state.epoch));
    archive.write("data_position", c10::IValue(c.data_state.position));
    // Serialised in memory first: LibTorch's file writer aborts the process when a write
    // fails (its destructor throws), so the file itself is written by write_file_atomically.
    archive.save_to(bytes);
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint '" + path + "': cannot be serialised: " + first_line(e.what()));
  }
  try {
    io::write_file_atomically(path, bytes.str());
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint '" + path + "': " + first_line(e.what()));
  }
}

std::string checkpoint_path(const std::string& run_dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "ckpt-%08lld.pt", static_cast<long long>(step));
  return (fs::path(run_dir) / "checkpoints" / name).string();
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(run_dir) / "checkpoints", ec)) {
    if (!entry.is_regular_file(ec)) continue;
    int64_t step = step_of(entry.path().filename().string());
    if (step >= 0) found.emplace_back(step, entry.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (auto& f : found) paths.push_back(std::move(f.second));
  return paths;
}

std::string latest_checkpoint(const std::string& run_dir) {
  auto all = list_checkpoints(run_dir);
  return all.empty() ? std::string() : all.back();
}

void prune_checkpoints(const std::string& run_dir, int64_t keep_last) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(run_dir) / "checkpoints", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) fs::remove(entry.path(), ec);
  }
  if (keep_last <= 0) return;
  auto all = list_checkpoints(run_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i) fs::remove(all[i], ec);
}

std::string abandon_checkpoints_after(const std::string& run_dir, int64_t step) {
  std::vector<std::string> newer;
  for (const auto& p : list_checkpoints(run_dir))
    if (step_of(fs::path(p).filename().string()) > step) newer.push_back(p);
  if (newer.empty()) return "";
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  const fs::path checkpoints = fs::path(run_dir) / "checkpoints";
  fs::path aside = checkpoints / (std::string("abandoned-") + stamp);
  for (int k = 2; fs::exists(aside); ++k) aside = checkpoints / (std::string("abandoned-") + stamp + "-" + std::to_string(k));
  fs::create_directories(aside);
  for (const auto& p : newer) fs::rename(p, aside / fs::path(p).filename());
  io::sync_directory(aside.string());
  io::sync_directory(checkpoints.string());
  return aside.string();
}

// ---------------------------------------------------------------- reading

CheckpointReader::CheckpointReader(const std::string& path, c10::Device device) : path_(path), device_(device) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(path, "no such file or directory");
  if (fs::is_directory(path, ec)) {
    path_ = latest_checkpoint(path);
    if (path_.empty()) fail(path, "run directory has no checkpoints (expected checkpoints/ckpt-<step>.pt)");
  }
  // A FIFO or a device would block or stream without end: checkpoints are regular files.
  if (!fs::is_regular_file(path_, ec)) fail(path_, "is not a regular file");
  if (fs::file_size(path_, ec) == 0) fail(path_, "file is empty");
  try {
    archive_ = std::make_unique<const io::TorchArchive>(io::read_torch_archive(path_));
  } catch (const std::exception& e) {  // std::invalid_argument; c10::Error from a tensor op
    std::string previous;
    if (fs::is_directory(path, ec)) {
      auto all = list_checkpoints(path);
      if (all.size() >= 2) previous = "; the previous checkpoint is " + all[all.size() - 2];
    }
    corrupt(path_, "is corrupt, truncated or not a checkpoint (" + first_line(e.what()) + ")" + previous);
  }
  auto text = [&](const char* key) -> const c10::IValue* {
    const c10::IValue* v = archive_->value(key);
    return v && v->isString() ? v : nullptr;
  };
  auto integer = [&](const char* key) -> const c10::IValue* {
    const c10::IValue* v = archive_->value(key);
    return v && v->isInt() ? v : nullptr;
  };
  if (!text("libddpm") || text("libddpm")->toStringRef() != kMarker)
    fail(path_, "not a libddpm checkpoint (no 'libddpm' marker)");
  if (!integer("format_version")) fail(path_, "has no format version");
  format_version_ = integer("format_version")->toInt();
  if (format_version_ != kCheckpointFormatVersion)
    fail(path_, "format version " + std::to_string(format_version_) + " is not supported (this build reads version " +
                    std::to_string(kCheckpointFormatVersion) + ")");
  if (!text("config")) fail(path_, "has no config");
  config_toml_ = text("config")->toStringRef();
  if (!integer("step")) fail(path_, "has no step");
  step_ = integer("step")->toInt();
}

CheckpointReader::~CheckpointReader() = default;
CheckpointReader::CheckpointReader(CheckpointReader&&) noexcept = default;

Config CheckpointReader::config() const {
  try {
    return config_from_toml(config_toml_);
  } catch (const std::invalid_argument& e) {
    fail(path_, e.what());
  }
}

void CheckpointReader::load_module(const std::string& key, torch::nn::Module& module) const {
  const io::TorchArchive* sub = archive_->child(key);
  if (!sub) fail(path_, "has no '" + key + "' weights");
  try {
    io::load_module(*sub, module);
  } catch (const std::exception& e) {
    fail(path_, "'" + key + "' weights do not fit the model (" + first_line(e.what()) + ")");
  }
}

void CheckpointReader::load_model(torch::nn::Module& model) const { load_module("model", model); }

bool CheckpointReader::has_ema() const { return archive_->child("ema") != nullptr; }

void CheckpointReader::load_ema(torch::nn::Module& shadow) const { load_module("ema", shadow); }

int64_t CheckpointReader::ema_updates() const {
  const c10::IValue* v = archive_->value("ema_updates");
  return v && v->isInt() ? v->toInt() : 0;
}

bool CheckpointReader::has_optimizer() const { return archive_->child("optimizer") != nullptr; }

namespace {
// The optimizer's state goes back through LibTorch's own Optimizer::load, which reads only an
// InputArchive: the values read above (numbers, strings, tuples, tensors — nothing else can be
// in them) are written into a fresh archive by LibTorch's writer and that one is loaded. The
// bytes LibTorch's loader sees are its own writer's, never the file's.
void write_archive(const io::TorchArchive& from, torch::serialize::OutputArchive& to) {
  for (const auto& [key, value] : from.values)
    if (value.isTensor())
      to.write(key, value.toTensor());
    else
      to.write(key, value);
  for (const auto& [key, child] : from.children) {
    torch::serialize::OutputArchive sub(to.compilation_unit());
    write_archive(*child, sub);
    to.write(key, sub);
  }
}

// torch::optim names each parameter's state by its TensorImpl address at save time: LibTorch 1.x
// writes it as "0x7f…" (operator<< of a pointer) and reads any string; 2.x writes decimal and
// reads it back with std::stoull, which turns every "0x…" into 0. Renaming the keys to 1, 2, …
// (the same name in "state" and in each param group's "params/k") reads in both, so a checkpoint
// written by either LibTorch resumes under the other.
using KeyMap = std::map<std::string, std::string>;

std::string renamed(KeyMap& keys, const std::string& key) {
  auto it = keys.find(key);
  if (it == keys.end()) it = keys.emplace(key, std::to_string(keys.size() + 1)).first;
  return it->second;
}

bool is_param_entry(const std::string& key) {
  return key.rfind("params/", 0) == 0 && key != "params/size";
}

// A copy of `from` with the state keys and the param groups' "params/k" strings renamed.
std::shared_ptr<io::TorchArchive> with_portable_keys(const io::TorchArchive& from, KeyMap& keys,
                                                     bool state_level) {
  auto to = std::make_shared<io::TorchArchive>();
  for (const auto& [key, value] : from.values)
    to->values.emplace(key, is_param_entry(key) && value.isString()
                                ? c10::IValue(renamed(keys, value.toStringRef()))
                                : value);
  for (const auto& [key, child] : from.children) {
    const std::string name = state_level ? renamed(keys, key) : key;
    to->children.emplace(name, with_portable_keys(*child, keys, !state_level && key == "state"));
  }
  return to;
}
}  // namespace

void CheckpointReader::load_optimizer(torch::optim::Optimizer& optimizer) const {
  const io::TorchArchive* state = archive_->child("optimizer");
  if (!state) fail(path_, "has no optimizer state");
  try {
    KeyMap keys;
    torch::serialize::OutputArchive out;
    write_archive(*with_portable_keys(*state, keys, false), out);
    std::ostringstream bytes;
    out.save_to(bytes);
    std::istringstream in(bytes.str());
    torch::serialize::InputArchive archive;
    archive.load_from(in, device_);
    optimizer.load(archive);
  } catch (const std::exception& e) {
    fail(path_, "optimizer state does not fit (" + first_line(e.what()) + ")");
  }
}

at::Tensor CheckpointReader::rng_state(const std::string& name) const {
  const io::TorchArchive* rng = archive_->child("rng");
  const c10::IValue* v = rng ? rng->value(name) : nullptr;
  return v && v->isTensor() ? v->toTensor() : at::Tensor();
}

at::Tensor CheckpointReader::objective_state(const std::string& name) const {
  const io::TorchArchive* objective = archive_->child("objective");
  const c10::IValue* v = objective ? objective->value(name) : nullptr;
  return v && v->isTensor() ? v->toTensor() : at::Tensor();
}

LoaderState CheckpointReader::data_state() const {
  LoaderState s;
  if (const c10::IValue* v = archive_->value("data_epoch"); v && v->isInt()) s.epoch = v->toInt();
  if (const c10::IValue* v = archive_->value("data_position"); v && v->isInt()) s.position = v->toInt();
  return s;
}

LoadedModel load_model_for_sampling(const std::string& path, c10::Device device, bool use_ema) {
  CheckpointReader reader(path);
  Config config = reader.config();
  try {
    config.model.validate_limits();  // sized from the config before anything is built
  } catch (const std::invalid_argument& e) {
    fail(reader.path(), e.what());
  }
  UNet model(config.model);
  const bool ema = use_ema && reader.has_ema();
  if (ema)
    reader.load_ema(*model);
  else
    reader.load_model(*model);
  model->to(device);
  model->eval();
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  return LoadedModel{config, model, NoiseSchedule(config.schedule, device), reader.step(), ema, reader.path()};
}

}  // namespace ddpm
