// Strict mapped copies between foreign state dicts and the U-Net.
#include "ddpm/interop/state_dict.hpp"

#include <ATen/ATen.h>

#include <set>
#include <stdexcept>

#include "ddpm/io/safetensors.hpp"
#include "ddpm/io/torch_file.hpp"

namespace ddpm::interop {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
std::string shape_str(at::IntArrayRef s) { return c10::str(s); }
}  // namespace

StateDict read_weights(const std::string& path) {
  if (ends_with(path, ".safetensors")) return safetensors::read_file(path).tensors;
  return torch_file::read_state_dict(path);
}

OurName split_name(const std::string& ours) {
  OurName n;
  const size_t dot = ours.find('.');
  if (dot == std::string::npos) throw std::invalid_argument("unexpected parameter name '" + ours + "'");
  const std::string module = ours.substr(0, dot);
  n.rest = ours.substr(dot + 1);
  std::vector<std::string> parts;
  for (size_t a = 0;;) {
    const size_t b = module.find('_', a);
    parts.push_back(module.substr(a, b == std::string::npos ? std::string::npos : b - a));
    if (b == std::string::npos) break;
    a = b + 1;
  }
  auto num = [&](const std::string& s) { return static_cast<int64_t>(std::stoll(s)); };
  if (module == "conv_in" || module == "conv_out" || module == "norm_out" || module == "mid_attn") {
    n.path = module;
  } else if (parts.size() == 2 && parts[0] == "temb") {
    n.path = "temb", n.level = num(parts[1]);
  } else if (parts.size() == 3 && parts[0] == "mid" && parts[1] == "res") {
    n.path = "mid", n.block = "res", n.index = num(parts[2]);
  } else if ((parts[0] == "down" || parts[0] == "up") && parts.size() >= 3) {
    n.path = parts[0], n.level = num(parts[1]), n.block = parts[2];
    if (parts.size() == 4) n.index = num(parts[3]);
  } else {
    throw std::invalid_argument("unexpected parameter name '" + ours + "'");
  }
  return n;
}

void load_mapped(UNetImpl& model, const StateDict& source, const NameMap& name_of, const std::string& what) {
  auto bad = [&](const std::string& msg) { return std::invalid_argument(what + ": " + msg); };
  std::set<std::string> used;
  at::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    const std::string key = name_of(item.key());
    auto it = source.find(key);
    if (it == source.end()) throw bad("missing tensor '" + key + "' (for " + item.key() + ")");
    at::Tensor src = it->second;
    at::Tensor& dst = item.value();
    if (!src.is_floating_point()) throw bad("tensor '" + key + "' is not floating point");
    if (src.sizes() != dst.sizes()) {
      const bool linear_for_1x1 = dst.dim() == 4 && dst.size(2) == 1 && dst.size(3) == 1 && src.dim() == 2 &&
                                  src.size(0) == dst.size(0) && src.size(1) == dst.size(1);
      if (!linear_for_1x1)
        throw bad("tensor '" + key + "' has shape " + shape_str(src.sizes()) + ", expected " + shape_str(dst.sizes()));
      src = src.view({src.size(0), src.size(1), 1, 1});
    }
    if (!at::isfinite(src).all().item<bool>()) throw bad("tensor '" + key + "' has non-finite values");
    dst.copy_(src);
    used.insert(key);
  }
  for (const auto& [key, t] : source)
    if (!used.count(key)) throw bad("unexpected tensor '" + key + "' (no parameter of the model uses it)");
}

StateDict export_mapped(const UNetImpl& model, const NameMap& name_of, const std::function<bool(const std::string&)>& linear_1x1) {
  StateDict out;
  for (const auto& item : model.named_parameters()) {
    const std::string key = name_of(item.key());
    at::Tensor t = item.value().detach().to(at::kCPU, at::kFloat).contiguous();
    if (t.dim() == 4 && t.size(2) == 1 && t.size(3) == 1 && linear_1x1(key)) t = t.view({t.size(0), t.size(1)});
    if (!out.emplace(key, t).second) throw std::logic_error("two parameters map to '" + key + "'");
  }
  return out;
}

}  // namespace ddpm::interop
