// A restricted unpickler for torch.save state dicts (zip and legacy formats).
#include "ddpm/io/torch_file.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "io/unpickler.hpp"
#include "io/zip_reader.hpp"
#include "io/read_file.hpp"

namespace ddpm::torch_file {

namespace {

using pickle::Kind;
using pickle::P;
using pickle::Storage;
using pickle::Unpickler;
using pickle::element_size;

at::Tensor tensor_of_bytes(std::string_view bytes, at::ScalarType dtype, int64_t numel) {
  at::Tensor t = at::empty({numel}, at::TensorOptions().dtype(dtype));
  if (numel) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

std::map<std::string, at::Tensor> state_dict_of(const P& root) {
  P d = root;
  if (d->kind == Kind::Dict)
    for (const auto& [k, v] : d->dict)
      if (k->kind == Kind::Str && (k->s == "state_dict" || k->s == "model") && v->kind == Kind::Dict) d = v;
  if (d->kind != Kind::Dict) throw std::invalid_argument("the pickle is not a dict of tensors");
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : d->dict) {
    if (k->kind != Kind::Str || v->kind != Kind::Tensor) continue;
    if (!out.emplace(k->s, v->tensor).second) throw std::invalid_argument("duplicate key '" + k->s + "'");
  }
  if (out.empty()) throw std::invalid_argument("no tensors in the state dict");
  return out;
}

// Legacy format (torch.save before 1.6): magic pickle, protocol pickle, sys-info pickle, the
// object pickle, a pickle of the storage keys, then per key an 8-byte count and the raw bytes.
std::map<std::string, at::Tensor> parse_legacy(std::string_view bytes) {
  Unpickler::Storages storages;
  size_t at_byte = 0;
  auto next = [&](Unpickler::Loader loader) {
    Unpickler u(bytes.substr(at_byte), std::move(loader), &storages);
    P p = u.run();
    at_byte += u.position();
    return std::make_pair(p, std::move(u));
  };
  auto magic = next(nullptr).first;
  // 0x1950a86a20f9469cfc6c, little-endian, as pickle's LONG1 writes it.
  static const std::string kMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);
  if (magic->kind != Kind::Int || magic->s != kMagic)
    throw std::invalid_argument("not a torch.save file (no zip archive, no legacy magic number)");
  next(nullptr);  // protocol version
  next(nullptr);  // sys info
  auto [root, objects] = next(nullptr);
  auto keys = next(nullptr).first;
  if (keys->kind != Kind::List) throw std::invalid_argument("legacy file: malformed storage key list");
  for (const P& k : keys->items) {
    if (k->kind != Kind::Str || !storages.count(k->s)) throw std::invalid_argument("legacy file: unknown storage key");
    auto& st = *storages[k->s];
    if (bytes.size() - at_byte < 8) throw std::invalid_argument("truncated (storage '" + k->s + "')");
    uint64_t n = 0;
    for (int b = 7; b >= 0; --b) n = (n << 8) | static_cast<uint8_t>(bytes[at_byte + static_cast<size_t>(b)]);
    at_byte += 8;
    const uint64_t nbytes = n * static_cast<uint64_t>(element_size(st.dtype));
    if (n != static_cast<uint64_t>(st.numel) || nbytes > bytes.size() - at_byte)
      throw std::invalid_argument("truncated or inconsistent storage '" + k->s + "'");
    st.data = tensor_of_bytes(bytes.substr(at_byte, nbytes), st.dtype, st.numel);
    at_byte += nbytes;
  }
  objects.finish();
  return state_dict_of(root);
}

std::map<std::string, at::Tensor> parse_zip(std::string_view bytes) {
  const ZipReader zip(bytes);
  // torch.save writes "<archive>/data.pkl" and "<archive>/data/<key>"; <archive> is any name.
  std::string prefix;
  for (const std::string& name : zip.names()) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0) prefix = name.substr(0, slash + 1);
  }
  if (prefix.empty()) throw std::invalid_argument("zip archive without data.pkl (not a torch.save file)");
  for (const std::string& name : zip.names())
    if (name == prefix + "byteorder" && zip.stored(name) != "little")
      throw std::invalid_argument("big-endian tensors are not supported");
  Unpickler::Storages storages;
  auto loader = [&](const std::string& key, at::ScalarType dtype, int64_t numel) {
    const std::string_view data = zip.stored(prefix + "data/" + key);
    if (static_cast<uint64_t>(numel) > data.size() / static_cast<uint64_t>(element_size(dtype)))
      throw std::invalid_argument("storage '" + key + "' is shorter than its " + std::to_string(numel) + " elements");
    return tensor_of_bytes(data.substr(0, static_cast<size_t>(numel * element_size(dtype))), dtype, numel);
  };
  Unpickler u(zip.stored(prefix + "data.pkl"), loader, &storages);
  P root = u.run();
  u.finish();
  return state_dict_of(root);
}

}  // namespace

std::map<std::string, at::Tensor> parse_state_dict(std::string_view bytes, const std::string& name) {
  try {
    if (bytes.substr(0, 4) == std::string_view("PK\x03\x04", 4)) return parse_zip(bytes);
    return parse_legacy(bytes);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("torch file '" + name + "': " + e.what());
  } catch (const std::exception& e) {  // e.g. a c10::Error from a tensor op on bad sizes
    std::string what = e.what();
    if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    throw std::invalid_argument("torch file '" + name + "': " + what);
  }
}

std::map<std::string, at::Tensor> read_state_dict(const std::string& path) {
  const std::string bytes = io::read_regular_file(path, "torch file");
  return parse_state_dict(bytes, path);
}

}  // namespace ddpm::torch_file
