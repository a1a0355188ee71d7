#pragma once
// The restricted unpickler of libddpm (private): Python pickles as torch.save and LibTorch's
// archives (torch::serialize::OutputArchive, TorchScript's data.pkl) write them, run without
// Python and without running anything. It knows dicts, OrderedDict, tuples, lists, numbers,
// strings, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and typed storages; classes
// (NEWOBJ + BUILD) only when the caller allows their name, and BUILD then only stores the
// state dict (no __setstate__ is ever looked up). Any other global is refused.
// Hand-written because no library reads pickles without executing them.
//
// Tensors are bounded before they view their storage: the storage must hold every element the
// view touches (dtype size × (offset + Σ (size−1)·stride + 1) bytes), the view must not overlap
// itself (stride 0 or interleaved strides are refused), and all tensors together may hold at
// most twice their storages' bytes (tied weights) plus kViewSlackBytes.
#include <ATen/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ddpm::pickle {

struct Obj;
using P = std::shared_ptr<Obj>;

enum class Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Tensor, Storage, Mark, Object };

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
  std::string s;                      ///< Str; Global: "module.name"; Object: its class ("module.name")
  std::vector<P> items;               ///< Tuple, List
  std::vector<std::pair<P, P>> dict;  ///< Dict (insertion order); Object: its state (BUILD)
  bool built = false;                 ///< Object: BUILD done (a second one is refused)
  std::shared_ptr<Storage> storage;
  at::Tensor tensor;
  int depth = 1;  ///< nesting depth of a container (bounded: limits::kMaxPickleDepth)
  Obj() = default;
  Obj(const Obj&) = delete;
  Obj& operator=(const Obj&) = delete;
  /// Children are released with a work list, not by recursion: a chain nested deeper than the
  /// depth bound (through a list appended to after it was nested) cannot overflow the stack.
  ~Obj();
};

/// Extra bytes all tensors of one file may hold beyond twice their storages (see above).
inline constexpr int64_t kViewSlackBytes = int64_t{64} << 20;

class Unpickler {
 public:
  /// loader(key, dtype, numel): the bytes of a storage as a 1-D tensor (zip formats), or null
  /// to fill them later (legacy format).
  using Loader = std::function<at::Tensor(const std::string& key, at::ScalarType dtype, int64_t numel)>;
  /// allow_class(name): whether NEWOBJ may make an instance of the class "module.name".
  using ClassFilter = std::function<bool(const std::string& name)>;
  using Storages = std::unordered_map<std::string, std::shared_ptr<Storage>>;

  Unpickler(std::string_view bytes, Loader loader, Storages* storages, ClassFilter allow_class = nullptr);

  /// Runs the pickle to its STOP. Throws std::invalid_argument (with the pickle byte).
  P run();
  size_t position() const { return pos_; }
  /// Views the tensors into their storages once every storage's bytes are known (bounded as
  /// described above) and copies them out.
  void finish();

 private:
  /// Raises a container's depth for a child put into it; refuses nesting past the bound.
  P nest(P c, const P& child);
  P nest_all(P c);
  struct Pending {
    P tensor;
    std::shared_ptr<Storage> storage;
    int64_t offset;
    std::vector<int64_t> size, stride;
  };
  [[noreturn]] void fail(const std::string& what) const;
  std::string_view take(uint64_t n);
  uint8_t u8();
  uint64_t le(size_t n);
  std::string line();
  void str(uint64_t n);
  void push(P p);
  P pop();
  std::vector<P> pop_mark();
  P container(Kind k);
  void memo(uint64_t idx);
  void get(uint64_t idx);
  P reduce(const P& fn, const P& args);
  P newobj(const P& cls, const P& args);
  void build(const P& state);
  P persistent(const P& pid);

  std::string_view b_;
  size_t pos_ = 0;
  int64_t ops_ = 0;
  Loader loader_;
  Storages* storages_;
  ClassFilter allow_class_;
  std::vector<P> stack_, memo_;
  std::vector<Pending> pending_;
};

/// Element size of a storage dtype in bytes.
int64_t element_size(at::ScalarType t);

}  // namespace ddpm::pickle
