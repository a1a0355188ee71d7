// safetensors reader/writer; see the header for the checks made on untrusted files.
#include "ddpm/io/safetensors.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "ddpm/io/atomic_file.hpp"
#include "ddpm/util/limits.hpp"
#include "io/json.hpp"
#include "ddpm/io/read_file.hpp"
#include "io/little_endian.hpp"

namespace ddpm::safetensors {

namespace {

struct DTypeInfo {
  const char* name;
  at::ScalarType type;
  int64_t bytes;
};
constexpr DTypeInfo kDTypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},  {"BF16", at::kBFloat16, 2},
    {"I64", at::kLong, 8},   {"I32", at::kInt, 4},   {"I16", at::kShort, 2}, {"I8", at::kChar, 1},
    {"U8", at::kByte, 1},    {"BOOL", at::kBool, 1},
};

bool little_endian_host() {
  const uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

struct Entry {
  std::string name;
  const DTypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

}  // namespace

Contents parse(std::string_view bytes, const std::string& name) {
  auto bad = [&](const std::string& what) -> std::invalid_argument {
    return std::invalid_argument("safetensors file '" + name + "': " + what);
  };
  if (!little_endian_host()) throw bad("big-endian hosts are not supported");
  if (bytes.size() < 8) throw bad("truncated: " + std::to_string(bytes.size()) + " bytes, no 8-byte header length");
  const uint64_t n = io::le64(bytes.data());
  if (n > kMaxHeaderBytes) throw bad("header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > bytes.size() - 8)
    throw bad("truncated: header length " + std::to_string(n) + " but only " + std::to_string(bytes.size() - 8) +
              " bytes follow");
  const std::string_view header = bytes.substr(8, n);
  const std::string_view data = bytes.substr(8 + n);
  if (header.empty() || header[0] != '{') throw bad("header does not start with '{'");

  json::Value root;
  try {
    root = json::parse(header, {32, kMaxHeaderBytes});
  } catch (const std::invalid_argument& e) {
    throw bad(std::string("header: ") + e.what());
  }
  Contents out;
  std::vector<Entry> entries;
  for (const auto& [key, v] : root.members()) {
    if (key == "__metadata__") {
      if (!v.is_object()) throw bad("__metadata__ is not an object");
      for (const auto& [mk, mv] : v.members()) {
        if (!mv.is_string()) throw bad("__metadata__ value '" + mk + "' is not a string");
        out.metadata[mk] = mv.as_string();
      }
      continue;
    }
    auto field = [&](const char* f) -> const json::Value& {
      const json::Value* x = v.find(f);
      if (!x) throw bad("tensor '" + key + "': missing \"" + f + "\"");
      return *x;
    };
    if (!v.is_object()) throw bad("tensor '" + key + "': entry is not an object");
    for (const char* f : {"dtype", "shape", "data_offsets"}) field(f);
    if (v.members().size() != 3) throw bad("tensor '" + key + "': expected exactly dtype, shape and data_offsets");
    Entry e{key, nullptr, {}, 0, 0};
    const json::Value& dt = field("dtype");
    if (!dt.is_string()) throw bad("tensor '" + key + "': dtype is not a string");
    for (const auto& d : kDTypes)
      if (dt.as_string() == d.name) e.dtype = &d;
    if (!e.dtype) throw bad("tensor '" + key + "': unsupported dtype '" + dt.as_string() + "'");
    const json::Value& shape = field("shape");
    if (!shape.is_array() || shape.items().size() > 16) throw bad("tensor '" + key + "': shape is not an array of <= 16 sizes");
    // numel × element size, with overflow checks (sizes are bounded by the data length).
    uint64_t nbytes = static_cast<uint64_t>(e.dtype->bytes);
    bool zero = false;
    for (const auto& s : shape.items()) {
      int64_t d;
      try {
        d = s.as_int64();
      } catch (const std::invalid_argument&) {
        throw bad("tensor '" + key + "': shape entries must be integers");
      }
      if (d < 0) throw bad("tensor '" + key + "': negative size in shape");
      if (d == 0) zero = true;
      e.shape.push_back(d);
      if (!zero && nbytes > (uint64_t{1} << 62) / static_cast<uint64_t>(d)) nbytes = UINT64_MAX;  // would overflow
      else if (!zero && nbytes != UINT64_MAX) nbytes *= static_cast<uint64_t>(d);
    }
    if (zero) nbytes = 0;
    const json::Value& off = field("data_offsets");
    if (!off.is_array() || off.items().size() != 2) throw bad("tensor '" + key + "': data_offsets is not [begin, end]");
    int64_t b, en;
    try {
      b = off.items()[0].as_int64();
      en = off.items()[1].as_int64();
    } catch (const std::invalid_argument&) {
      throw bad("tensor '" + key + "': data_offsets must be integers");
    }
    if (b < 0 || en < b || static_cast<uint64_t>(en) > data.size())
      throw bad("tensor '" + key + "': data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
                "] outside the " + std::to_string(data.size()) + "-byte data");
    e.begin = static_cast<uint64_t>(b);
    e.end = static_cast<uint64_t>(en);
    if (nbytes != e.end - e.begin)
      throw bad("tensor '" + key + "': shape and dtype need " + (nbytes == UINT64_MAX ? "more" : std::to_string(nbytes)) +
                " bytes but data_offsets span " + std::to_string(e.end - e.begin));
    entries.push_back(std::move(e));
  }
  // The tensors tile the data exactly: sorted by offset, each starts where the previous ended.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at_byte = 0;
  for (const Entry& e : entries) {
    if (e.begin < at_byte) throw bad("tensor '" + e.name + "' overlaps another tensor");
    if (e.begin > at_byte) throw bad("bytes " + std::to_string(at_byte) + ".." + std::to_string(e.begin) + " belong to no tensor");
    at_byte = e.end;
  }
  if (at_byte != data.size())
    throw bad(std::to_string(data.size() - at_byte) + " bytes after the last tensor belong to no tensor");
  for (const Entry& e : entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype->type));
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data.data() + e.begin, e.end - e.begin);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

Contents read_file(const std::string& path) {
  // The whole file is read once (its size bounds the allocation); tensors are copied out of it.
  const std::string bytes = io::read_regular_file(path, "safetensors file", limits::kMaxModelFileBytes);
  return parse(bytes, path);
}

std::string serialize(const std::map<std::string, at::Tensor>& tensors, const std::map<std::string, std::string>& metadata) {
  if (!little_endian_host()) throw std::invalid_argument("safetensors: big-endian hosts are not supported");
  json::Value header = json::Value::object();
  if (!metadata.empty()) {
    json::Value m = json::Value::object();
    for (const auto& [k, v] : metadata) m.set(k, json::Value::string(v));
    header.set("__metadata__", std::move(m));
  }
  std::vector<at::Tensor> cpu;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") throw std::invalid_argument("safetensors: '__metadata__' cannot name a tensor");
    const DTypeInfo* d = nullptr;
    for (const auto& x : kDTypes)
      if (x.type == t.scalar_type()) d = &x;
    if (!d) throw std::invalid_argument("safetensors: tensor '" + name + "' has an unsupported dtype");
    cpu.push_back(t.detach().to(at::kCPU).contiguous());
    json::Value shape = json::Value::array();
    for (int64_t s : t.sizes()) shape.push(json::Value::integer(s));
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * static_cast<uint64_t>(d->bytes);
    json::Value offs = json::Value::array({json::Value::integer(static_cast<int64_t>(offset)),
                                           json::Value::integer(static_cast<int64_t>(offset + nbytes))});
    header.set(name, json::Value::object({{"dtype", json::Value::string(d->name)},
                                          {"shape", std::move(shape)},
                                          {"data_offsets", std::move(offs)}}));
    offset += nbytes;
  }
  std::string text = json::write(header);
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out;
  io::put_le64(out, text.size());
  out += text;
  out.reserve(out.size() + offset);
  for (const at::Tensor& t : cpu) out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return out;
}

void write_file(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                const std::map<std::string, std::string>& metadata) {
  io::write_file_atomically(path, serialize(tensors, metadata));
}

}  // namespace ddpm::safetensors
