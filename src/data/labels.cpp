// Class labels of a dataset: an IDX labels file, or the class sub-folders of an image folder.
#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddpm/data/dataset.hpp"

namespace fs = std::filesystem;

namespace ddpm {

void Dataset::set_labels(at::Tensor labels, int64_t num_classes, std::vector<std::string> names,
                         const std::string& option) {
  auto bad = [&](const std::string& what) { throw std::invalid_argument(option + ": " + what); };
  labels = labels.to(at::kCPU, at::kLong).contiguous().reshape({-1});
  if (labels.numel() != size())
    bad(std::to_string(labels.numel()) + " labels for " + std::to_string(size()) + " images");
  const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
  if (num_classes == 0) num_classes = hi + 1;
  if (lo < 0 || hi >= num_classes)
    bad("label " + std::to_string(lo < 0 ? lo : hi) + " is out of range [0, " + std::to_string(num_classes) + ")");
  if (!names.empty() && static_cast<int64_t>(names.size()) != num_classes)
    bad(std::to_string(names.size()) + " class names for " + std::to_string(num_classes) + " classes");
  const at::Tensor counts = at::bincount(labels, {}, num_classes);
  for (int64_t c = 0; c < num_classes; ++c)
    if (counts[c].item<int64_t>() == 0)
      bad("class " + std::to_string(c) + (names.empty() ? "" : " ('" + names[static_cast<size_t>(c)] + "')") +
          " has no images");
  labels_ = labels;
  num_classes_ = num_classes;
  class_names_ = std::move(names);
}

std::pair<at::Tensor, std::vector<std::string>> class_folder_labels(const std::string& folder,
                                                                    const std::vector<std::string>& files) {
  const std::string option = "--class-folders '" + folder + "'";
  std::error_code ec;
  std::set<std::string> folders;  // every first-level sub-folder is a class, even one without images
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory(ec)) folders.insert(it->path().filename().string());
  if (folders.empty()) throw std::invalid_argument(option + ": no class sub-folders");
  std::vector<std::string> names(folders.begin(), folders.end());
  for (const auto& n : names)
    if (n.find(',') != std::string::npos)
      throw std::invalid_argument(option + ": class folder '" + n + "' has a ',' in its name (the separator of class-names)");
  std::map<std::string, int64_t> id;
  for (size_t i = 0; i < names.size(); ++i) id[names[i]] = static_cast<int64_t>(i);
  std::vector<int64_t> labels;
  labels.reserve(files.size());
  for (const auto& f : files) {
    const fs::path rel = fs::path(f).lexically_relative(folder);
    if (std::distance(rel.begin(), rel.end()) < 2)
      throw std::invalid_argument(option + ": '" + f + "' is not inside a class folder");
    labels.push_back(id.at(rel.begin()->string()));
  }
  return {at::tensor(labels, at::kLong), names};
}

void attach_idx_labels(Dataset& dataset, const std::string& source) {
  std::string path = source.rfind("idx:", 0) == 0 ? source.substr(4) : source;
  std::error_code ec;
  if (!fs::exists(path, ec) && fs::exists(path + ".gz", ec)) path += ".gz";
  if (!fs::is_regular_file(path, ec)) throw std::invalid_argument("--labels '" + source + "': no such file");
  at::Tensor labels;
  try {
    labels = read_idx_labels(path);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("--labels: ") + e.what());
  }
  dataset.set_labels(labels, 0, {}, "--labels '" + source + "'");
}

}  // namespace ddpm
