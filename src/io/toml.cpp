#include "io/toml.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "ddpm/util/limits.hpp"

namespace ddpm::toml {

const Value* Value::find(const std::string& key) const {
  for (const auto& [k, v] : table)
    if (k == key) return &v;
  return nullptr;
}

const char* Value::kind_name() const {
  switch (kind) {
    case Kind::String: return "string";
    case Kind::Integer: return "integer";
    case Kind::Float: return "float";
    case Kind::Boolean: return "boolean";
    case Kind::Array: return "array";
    case Kind::Table: return "table";
  }
  return "?";
}

namespace {

// Tables, dotted keys, arrays and inline tables nested deeper are refused: this bounds the
// parser's recursion and Value's destructor (a 400 KB key a.a.a… once crashed both).
constexpr int kMaxDepth = limits::kMaxTomlDepth;

bool is_bare_key_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  Value document() {
    if (s_.size() > limits::kMaxTomlBytes)
      throw ParseError("TOML text of " + std::to_string(s_.size()) + " bytes exceeds the limit of " +
                       std::to_string(limits::kMaxTomlBytes));
    Value root;
    root.kind = Value::Kind::Table;
    Value* current = &root;
    int current_depth = 0;
    while (true) {
      skip_ws_comments_newlines();
      if (at_end()) break;
      if (peek() == '[') {
        current = table_header(root, current_depth);
      } else {
        key_value(*current, current_depth);
      }
      end_of_line();
    }
    return root;
  }

 private:
  const std::string& s_;
  size_t pos_ = 0;
  int line_ = 1;
  // Where each key of each table sits in its `table` vector: duplicate checks in O(log n)
  // (a linear search per key made 200k keys quadratic). Tables are told apart by `table_id`.
  std::map<std::pair<uint32_t, std::string>, size_t> index_;
  uint32_t next_id_ = 0;

  Value* child(Value* t, const std::string& key) {
    if (t->table_id == 0) return nullptr;
    auto it = index_.find({t->table_id, key});
    return it == index_.end() ? nullptr : &t->table[it->second].second;
  }
  Value* add(Value* t, const std::string& key, Value v) {
    if (t->table_id == 0) t->table_id = ++next_id_;
    index_.emplace(std::make_pair(t->table_id, key), t->table.size());
    t->table.emplace_back(key, std::move(v));
    return &t->table.back().second;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw ParseError("line " + std::to_string(line_) + ": " + what);
  }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek(size_t ahead = 0) const { return pos_ + ahead < s_.size() ? s_[pos_ + ahead] : '\0'; }
  bool starts_with(const char* lit) const { return s_.compare(pos_, std::strlen(lit), lit) == 0; }

  void skip_ws() {
    while (!at_end() && (peek() == ' ' || peek() == '\t')) ++pos_;
  }
  void skip_comment() {
    if (peek() != '#') return;
    while (!at_end() && peek() != '\n') {
      unsigned char c = static_cast<unsigned char>(peek());
      if (c == '\r' && peek(1) != '\n') bare_cr();
      if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7F) fail("control character in a comment");
      ++pos_;
    }
  }
  // TOML lines end in LF or CRLF; a file saved with CR-only line endings would otherwise read
  // as one long comment line (and its keys silently take their defaults).
  [[noreturn]] void bare_cr() const {
    fail("carriage return without a line feed (CR-only line endings?): TOML lines end in LF or CRLF");
  }
  bool newline() {
    if (peek() == '\n') {
      ++pos_;
      ++line_;
      return true;
    }
    if (peek() == '\r' && peek(1) == '\n') {
      pos_ += 2;
      ++line_;
      return true;
    }
    return false;
  }
  void skip_ws_comments_newlines() {
    while (true) {
      skip_ws();
      skip_comment();
      if (!newline()) return;
    }
  }
  void end_of_line() {
    skip_ws();
    skip_comment();
    if (at_end()) return;
    if (peek() == '\r' && peek(1) != '\n') bare_cr();
    if (!newline()) fail(std::string("expected the end of the line, found '") + peek() + "'");
  }

  // ---------------------------------------------------------------- keys
  std::string simple_key() {
    if (peek() == '"') {
      if (starts_with("\"\"\"")) fail("a key cannot be a multi-line string");
      return basic_string();
    }
    if (peek() == '\'') {
      if (starts_with("'''")) fail("a key cannot be a multi-line string");
      return literal_string();
    }
    size_t start = pos_;
    while (!at_end() && is_bare_key_char(peek())) ++pos_;
    if (pos_ == start) fail(at_end() || peek() == '\n' ? "expected a key" : std::string("unexpected '") + peek() + "' where a key was expected");
    return s_.substr(start, pos_ - start);
  }
  std::vector<std::string> dotted_key() {
    std::vector<std::string> parts{simple_key()};
    while (true) {
      skip_ws();
      if (peek() != '.') return parts;
      ++pos_;
      skip_ws();
      if (parts.size() >= static_cast<size_t>(kMaxDepth))
        fail("dotted key with more than " + std::to_string(kMaxDepth) + " parts");
      parts.push_back(simple_key());
    }
  }

  static bool is_closed(const Value* v) { return v->closed; }

  // Walks (creating) the tables of `path` below `from`; arrays of tables resolve to their last table.
  Value* descend(Value* from, const std::vector<std::string>& path, size_t count, bool via_dotted_key) {
    Value* t = from;
    for (size_t i = 0; i < count; ++i) {
      Value* next = child(t, path[i]);
      if (next == nullptr) {
        next = add(t, path[i], Value{});
        next->kind = Value::Kind::Table;
        next->line = line_;
      } else if (next->kind == Value::Kind::Array && !next->array.empty() &&
                 next->array.back().kind == Value::Kind::Table && !is_closed(next) && !via_dotted_key) {
        next = &next->array.back();
      } else if (next->kind != Value::Kind::Table) {
        fail("key '" + path[i] + "' is already a " + next->kind_name());
      }
      if (is_closed(next)) fail("inline table '" + path[i] + "' cannot be extended");
      t = next;
    }
    return t;
  }

  Value* table_header(Value& root, int& depth) {
    bool array_of_tables = starts_with("[[");
    pos_ += array_of_tables ? 2 : 1;
    skip_ws();
    std::vector<std::string> path = dotted_key();
    skip_ws();
    if (array_of_tables ? !starts_with("]]") : peek() != ']') fail("expected ']' to close the table header");
    pos_ += array_of_tables ? 2 : 1;
    // Each part may be an array of tables (two levels): the bound counts both.
    depth = 2 * static_cast<int>(path.size());
    if (depth > kMaxDepth) fail("table header nested more than " + std::to_string(kMaxDepth / 2) + " deep");
    Value* parent = descend(&root, path, path.size() - 1, false);
    const std::string& last = path.back();
    Value* existing = child(parent, last);
    if (array_of_tables) {
      if (existing == nullptr) {
        existing = add(parent, last, Value{});
        existing->kind = Value::Kind::Array;
        existing->line = line_;
      } else if (existing->kind != Value::Kind::Array || is_closed(existing)) {
        fail("'" + last + "' is not an array of tables");
      }
      existing->array.emplace_back();
      Value& t = existing->array.back();
      t.kind = Value::Kind::Table;
      t.line = line_;
      return &t;
    }
    if (existing != nullptr) {
      if (existing->kind != Value::Kind::Table || is_closed(existing)) fail("'" + last + "' is already defined");
      if (existing->header_defined) fail("table '" + last + "' is defined twice");
    } else {
      existing = add(parent, last, Value{});
      existing->kind = Value::Kind::Table;
      existing->line = line_;
    }
    existing->header_defined = true;
    return existing;
  }

  // `depth`: how deep `table` is nested (the root is 0).
  void key_value(Value& table, int depth) {
    int key_line = line_;
    std::vector<std::string> path = dotted_key();
    skip_ws();
    if (peek() != '=') fail("expected '=' after the key '" + path.back() + "'");
    ++pos_;
    skip_ws();
    depth += static_cast<int>(path.size());
    if (depth > kMaxDepth) fail("key '" + path.back() + "' nested more than " + std::to_string(kMaxDepth) + " deep");
    Value* parent = descend(&table, path, path.size() - 1, true);
    if (child(parent, path.back()) != nullptr) fail("key '" + path.back() + "' is defined twice");
    Value v;
    try {
      v = value(depth);
    } catch (const ParseError& e) {  // name the key whose value is bad (once, at the innermost key)
      const std::string what = e.what();
      const size_t colon = what.find(": ");
      if (colon == std::string::npos || what.find(": key '") != std::string::npos) throw;
      throw ParseError(what.substr(0, colon) + ": key '" + path.back() + "': " + what.substr(colon + 2));
    }
    v.line = key_line;
    if (v.kind == Value::Kind::Array || v.kind == Value::Kind::Table) v.closed = true;
    add(parent, path.back(), std::move(v));
  }

  // ---------------------------------------------------------------- values
  // `depth`: how deep this value is nested (a top-level key's value is 1).
  Value value(int depth) {
    if (depth > kMaxDepth) fail("arrays or inline tables nested more than " + std::to_string(kMaxDepth) + " deep");
    Value v;
    v.line = line_;
    char c = peek();
    if (c == '"' || c == '\'') {
      v.kind = Value::Kind::String;
      if (starts_with("\"\"\"")) v.string = multiline_basic_string();
      else if (starts_with("'''")) v.string = multiline_literal_string();
      else v.string = c == '"' ? basic_string() : literal_string();
    } else if (c == '[') {
      v = array(depth);
    } else if (c == '{') {
      v = inline_table(depth);
    } else if (starts_with("true") && !is_bare_key_char(peek(4))) {
      v.kind = Value::Kind::Boolean;
      v.boolean = true;
      pos_ += 4;
    } else if (starts_with("false") && !is_bare_key_char(peek(5))) {
      v.kind = Value::Kind::Boolean;
      pos_ += 5;
    } else {
      v = number();
    }
    return v;
  }

  Value array(int depth) {
    Value v;
    v.kind = Value::Kind::Array;
    v.line = line_;
    ++pos_;  // [
    while (true) {
      skip_ws_comments_newlines();
      if (at_end()) fail("unterminated array");
      if (peek() == ']') break;
      v.array.push_back(value(depth + 1));
      skip_ws_comments_newlines();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') break;
      fail(at_end() ? "unterminated array" : std::string("expected ',' or ']' in an array, found '") + peek() + "'");
    }
    ++pos_;  // ]
    return v;
  }

  Value inline_table(int depth) {
    Value v;
    v.kind = Value::Kind::Table;
    v.line = line_;
    ++pos_;  // {
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return v;
    }
    while (true) {
      skip_ws();
      key_value(v, depth);
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') break;
      fail("expected ',' or '}' in an inline table (inline tables are one line)");
    }
    ++pos_;
    return v;
  }

  uint32_t hex_escape(int digits) {
    uint32_t cp = 0;
    for (int i = 0; i < digits; ++i) {
      char h = peek();
      int d = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
      if (d < 0) fail("bad \\u escape");
      cp = cp * 16 + static_cast<uint32_t>(d);
      ++pos_;
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail("escape is not a Unicode scalar value");
    return cp;
  }

  void escape(std::string& out) {
    ++pos_;  // backslash
    char e = peek();
    ++pos_;
    switch (e) {
      case 'b': out += '\b'; break;
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'f': out += '\f'; break;
      case 'r': out += '\r'; break;
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case 'u': append_utf8(out, hex_escape(4)); break;
      case 'U': append_utf8(out, hex_escape(8)); break;
      default: fail(std::string("bad escape '\\") + e + "' in a string");
    }
  }

  void string_char(std::string& out, bool multiline) {
    unsigned char c = static_cast<unsigned char>(peek());
    if (c == '\r' && multiline && peek(1) != '\n') bare_cr();
    if ((c < 0x20 && c != '\t' && !(multiline && (c == '\n' || c == '\r'))) || c == 0x7F)
      fail(c == '\n' ? "unterminated string" : "control character in a string");
    if (c == '\n') ++line_;
    out += static_cast<char>(c);
    ++pos_;
  }

  std::string basic_string() {
    ++pos_;
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated string");
      if (peek() == '"') break;
      if (peek() == '\\') escape(out);
      else string_char(out, false);
    }
    ++pos_;
    return out;
  }
  std::string literal_string() {
    ++pos_;
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated string");
      if (peek() == '\'') break;
      string_char(out, false);
    }
    ++pos_;
    return out;
  }
  std::string multiline_basic_string() {
    pos_ += 3;
    newline();  // a newline right after the opening quotes is trimmed
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated multi-line string");
      if (starts_with("\"\"\"")) {
        // Up to two quotes may end the content: """a"""" is 'a"'.
        size_t run = 0;
        while (peek(run) == '"') ++run;
        if (run > 5) fail("too many quotes closing a multi-line string");
        out.append(run - 3, '"');
        pos_ += run;
        return out;
      }
      if (peek() == '\\') {
        // Line-ending backslash: trims the newline and the whitespace that follows.
        size_t p = pos_ + 1;
        while (p < s_.size() && (s_[p] == ' ' || s_[p] == '\t')) ++p;
        if (p < s_.size() && (s_[p] == '\n' || (s_[p] == '\r' && p + 1 < s_.size() && s_[p + 1] == '\n'))) {
          pos_ = p;
          while (true) {
            skip_ws();
            if (!newline()) break;
          }
          continue;
        }
        escape(out);
      } else {
        string_char(out, true);
      }
    }
  }
  std::string multiline_literal_string() {
    pos_ += 3;
    newline();
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated multi-line string");
      if (starts_with("'''")) {
        size_t run = 0;
        while (peek(run) == '\'') ++run;
        if (run > 5) fail("too many quotes closing a multi-line string");
        out.append(run - 3, '\'');
        pos_ += run;
        return out;
      }
      string_char(out, true);
    }
  }

  // Digits with single underscores between them (TOML's 1_000); returns them without underscores.
  std::string digits(bool (*ok)(char), const char* what) {
    std::string out;
    bool last_underscore = true;  // an underscore may not lead
    while (!at_end() && (ok(peek()) || peek() == '_')) {
      if (peek() == '_') {
        if (last_underscore) fail(std::string("misplaced '_' in ") + what);
        last_underscore = true;
      } else {
        out += peek();
        last_underscore = false;
      }
      ++pos_;
    }
    if (out.empty()) fail(std::string("expected digits in ") + what);
    if (last_underscore) fail(std::string("misplaced '_' in ") + what);
    return out;
  }

  Value number() {
    Value v;
    v.line = line_;
    size_t start = pos_;
    char sign = 0;
    if (peek() == '+' || peek() == '-') sign = s_[pos_++];
    if (starts_with("inf") || starts_with("nan")) {
      bool nan = peek() == 'n';
      pos_ += 3;
      v.kind = Value::Kind::Float;
      v.floating = nan ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
      if (sign == '-') v.floating = -v.floating;
      return v;
    }
    auto dec = [](char c) { return c >= '0' && c <= '9'; };
    if (!dec(peek())) {
      if (at_end() || peek() == '\n' || peek() == '\r' || peek() == '#') fail("expected a value");
      fail("bad value starting at '" + s_.substr(start, std::min<size_t>(20, s_.find('\n', start) - start)) +
           "' (strings need quotes)");
    }
    if (sign == 0 && peek() == '0' && (peek(1) == 'x' || peek(1) == 'o' || peek(1) == 'b')) {
      char base_char = peek(1);
      pos_ += 2;
      int base = base_char == 'x' ? 16 : base_char == 'o' ? 8 : 2;
      auto ok = base == 16 ? +[](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
                : base == 8 ? +[](char c) { return c >= '0' && c <= '7'; }
                            : +[](char c) { return c == '0' || c == '1'; };
      std::string d = digits(ok, "an integer");
      uint64_t u = 0;
      auto [p, ec] = std::from_chars(d.data(), d.data() + d.size(), u, base);
      if (ec != std::errc() || p != d.data() + d.size() || u > static_cast<uint64_t>(INT64_MAX))
        fail("integer out of range");
      v.kind = Value::Kind::Integer;
      v.integer = static_cast<int64_t>(u);
      return check_value_end(v);
    }
    std::string text = sign == '-' ? "-" : "";
    std::string int_part = digits(+dec, "a number");
    if (int_part.size() > 1 && int_part[0] == '0') fail("leading zeros are not allowed in a number");
    text += int_part;
    bool is_float = false;
    if (peek() == '-' || peek() == ':') fail("dates and times are not supported");
    if (peek() == '.') {
      ++pos_;
      if (!dec(peek())) fail("expected digits after the decimal point");
      text += "." + digits(+dec, "a number");
      is_float = true;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      text += "e";
      if (peek() == '+' || peek() == '-') text += s_[pos_++];
      text += digits(+dec, "an exponent");
      is_float = true;
    }
    if (is_float) {
      v.kind = Value::Kind::Float;
      // strtod is locale-dependent; from_chars for double is in GCC 11+.
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v.floating);
      if (ec == std::errc::result_out_of_range) {
        // Underflow to 0 / overflow to inf is what TOML readers do; from_chars reports it instead.
        v.floating = std::strtod(text.c_str(), nullptr);
      } else if (ec != std::errc() || p != text.data() + text.size()) {
        fail("bad float '" + text + "'");
      }
    } else {
      v.kind = Value::Kind::Integer;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v.integer);
      if (ec != std::errc() || p != text.data() + text.size()) fail("integer " + text + " out of range");
    }
    return check_value_end(v);
  }

  Value check_value_end(Value v) {
    char c = peek();
    if (!(at_end() || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '#' || c == ',' || c == ']' || c == '}'))
      fail(std::string("unexpected '") + c + "' after a number");
    return v;
  }
};

}  // namespace

Value parse(const std::string& text) { return Parser(text).document(); }

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string format_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  std::string s(buf, p);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  // to_chars writes "1e-08"; TOML wants a digit after '.', which "1e-08" satisfies as is.
  return s;
}

}  // namespace ddpm::toml
