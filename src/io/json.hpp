#pragma once
// A small strict JSON (RFC 8259) reader and writer for the headers and configs of foreign
// model files (safetensors headers, diffusers config.json). Untrusted input: nesting depth
// and text size are bounded, strings must be valid UTF-8, duplicate object keys and
// trailing garbage are errors. Numbers keep their text, so 64-bit integers stay exact.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ddpm/util/limits.hpp"

namespace ddpm::json {

/// The JSON value types (RFC 8259).
enum class Type { Null, Bool, Number, String, Array, Object };

/// A JSON value: built with the static constructors, read with the accessors.
class Value {
 public:
  Value() = default;  ///< null
  /// A value of the named type.
  ///@{
  static Value boolean(bool b);
  ///@}
  static Value number(double x);   ///< shortest text that reads back exactly
  /// A number written exactly as `text` (e.g. a fixed number of digits); throws
  /// std::invalid_argument unless `text` is a JSON number (RFC 8259 grammar).
  static Value number_literal(std::string text);
  /// A value of the named type (integer: written without fraction; object: members in order).
  ///@{
  static Value integer(int64_t x);
  static Value string(std::string s);
  static Value array(std::vector<Value> items = {});
  static Value object(std::vector<std::pair<std::string, Value>> members = {});
  ///@}

  /// The value's type, and tests for each.
  ///@{
  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }
  ///@}
  /// Accessors throw std::invalid_argument ("expected a string", ...) on the wrong type.
  bool as_bool() const;
  /// A number's value as a double.
  double as_double() const;
  /// An integer written without fraction or exponent, in int64 range.
  int64_t as_int64() const;
  /// A string's value.
  const std::string& as_string() const;
  /// A number's literal text (as read, or as number()/integer() wrote it).
  const std::string& number_text() const;
  /// An array's elements.
  const std::vector<Value>& items() const;
  /// An object's members, in order.
  const std::vector<std::pair<std::string, Value>>& members() const;
  /// The member named `key`, or nullptr (also when this is not an object).
  const Value* find(std::string_view key) const;
  /// Appends a member to an object (no duplicate check: the writer's caller owns the keys).
  Value& set(std::string key, Value v);
  /// Appends an element to an array.
  Value& push(Value v);

 private:
  friend class Parser;
  Type type_ = Type::Null;
  bool bool_ = false;
  std::string text_;  ///< a string's value, or a number's literal text
  std::vector<Value> items_;
  std::vector<std::pair<std::string, Value>> members_;
};

/// Bounds on what the parser accepts (untrusted input); defaults from ddpm/util/limits.hpp.
struct Limits {
  size_t max_depth = limits::kMaxJsonDepth;    ///< arrays/objects nested deeper are an error
  size_t max_bytes = limits::kMaxJsonBytes;    ///< longer texts are refused before parsing
  size_t max_values = limits::kMaxJsonValues;  ///< documents of more values are an error (memory bound)
};

/// Parses one JSON value (surrounding whitespace allowed). Throws std::invalid_argument
/// "JSON at byte N: what" on any deviation from RFC 8259, a duplicate key, invalid UTF-8,
/// or a limit. Duplicate keys are found in O(n log n).
Value parse(std::string_view text, const Limits& limits = {});

/// Serialises; indent < 0: compact on one line, otherwise pretty-printed with that many spaces.
/// Object members keep their order.
std::string write(const Value& v, int indent = -1);

/// Serialises on one line with a space after each ',' and ':' (the layout of Python's
/// json.dumps), e.g. {"a": 1, "b": [1, 2]}.
std::string write_spaced(const Value& v);

}  // namespace ddpm::json
