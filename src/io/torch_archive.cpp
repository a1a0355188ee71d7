// torch::serialize archives → TorchArchive, through the bounded zip reader and the restricted unpickler.
#include "io/torch_archive.hpp"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "io/unpickler.hpp"
#include "io/zip.hpp"
#include "ddpm/io/read_file.hpp"
#include "ddpm/util/limits.hpp"

namespace ddpm::io {

namespace {

using pickle::Kind;
using pickle::P;

// "__torch__.Module" (the root) or "__torch__.___torch_mangle_<digits>.Module" (nested archives:
// TorchScript gives every module type its own mangled name).
bool is_archive_class(const std::string& name) {
  if (name == "__torch__.Module") return true;
  const std::string prefix = "__torch__.___torch_mangle_", suffix = ".Module";
  if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 9) return false;
  for (char c : digits)
    if (c < '0' || c > '9') return false;
  return true;
}

// Obj trees may share nodes (pickle memo): a visit budget keeps a hostile DAG from expanding.
class Converter {
 public:
  TorchArchive archive(const P& obj, int depth) {
    visit(depth);
    if (obj->kind != Kind::Object || !obj->built) throw std::invalid_argument("nested archive is not a module object");
    TorchArchive out;
    for (const auto& [k, v] : obj->dict) {
      if (k->kind != Kind::Str) throw std::invalid_argument("archive key is not a string");
      const bool fresh = v->kind == Kind::Object
                             ? out.children.emplace(k->s, std::make_shared<const TorchArchive>(archive(v, depth + 1))).second &&
                                   !out.values.count(k->s)
                             : out.values.emplace(k->s, value(v, depth + 1)).second && !out.children.count(k->s);
      if (!fresh) throw std::invalid_argument("archive key '" + k->s + "' written twice");
    }
    return out;
  }

 private:
  void visit(int depth) {
    if (depth > kMaxArchiveDepth) throw std::invalid_argument("archive nested deeper than " + std::to_string(kMaxArchiveDepth));
    if (++visits_ > (int64_t{1} << 22)) throw std::invalid_argument("archive has too many values");
  }
  c10::IValue value(const P& v, int depth) {
    visit(depth);
    switch (v->kind) {
      case Kind::None: return c10::IValue();
      case Kind::Bool: return c10::IValue(v->i != 0);
      case Kind::Int:
        if (!v->s.empty()) throw std::invalid_argument("integer wider than 64 bits in the archive");
        return c10::IValue(v->i);
      case Kind::Float: return c10::IValue(v->f);
      case Kind::Str: return c10::IValue(v->s);
      case Kind::Tensor: return c10::IValue(v->tensor);
      case Kind::Tuple: {
        std::vector<c10::IValue> items;
        for (const P& x : v->items) items.push_back(value(x, depth + 1));
        return c10::ivalue::Tuple::create(std::move(items));
      }
      default: throw std::invalid_argument("unsupported value in the archive (only numbers, strings, tuples and tensors)");
    }
  }
  int64_t visits_ = 0;
};

}  // namespace

const c10::IValue* TorchArchive::value(const std::string& key) const {
  auto it = values.find(key);
  return it == values.end() ? nullptr : &it->second;
}

const TorchArchive* TorchArchive::child(const std::string& key) const {
  auto it = children.find(key);
  return it == children.end() ? nullptr : it->second.get();
}

TorchArchive parse_torch_archive(std::string_view bytes) {
  const ZipReader zip(bytes);
  zip.check_crcs();
  // "<archive>/data.pkl"; <archive> is any name (the file's stem when LibTorch wrote to a path).
  std::string prefix;
  for (const ZipEntry& entry : zip.entries()) {
    const std::string& name = entry.name;
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      if (!prefix.empty()) throw std::invalid_argument("two data.pkl records in the archive");
      prefix = name.substr(0, slash + 1);
    }
  }
  if (prefix.empty()) throw std::invalid_argument("zip archive without data.pkl (not a LibTorch archive)");
  if (const auto* order = zip.find(prefix + "byteorder"); order && zip.stored(order->name) != "little")
    throw std::invalid_argument("big-endian tensors are not supported");
  // LibTorch runs a class's __setstate__ from code/ when it unpickles an instance; our archives
  // never declare one, so a file that does is not ours.
  static const std::string kSetState = "__setstate__";
  constexpr uint64_t kMaxCodeBytes = 1 << 20;  // a class declaration; ours are a few hundred bytes
  for (const auto& e : zip.entries()) {
    if (e.name.compare(0, prefix.size() + 5, prefix + "code/") != 0) continue;
    const std::vector<uint8_t> code = zip.read(e, kMaxCodeBytes);
    if (std::string_view(reinterpret_cast<const char*>(code.data()), code.size()).find(kSetState) != std::string_view::npos)
      throw std::invalid_argument("class code in '" + e.name + "' declares __setstate__ (not a libddpm archive)");
  }

  pickle::Unpickler::Storages storages;
  auto loader = [&](const std::string& key, at::ScalarType dtype, int64_t numel) {
    const std::string_view data = zip.stored(prefix + "data/" + key);
    const auto element = static_cast<uint64_t>(pickle::element_size(dtype));
    if (static_cast<uint64_t>(numel) > data.size() / element)
      throw std::invalid_argument("storage '" + key + "' holds " + std::to_string(data.size()) + " bytes, less than its " +
                                  std::to_string(numel) + " elements");
    at::Tensor t = at::empty({numel}, at::TensorOptions().dtype(dtype));
    if (numel) std::memcpy(t.data_ptr(), data.data(), static_cast<size_t>(numel) * element);
    return t;
  };
  pickle::Unpickler u(zip.stored(prefix + "data.pkl"), loader, &storages, is_archive_class);
  const P root = u.run();
  u.finish();
  if (root->kind != Kind::Object || root->s != "__torch__.Module")
    throw std::invalid_argument("data.pkl does not hold an archive module (class __torch__.Module)");
  return Converter().archive(root, 0);
}

TorchArchive read_torch_archive(const std::string& path) {
  return parse_torch_archive(read_regular_file(path, "archive", limits::kMaxModelFileBytes));
}

void load_module(const TorchArchive& archive, torch::nn::Module& module) {
  at::NoGradGuard no_grad;
  auto load = [&](const std::string& name, at::Tensor& target) {
    // "a.b.weight" → child a → child b → value weight (Module::save's layout).
    const TorchArchive* a = &archive;
    size_t from = 0;
    for (size_t dot; a && (dot = name.find('.', from)) != std::string::npos; from = dot + 1)
      a = a->child(name.substr(from, dot - from));
    const c10::IValue* v = a ? a->value(name.substr(from)) : nullptr;
    if (!v || !v->isTensor()) throw std::invalid_argument("weight " + name + " is missing");
    const at::Tensor& t = v->toTensor();
    if (t.sizes() != target.sizes())
      throw std::invalid_argument("weight " + name + " has shape " + c10::str(t.sizes()) + ", the model's is " +
                                  c10::str(target.sizes()));
    if (!t.is_floating_point() && target.is_floating_point())
      throw std::invalid_argument("weight " + name + " is not floating point");
    target.copy_(t);
  };
  for (auto& p : module.named_parameters()) load(p.key(), p.value());
  for (auto& b : module.named_buffers()) load(b.key(), b.value());
}

}  // namespace ddpm::io
