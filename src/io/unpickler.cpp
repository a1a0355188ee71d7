// The restricted unpickler (pickle protocols 2–4 as torch.save and TorchScript write them).
#include "io/unpickler.hpp"

#include "io/little_endian.hpp"

#include "ddpm/util/limits.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace ddpm::pickle {

namespace {

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

std::string hex(unsigned v) {
  const char* d = "0123456789abcdef";
  return std::string{d[(v >> 4) & 15], d[v & 15]};
}

std::vector<int64_t> ints(const P& t, const char* what) {
  if (t->kind != Kind::Tuple) throw std::invalid_argument(std::string("tensor ") + what + " is not a tuple");
  std::vector<int64_t> out;
  for (const P& x : t->items) {
    if (x->kind != Kind::Int) throw std::invalid_argument(std::string("tensor ") + what + " is not integers");
    out.push_back(x->i);
  }
  return out;
}

}  // namespace

int64_t element_size(at::ScalarType t) { return static_cast<int64_t>(c10::elementSize(t)); }

Unpickler::Unpickler(std::string_view bytes, Loader loader, Storages* storages, ClassFilter allow_class)
    : b_(bytes), loader_(std::move(loader)), storages_(storages), allow_class_(std::move(allow_class)) {}

P Unpickler::run() {
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
      case 't': { auto p = make(Kind::Tuple); p->items = pop_mark(); push(nest_all(p)); break; }
      case 0x85: case 0x86: case 0x87: {
        const size_t n = op - 0x84u;
        if (stack_.size() < n) fail("stack underflow");
        auto p = make(Kind::Tuple);
        p->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
        stack_.resize(stack_.size() - n);
        push(nest_all(p));
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
      case 'a': { P v = pop(); nest(container(Kind::List), v)->items.push_back(v); break; }
      case 'e': { auto xs = pop_mark(); auto l = container(Kind::List); for (const P& x : xs) nest(l, x); l->items.insert(l->items.end(), xs.begin(), xs.end()); break; }
      case 's': { P v = pop(), k = pop(); nest(nest(container(Kind::Dict), k), v)->dict.emplace_back(k, v); break; }
      case 'u': {
        auto xs = pop_mark();
        if (xs.size() % 2) fail("odd SETITEMS");
        auto d = container(Kind::Dict);
        for (const P& x : xs) nest(d, x);
        for (size_t k = 0; k < xs.size(); k += 2) d->dict.emplace_back(xs[k], xs[k + 1]);
        break;
      }
      case 'b': build(pop()); break;                           // BUILD
      case 'R': { P args = pop(), fn = pop(); push(reduce(fn, args)); break; }
      case 0x81: { P args = pop(), cls = pop(); push(newobj(cls, args)); break; }  // NEWOBJ
      case 'Q': push(persistent(pop())); break;                // BINPERSID
      default: fail("unsupported pickle opcode 0x" + hex(op));
    }
  }
}

void Unpickler::fail(const std::string& what) const {
  throw std::invalid_argument(what + " (pickle byte " + std::to_string(pos_) + ")");
}

std::string_view Unpickler::take(uint64_t n) {
  if (n > b_.size() - pos_) fail("truncated pickle");
  auto s = b_.substr(pos_, n);
  pos_ += n;
  return s;
}

uint8_t Unpickler::u8() { return static_cast<uint8_t>(take(1)[0]); }

uint64_t Unpickler::le(size_t n) {
  return io::load_le(take(n).data(), n);
}

std::string Unpickler::line() {
  const size_t nl = b_.find('\n', pos_);
  if (nl == std::string_view::npos || nl - pos_ > 256) fail("malformed GLOBAL");
  std::string s(b_.substr(pos_, nl - pos_));
  pos_ = nl + 1;
  return s;
}

void Unpickler::str(uint64_t n) {
  auto p = make(Kind::Str);
  p->s = std::string(take(n));
  push(p);
}

void Unpickler::push(P p) {
  if (stack_.size() > 10000) fail("pickle stack too deep");  // also bounds nesting (destructor recursion)
  stack_.push_back(std::move(p));
}

P Unpickler::pop() {
  if (stack_.empty() || stack_.back()->kind == Kind::Mark) fail("stack underflow");
  P p = stack_.back();
  stack_.pop_back();
  return p;
}

P Unpickler::nest(P c, const P& child) {
  c->depth = std::max(c->depth, child->depth + 1);
  if (c->depth > limits::kMaxPickleDepth)
    fail("containers nested more than " + std::to_string(limits::kMaxPickleDepth) + " deep");
  return c;
}

P Unpickler::nest_all(P c) {
  for (const P& x : c->items) nest(c, x);
  return c;
}

Obj::~Obj() {
  std::vector<P> pending;
  auto take_children = [&pending](Obj& o) {
    for (P& x : o.items) pending.push_back(std::move(x));
    for (auto& [k, v] : o.dict) {
      pending.push_back(std::move(k));
      pending.push_back(std::move(v));
    }
    o.items.clear();
    o.dict.clear();
  };
  take_children(*this);
  while (!pending.empty()) {
    P p = std::move(pending.back());
    pending.pop_back();
    if (p && p.use_count() == 1) take_children(*p);
  }
}

std::vector<P> Unpickler::pop_mark() {
  for (size_t k = stack_.size(); k-- > 0;)
    if (stack_[k]->kind == Kind::Mark) {
      std::vector<P> xs(stack_.begin() + static_cast<std::ptrdiff_t>(k) + 1, stack_.end());
      stack_.resize(k);
      return xs;
    }
  fail("no MARK on the stack");
}

P Unpickler::container(Kind k) {
  if (stack_.empty() || stack_.back()->kind != k) fail("malformed pickle (append/setitem target)");
  return stack_.back();
}

void Unpickler::memo(uint64_t idx) {
  if (stack_.empty()) fail("stack underflow");
  if (idx > static_cast<uint64_t>(ops_)) fail("memo index " + std::to_string(idx) + " out of sequence");
  if (idx >= memo_.size()) memo_.resize(idx + 1);
  memo_[idx] = stack_.back();
}

void Unpickler::get(uint64_t idx) {
  if (idx >= memo_.size() || !memo_[idx]) fail("memo index " + std::to_string(idx) + " not set");
  push(memo_[idx]);
}

P Unpickler::reduce(const P& fn, const P& args) {
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
    if (offset < 0 || offset > st->numel) fail("tensor offset outside its storage");
    // The dimensions that step (size > 1), by stride. The view stays in its storage when its last
    // element, offset + Σ (size−1)·stride, does; it does not overlap itself when every stride
    // passes the extent of the dimensions below it (Σ (size−1)·stride + 1). Sizes and strides
    // are at most 2^40 and there are at most 16, so no sum overflows.
    std::vector<std::pair<int64_t, int64_t>> steps;  // (stride, size)
    bool empty = false;
    for (size_t k = 0; k < size.size(); ++k) {
      if (size[k] < 0 || stride[k] < 0 || size[k] > (int64_t{1} << 40) || stride[k] > (int64_t{1} << 40))
        fail("tensor size or stride out of range");
      if (size[k] == 0) empty = true;
      if (size[k] > 1) steps.emplace_back(stride[k], size[k]);
    }
    if (!empty) {
      std::sort(steps.begin(), steps.end());
      int64_t extent = 1;  // elements spanned by the dimensions so far
      for (const auto& [s, n] : steps) {
        if (s < extent)
          fail("tensor view overlaps itself (stride " + std::to_string(s) + " over a span of " + std::to_string(extent) +
               " elements)");
        extent += (n - 1) * s;
      }
      if (extent > st->numel - offset)
        fail("tensor extends past its storage ('" + st->key + "': " + std::to_string(st->numel) + " elements, the view needs " +
             std::to_string(offset + extent) + ")");
    }
    pending_.push_back({p, st, offset, size, stride});
    return p;
  }
  if (g == "torch._utils._rebuild_parameter" || g == "torch._utils._rebuild_parameter_with_state") {
    if (args->items.empty() || args->items[0]->kind != Kind::Tensor) fail("malformed _rebuild_parameter arguments");
    return args->items[0];
  }
  fail("unsupported global '" + g + "' (only state dicts of tensors are read)");
}

P Unpickler::newobj(const P& cls, const P& args) {
  if (cls->kind != Kind::Global || args->kind != Kind::Tuple) fail("NEWOBJ of a non-class");
  if (!allow_class_ || !allow_class_(cls->s)) fail("unsupported class '" + cls->s + "'");
  if (!args->items.empty()) fail("class '" + cls->s + "' made with arguments");
  auto p = make(Kind::Object);
  p->s = cls->s;
  return p;
}

void Unpickler::build(const P& state) {
  if (stack_.empty()) fail("stack underflow");
  const P& target = stack_.back();
  if (target->kind == Kind::Object) {
    // The attributes, as a dict: a class pickled with __getstate__ would carry other state,
    // which only its __setstate__ could read, and none is ever run here.
    if (state->kind != Kind::Dict) fail("object of class '" + target->s + "' with a state that is not a dict");
    if (target->built) fail("object of class '" + target->s + "' built twice");
    target->dict = state->dict;
    nest(target, state);
    target->built = true;
    return;
  }
  // Otherwise the state of an OrderedDict (its _metadata) or a tensor (hooks): unused, as before.
}

P Unpickler::persistent(const P& pid) {
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

void Unpickler::finish() {
  // Every view is inside its storage and does not overlap itself (reduce), so each holds at most
  // its storage's elements; tensors sharing a storage are bounded together here.
  int64_t storage_bytes = 0, tensor_bytes = 0;
  for (const auto& [key, st] : *storages_)
    if (st->data.defined()) storage_bytes += static_cast<int64_t>(st->data.nbytes());
  for (auto& p : pending_) {
    if (!p.storage->data.defined()) throw std::invalid_argument("storage '" + p.storage->key + "' has no data");
    int64_t numel = 1;
    for (int64_t n : p.size) numel *= n;  // ≤ the storage's elements (no overlap), so no overflow
    tensor_bytes += numel * element_size(p.storage->dtype);
    if (tensor_bytes > 2 * storage_bytes + kViewSlackBytes)
      throw std::invalid_argument("the tensors view their storages more than twice over (" + std::to_string(tensor_bytes) +
                                  " bytes from " + std::to_string(storage_bytes) + ")");
    p.tensor->tensor = p.storage->data.as_strided(p.size, p.stride, p.offset).clone();
  }
}

}  // namespace ddpm::pickle
