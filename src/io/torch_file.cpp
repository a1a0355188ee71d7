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

#include "io/zip_reader.hpp"
#include "ddpm/io/read_file.hpp"

namespace ddpm::torch_file {

namespace {

struct Obj;
using P = std::shared_ptr<Obj>;

enum class Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Tensor, Storage, Mark };

struct Storage {
  at::ScalarType dtype;
  std::string key;
  int64_t numel;
  at::Tensor data;  ///< 1-D, filled when the bytes are known (zip: at once; legacy: after the pickle)
};

struct Obj {
  Kind kind = Kind::None;
  int64_t i = 0;
  double f = 0;
  std::string s;                      ///< Str; Global: "module.name"
  std::vector<P> items;               ///< Tuple, List
  std::vector<std::pair<P, P>> dict;  ///< Dict (insertion order)
  std::shared_ptr<Storage> storage;
  at::Tensor tensor;
};

P make(Kind k) {
  auto p = std::make_shared<Obj>();
  p->kind = k;
  return p;
}

struct StorageType {
  const char* name;
  at::ScalarType dtype;
};
constexpr StorageType kStorages[] = {
    {"torch.FloatStorage", at::kFloat}, {"torch.DoubleStorage", at::kDouble}, {"torch.HalfStorage", at::kHalf},
    {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong}, {"torch.IntStorage", at::kInt},
    {"torch.ShortStorage", at::kShort}, {"torch.CharStorage", at::kChar}, {"torch.ByteStorage", at::kByte},
    {"torch.BoolStorage", at::kBool},
};

class Unpickler {
 public:
  /// storage_bytes(key, nbytes): the bytes of a storage (zip), or null to fill later (legacy).
  using Loader = std::function<at::Tensor(const std::string& key, at::ScalarType dtype, int64_t numel)>;
  Unpickler(std::string_view bytes, Loader loader, std::unordered_map<std::string, std::shared_ptr<Storage>>* storages)
      : b_(bytes), loader_(std::move(loader)), storages_(storages) {}

  P run() {
    for (;;) {
      if (++ops_ > (int64_t{1} << 26)) fail("too many opcodes");
      const uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;                                  // PROTO
        case 0x95: take(8); break;                               // FRAME
        case '.': {                                              // STOP
          if (stack_.size() != 1) fail("malformed pickle (stack at STOP)");
          return stack_.back();
        }
        case 'N': push(make(Kind::None)); break;
        case 0x88: case 0x89: { auto p = make(Kind::Bool); p->i = op == 0x88; push(p); break; }
        case 'J': { auto p = make(Kind::Int); p->i = static_cast<int32_t>(le(4)); push(p); break; }
        case 'K': { auto p = make(Kind::Int); p->i = static_cast<int64_t>(le(1)); push(p); break; }
        case 'M': { auto p = make(Kind::Int); p->i = static_cast<int64_t>(le(2)); push(p); break; }
        case 0x8a: {                                             // LONG1
          const size_t n = u8();
          if (n > 8) {  // only the legacy format's 80-bit magic number is this wide: keep its bytes
            if (n > 16) fail("integer wider than 128 bits");
            auto p = make(Kind::Int);
            p->s = std::string(take(n));
            push(p);
            break;
          }
          uint64_t v = n ? le(n) : 0;
          if (n && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
          auto p = make(Kind::Int);
          p->i = static_cast<int64_t>(v);
          push(p);
          break;
        }
        case 'G': {                                              // BINFLOAT (big-endian)
          uint64_t v = 0;
          for (int k = 0; k < 8; ++k) v = (v << 8) | u8();
          auto p = make(Kind::Float);
          std::memcpy(&p->f, &v, 8);
          push(p);
          break;
        }
        case 'X': str(le(4)); break;                             // BINUNICODE
        case 0x8c: str(u8()); break;                             // SHORT_BINUNICODE
        case 'T': str(le(4)); break;                             // BINSTRING
        case 'U': str(u8()); break;                              // SHORT_BINSTRING
        case 0x8d: str(le(8)); break;                            // BINUNICODE8
        case '}': push(make(Kind::Dict)); break;
        case ']': push(make(Kind::List)); break;
        case ')': push(make(Kind::Tuple)); break;
        case '(': push(make(Kind::Mark)); break;
        case 't': { auto p = make(Kind::Tuple); p->items = pop_mark(); push(p); break; }
        case 0x85: case 0x86: case 0x87: {
          const size_t n = op - 0x84u;
          if (stack_.size() < n) fail("stack underflow");
          auto p = make(Kind::Tuple);
          p->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(p);
          break;
        }
        case 'q': memo(le(1)); break;
        case 'r': memo(le(4)); break;
        case 0x94: memo(memo_.size()); break;                    // MEMOIZE
        case 'h': get(le(1)); break;
        case 'j': get(le(4)); break;
        case 'c': {                                              // GLOBAL "module\nname\n"
          auto p = make(Kind::Global);
          const std::string module = line();
          p->s = module + "." + line();
          push(p);
          break;
        }
        case 'a': { P v = pop(); container(Kind::List)->items.push_back(v); break; }
        case 'e': { auto xs = pop_mark(); auto l = container(Kind::List); l->items.insert(l->items.end(), xs.begin(), xs.end()); break; }
        case 's': { P v = pop(), k = pop(); container(Kind::Dict)->dict.emplace_back(k, v); break; }
        case 'u': {
          auto xs = pop_mark();
          if (xs.size() % 2) fail("odd SETITEMS");
          auto d = container(Kind::Dict);
          for (size_t k = 0; k < xs.size(); k += 2) d->dict.emplace_back(xs[k], xs[k + 1]);
          break;
        }
        case 'b': pop(); break;                                  // BUILD: state of an OrderedDict (_metadata), unused
        case 'R': { P args = pop(), fn = pop(); push(reduce(fn, args)); break; }
        case 'Q': push(persistent(pop())); break;
        default: fail("unsupported pickle opcode 0x" + hex(op));
      }
    }
  }
  size_t position() const { return pos_; }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(what + " (pickle byte " + std::to_string(pos_) + ")");
  }
  static std::string hex(unsigned v) {
    const char* d = "0123456789abcdef";
    return std::string{d[(v >> 4) & 15], d[v & 15]};
  }
  std::string_view take(uint64_t n) {
    if (n > b_.size() - pos_) fail("truncated pickle");
    auto s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint8_t u8() { return static_cast<uint8_t>(take(1)[0]); }
  uint64_t le(size_t n) {
    auto s = take(n);
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = (v << 8) | static_cast<uint8_t>(s[k]);
    return v;
  }
  std::string line() {
    const size_t nl = b_.find('\n', pos_);
    if (nl == std::string_view::npos || nl - pos_ > 256) fail("malformed GLOBAL");
    std::string s(b_.substr(pos_, nl - pos_));
    pos_ = nl + 1;
    return s;
  }
  void str(uint64_t n) {
    auto p = make(Kind::Str);
    p->s = std::string(take(n));
    push(p);
  }
  void push(P p) {
    if (stack_.size() > 10000) fail("pickle stack too deep");  // also bounds nesting (destructor recursion)
    stack_.push_back(std::move(p));
  }
  P pop() {
    if (stack_.empty() || stack_.back()->kind == Kind::Mark) fail("stack underflow");
    P p = stack_.back();
    stack_.pop_back();
    return p;
  }
  std::vector<P> pop_mark() {
    for (size_t k = stack_.size(); k-- > 0;)
      if (stack_[k]->kind == Kind::Mark) {
        std::vector<P> xs(stack_.begin() + static_cast<std::ptrdiff_t>(k) + 1, stack_.end());
        stack_.resize(k);
        return xs;
      }
    fail("no MARK on the stack");
  }
  P container(Kind k) {
    if (stack_.empty() || stack_.back()->kind != k) fail("malformed pickle (append/setitem target)");
    return stack_.back();
  }
  void memo(uint64_t idx) {
    if (stack_.empty()) fail("stack underflow");
    if (idx > static_cast<uint64_t>(ops_)) fail("memo index " + std::to_string(idx) + " out of sequence");
    if (idx >= memo_.size()) memo_.resize(idx + 1);
    memo_[idx] = stack_.back();
  }
  void get(uint64_t idx) {
    if (idx >= memo_.size() || !memo_[idx]) fail("memo index " + std::to_string(idx) + " not set");
    push(memo_[idx]);
  }

  static std::vector<int64_t> ints(const P& t, const char* what) {
    if (t->kind != Kind::Tuple) throw std::invalid_argument(std::string("tensor ") + what + " is not a tuple");
    std::vector<int64_t> out;
    for (const P& x : t->items) {
      if (x->kind != Kind::Int) throw std::invalid_argument(std::string("tensor ") + what + " is not integers");
      out.push_back(x->i);
    }
    return out;
  }

  P reduce(const P& fn, const P& args) {
    if (fn->kind != Kind::Global || args->kind != Kind::Tuple) fail("REDUCE of a non-global");
    const std::string& g = fn->s;
    if (g == "collections.OrderedDict" || g == "builtins.dict") {
      if (!args->items.empty()) fail(g + " with arguments is not supported");
      return make(Kind::Dict);
    }
    if (g == "torch._utils._rebuild_tensor_v2" || g == "torch._utils._rebuild_tensor") {
      if (args->items.size() < 4 || args->items[0]->kind != Kind::Storage || args->items[1]->kind != Kind::Int)
        fail("malformed _rebuild_tensor_v2 arguments");
      auto p = make(Kind::Tensor);
      const std::vector<int64_t> size = ints(args->items[2], "size"), stride = ints(args->items[3], "stride");
      if (size.size() != stride.size() || size.size() > 16) fail("tensor size and stride differ in length");
      const int64_t offset = args->items[1]->i;
      const auto& st = args->items[0]->storage;
      // Largest element index touched: offset + Σ (size−1)·stride; must lie inside the storage.
      int64_t last = offset;
      bool empty = false;
      for (size_t k = 0; k < size.size(); ++k) {
        if (size[k] < 0 || stride[k] < 0 || size[k] > (int64_t{1} << 40) || stride[k] > (int64_t{1} << 40))
          fail("tensor size or stride out of range");
        if (size[k] == 0) empty = true;
        else last += (size[k] - 1) * stride[k];
      }
      if (offset < 0 || (!empty && last >= st->numel)) fail("tensor extends past its storage");
      pending_.push_back({p, st, offset, size, stride});
      return p;
    }
    if (g == "torch._utils._rebuild_parameter" || g == "torch._utils._rebuild_parameter_with_state") {
      if (args->items.empty() || args->items[0]->kind != Kind::Tensor) fail("malformed _rebuild_parameter arguments");
      return args->items[0];
    }
    fail("unsupported global '" + g + "' (only state dicts of tensors are read)");
  }

  P persistent(const P& pid) {
    if (pid->kind != Kind::Tuple || pid->items.size() < 5 || pid->items[0]->kind != Kind::Str ||
        pid->items[0]->s != "storage" || pid->items[1]->kind != Kind::Global || pid->items[2]->kind != Kind::Str ||
        pid->items[4]->kind != Kind::Int)
      fail("unsupported persistent id");
    const std::string& type = pid->items[1]->s;
    const StorageType* st = nullptr;
    for (const auto& s : kStorages)
      if (type == s.name) st = &s;
    if (!st) fail("unsupported storage type '" + type + "'");
    const std::string& key = pid->items[2]->s;
    const int64_t numel = pid->items[4]->i;
    if (numel < 0) fail("negative storage size");
    auto& slot = (*storages_)[key];
    if (!slot) {
      slot = std::make_shared<Storage>(Storage{st->dtype, key, numel, {}});
      if (loader_) slot->data = loader_(key, st->dtype, numel);
    } else if (slot->dtype != st->dtype || slot->numel != numel) {
      fail("storage '" + key + "' used with two types or sizes");
    }
    auto p = make(Kind::Storage);
    p->storage = slot;
    return p;
  }

 public:
  struct Pending {
    P tensor;
    std::shared_ptr<Storage> storage;
    int64_t offset;
    std::vector<int64_t> size, stride;
  };
  /// Views the tensors into their storages once every storage's bytes are known.
  void finish() {
    for (auto& p : pending_) {
      if (!p.storage->data.defined()) throw std::invalid_argument("storage '" + p.storage->key + "' has no data");
      p.tensor->tensor = p.storage->data.as_strided(p.size, p.stride, p.offset).clone();
    }
  }

 private:
  std::string_view b_;
  size_t pos_ = 0;
  int64_t ops_ = 0;
  Loader loader_;
  std::unordered_map<std::string, std::shared_ptr<Storage>>* storages_;
  std::vector<P> stack_, memo_;
  std::vector<Pending> pending_;
};

int64_t element_size(at::ScalarType t) { return static_cast<int64_t>(c10::elementSize(t)); }

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
  std::unordered_map<std::string, std::shared_ptr<Storage>> storages;
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
  std::unordered_map<std::string, std::shared_ptr<Storage>> storages;
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
