// Strict JSON: a recursive-descent parser over a string_view (depth-bounded) and a writer.
#include "io/json.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <stdexcept>

#include "ddpm/util/limits.hpp"

namespace ddpm::json {

namespace {
[[noreturn]] void type_error(const char* what) { throw std::invalid_argument(std::string("JSON: expected ") + what); }
}  // namespace

Value Value::boolean(bool b) {
  Value v;
  v.type_ = Type::Bool;
  v.bool_ = b;
  return v;
}
Value Value::number(double x) {
  if (!std::isfinite(x)) throw std::invalid_argument("JSON: cannot write a non-finite number");
  Value v;
  v.type_ = Type::Number;
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {  // shortest text that reads back exactly
    std::snprintf(buf, sizeof buf, "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  v.text_ = buf;
  return v;
}
Value Value::number_literal(std::string text) {
  Value v;
  try {
    v = parse(text);
  } catch (const std::invalid_argument&) {
  }
  if (!v.is_number() || v.number_text() != text) throw std::invalid_argument("JSON: '" + text + "' is not a number");
  return v;
}
Value Value::integer(int64_t x) {
  Value v;
  v.type_ = Type::Number;
  v.text_ = std::to_string(x);
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.type_ = Type::String;
  v.text_ = std::move(s);
  return v;
}
Value Value::array(std::vector<Value> items) {
  Value v;
  v.type_ = Type::Array;
  v.items_ = std::move(items);
  return v;
}
Value Value::object(std::vector<std::pair<std::string, Value>> members) {
  Value v;
  v.type_ = Type::Object;
  v.members_ = std::move(members);
  return v;
}

bool Value::as_bool() const {
  if (type_ != Type::Bool) type_error("true or false");
  return bool_;
}
double Value::as_double() const {
  if (type_ != Type::Number) type_error("a number");
  return std::strtod(text_.c_str(), nullptr);
}
int64_t Value::as_int64() const {
  if (type_ != Type::Number || text_.find_first_of(".eE") != std::string::npos) type_error("an integer");
  errno = 0;
  const long long x = std::strtoll(text_.c_str(), nullptr, 10);
  if (errno == ERANGE) type_error("an integer in the int64 range");
  return x;
}
const std::string& Value::as_string() const {
  if (type_ != Type::String) type_error("a string");
  return text_;
}
const std::string& Value::number_text() const {
  if (type_ != Type::Number) type_error("a number");
  return text_;
}
const std::vector<Value>& Value::items() const {
  if (type_ != Type::Array) type_error("an array");
  return items_;
}
const std::vector<std::pair<std::string, Value>>& Value::members() const {
  if (type_ != Type::Object) type_error("an object");
  return members_;
}
const Value* Value::find(std::string_view key) const {
  if (type_ != Type::Object) return nullptr;
  for (const auto& [k, v] : members_)
    if (k == key) return &v;
  return nullptr;
}
Value& Value::set(std::string key, Value v) {
  if (type_ != Type::Object) type_error("an object");
  members_.emplace_back(std::move(key), std::move(v));
  return *this;
}
Value& Value::push(Value v) {
  if (type_ != Type::Array) type_error("an array");
  items_.push_back(std::move(v));
  return *this;
}

// ------------------------------------------------------------------ parser

class Parser {
 public:
  Parser(std::string_view s, const Limits& limits) : s_(s), limits_(limits) {}

  Value document() {
    if (s_.size() > limits_.max_bytes)
      throw std::invalid_argument("JSON: text of " + std::to_string(s_.size()) + " bytes exceeds the limit of " +
                                  std::to_string(limits_.max_bytes));
    ws();
    Value v = value(0);
    ws();
    if (pos_ != s_.size()) fail("trailing characters after the value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument("JSON at byte " + std::to_string(pos_) + ": " + what);
  }
  bool eof() const { return pos_ >= s_.size(); }
  char peek() const { return eof() ? '\0' : s_[pos_]; }
  void ws() {
    while (!eof() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  void expect(char c) {
    if (peek() != c || eof()) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  void literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) fail("invalid literal");
    pos_ += word.size();
  }

  Value value(size_t depth) {
    if (depth > limits_.max_depth) fail("nesting deeper than " + std::to_string(limits_.max_depth));
    // Each value costs ~100 bytes parsed, whatever its text: `[1,1,…]` is 2 bytes a value.
    if (++values_ > limits_.max_values)
      fail("more than " + std::to_string(limits_.max_values) + " values (the limit of this reader)");
    if (eof()) fail("unexpected end of text");
    switch (peek()) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': return Value::string(string());
      case 't': literal("true"); return Value::boolean(true);
      case 'f': literal("false"); return Value::boolean(false);
      case 'n': literal("null"); return Value();
      default: return number();
    }
  }

  // Duplicate keys, found by sorting once the object is read: O(n log n) (a search per key
  // made a 2.5 MB header of 160k keys take 33 s). Reports the first key that repeats one before it.
  void check_duplicates(const Value& v, const std::vector<size_t>& key_at) {
    const auto& m = v.members_;
    if (m.size() < 2) return;
    std::vector<size_t> order(m.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return m[a].first < m[b].first; });
    size_t first_repeat = m.size();
    for (size_t k = 1; k < order.size(); ++k)
      if (m[order[k]].first == m[order[k - 1]].first) first_repeat = std::min(first_repeat, order[k]);
    if (first_repeat == m.size()) return;
    pos_ = key_at[first_repeat];
    fail("duplicate key \"" + m[first_repeat].first + "\"");
  }

  Value object(size_t depth) {
    expect('{');
    Value v = Value::object();
    ws();
    if (peek() == '}') {
      ++pos_;
      return v;
    }
    std::vector<size_t> key_at;  // where each key starts, for the duplicate's message
    for (;;) {
      ws();
      if (peek() != '"') fail("expected a string key");
      key_at.push_back(pos_);
      std::string key = string();
      ws();
      expect(':');
      ws();
      v.members_.emplace_back(std::move(key), value(depth + 1));
      ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}');
      const size_t end = pos_;
      check_duplicates(v, key_at);
      pos_ = end;
      return v;
    }
  }

  Value array(size_t depth) {
    expect('[');
    Value v = Value::array();
    ws();
    if (peek() == ']') {
      ++pos_;
      return v;
    }
    for (;;) {
      ws();
      v.items_.push_back(value(depth + 1));
      ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']');
      return v;
    }
  }

  Value number() {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t d = pos_;
      while (!eof() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - d;
    };
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
      if (peek() >= '0' && peek() <= '9') fail("leading zero in a number");
    } else if (digits() == 0) {
      fail("invalid value");
    }
    if (peek() == '.') {
      ++pos_;
      if (digits() == 0) fail("expected digits after '.'");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (digits() == 0) fail("expected digits in the exponent");
    }
    Value v;
    v.type_ = Type::Number;
    v.text_ = std::string(s_.substr(start, pos_ - start));
    return v;
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    unsigned x = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      x <<= 4;
      if (c >= '0' && c <= '9') x |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') x |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') x |= unsigned(c - 'A' + 10);
      else fail("invalid hex digit in a \\u escape");
    }
    return x;
  }

  static void utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  // One UTF-8 sequence starting at pos_ (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
  void copy_utf8(std::string& out) {
    const auto b0 = static_cast<unsigned char>(s_[pos_]);
    size_t n;
    unsigned cp, min;
    if (b0 < 0x80) {
      out += char(b0);
      ++pos_;
      return;
    } else if ((b0 & 0xE0) == 0xC0) {
      n = 2, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      n = 3, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      n = 4, cp = b0 & 0x07, min = 0x10000;
    } else {
      fail("invalid UTF-8 in a string");
    }
    if (pos_ + n > s_.size()) fail("truncated UTF-8 sequence");
    for (size_t i = 1; i < n; ++i) {
      const auto b = static_cast<unsigned char>(s_[pos_ + i]);
      if ((b & 0xC0) != 0x80) fail("invalid UTF-8 in a string");
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail("invalid UTF-8 in a string");
    out.append(s_.substr(pos_, n));
    pos_ += n;
  }

  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (eof()) fail("unterminated string");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') {
        copy_utf8(out);
        continue;
      }
      ++pos_;
      if (eof()) fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate in a \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(pos_, 2) != "\\u") fail("high surrogate without its low half");
            pos_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("high surrogate without its low half");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default: --pos_; fail("invalid escape");
      }
    }
  }

  std::string_view s_;
  Limits limits_;
  size_t pos_ = 0;
  size_t values_ = 0;
};

Value parse(std::string_view text, const Limits& limits) { return Parser(text, limits).document(); }

// ------------------------------------------------------------------ writer

namespace {

void write_string(std::string& out, const std::string& s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

constexpr int kSpaced = -2;  // one line, ", " and ": " (write_spaced)

void write_value(std::string& out, const Value& v, int indent, int level) {
  auto newline = [&](int l) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent) * static_cast<size_t>(l), ' ');
  };
  switch (v.type()) {
    case Type::Null: out += "null"; break;
    case Type::Bool: out += v.as_bool() ? "true" : "false"; break;
    case Type::Number: out += v.number_text(); break;
    case Type::String: write_string(out, v.as_string()); break;
    case Type::Array: {
      out += '[';
      const auto& items = v.items();
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += indent == kSpaced ? ", " : ",";
        newline(level + 1);
        write_value(out, items[i], indent, level + 1);
      }
      if (!items.empty()) newline(level);
      out += ']';
      break;
    }
    case Type::Object: {
      out += '{';
      const auto& members = v.members();
      for (size_t i = 0; i < members.size(); ++i) {
        if (i) out += indent == kSpaced ? ", " : ",";
        newline(level + 1);
        write_string(out, members[i].first);
        out += indent == -1 ? ":" : ": ";
        write_value(out, members[i].second, indent, level + 1);
      }
      if (!members.empty()) newline(level);
      out += '}';
      break;
    }
  }
}

}  // namespace

std::string write(const Value& v, int indent) {
  std::string out;
  write_value(out, v, indent < 0 ? -1 : indent, 0);
  return out;
}

std::string write_spaced(const Value& v) {
  std::string out;
  write_value(out, v, kSpaced, 0);
  return out;
}

}  // namespace ddpm::json
