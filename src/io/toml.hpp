#pragma once
// A TOML 1.0 reader and the few writing helpers libddpm's config files need. Everything but
// dates and times: strings (basic, literal, multi-line), integers (decimal, hex, octal,
// binary, with underscores), floats (inf, nan), booleans, arrays (multi-line, nested),
// inline tables, [tables], [[arrays of tables]] and dotted keys. Malformed input is an error
// naming the line, never a guess.
//
// Why not a library: Debian's toml++ (libtomlplusplus-dev 3.3.0) was measured against issue 27's
// hostile configs and crashes (SIGSEGV, a stack overflow inside the library) on a dotted key
// `a.a.…` or a [a.a.…] header of 200,000 parts, a 400 KB file under the 1 MiB cap; its nesting
// limit covers arrays and inline tables only, and bounding key depth ahead of it would need a
// tokenizer of our own. bench/tomlpp-depth.sh reproduces it. This reader bounds every nesting
// (limits.hpp), indexes keys in O(n log n), names the line, and is fuzzed (scripts/fuzz.sh toml).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace ddpm::toml {

/// A parse error; what() is "line N: what".
struct ParseError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// A TOML value: a scalar, an array, or a table (the document itself is one).
struct Value {
  /// The kind of value; it says which member below holds it.
  enum class Kind { String, Integer, Float, Boolean, Array, Table };
  /// This value's kind.
  Kind kind = Kind::Table;
  /// The value of a String, Integer, Float or Boolean.
  ///@{
  std::string string;
  int64_t integer = 0;
  double floating = 0.0;
  bool boolean = false;
  ///@}
  std::vector<Value> array;                           ///< Array (and arrays of tables)
  std::vector<std::pair<std::string, Value>> table;   ///< Table, in file order
  int line = 0;                                       ///< where the value (or table) was defined
  bool header_defined = false;  ///< parser bookkeeping: a [header] defined this table
  bool closed = false;          ///< parser bookkeeping: an inline table or array value (not extensible)
  uint32_t table_id = 0;        ///< parser bookkeeping: names this table in the parser's key index

  /// The entry `key` of a table, or nullptr.
  const Value* find(const std::string& key) const;
  /// "string", "integer", "float", "boolean", "array", "table".
  const char* kind_name() const;
};

/// Parses a whole document into its root table. Throws ParseError, also past the bounds of
/// ddpm/util/limits.hpp (text size, nesting depth) and for CR-only line endings.
Value parse(const std::string& text);

/// `s` as a TOML basic string, quotes and escapes included.
std::string quote(const std::string& s);
/// Shortest text that reads back as exactly `v`, always a TOML float ("2.0", "1e-08", "inf").
std::string format_float(double v);

}  // namespace ddpm::toml
