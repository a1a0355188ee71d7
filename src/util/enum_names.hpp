#pragma once
// The one way libddpm reads and writes its enums as text (sampler kinds, spacings, predictions,
// EMA warmups, ...): a table of {value, name} pairs per enum. A value's first entry is its
// canonical name (what to_string writes and what the error lists); later entries for the same
// value are accepted aliases (diffusers' or k-diffusion's spellings). A name not in the table is
// one message format everywhere:
//
//     std::invalid_argument "<what> '<text>': expected a, b or c"
//
// where `what` is the config key / option ("sampler", "ema-warmup") and a, b, c the canonical
// names in table order.
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ddpm::util {

/// One row of an enum's name table.
template <class E>
struct EnumName {
  E value;           ///< the enum value
  const char* name;  ///< its text (canonical if this is the value's first row, else an alias)
};

namespace detail {
template <class E, size_t N>
bool is_canonical(const EnumName<E> (&table)[N], size_t i) {
  for (size_t j = 0; j < i; ++j)
    if (table[j].value == table[i].value) return false;
  return true;
}
}  // namespace detail

/// "a, b or c": the canonical names of `table`, in order.
template <class E, size_t N>
std::string enum_choices(const EnumName<E> (&table)[N]) {
  std::string names[N];
  size_t n = 0;
  for (size_t i = 0; i < N; ++i)
    if (detail::is_canonical(table, i)) names[n++] = table[i].name;
  std::string out;
  for (size_t i = 0; i < n; ++i) out += (i == 0 ? "" : i + 1 == n ? " or " : ", ") + names[i];
  return out;
}

/// The value named `text` (canonical name or alias). Throws std::invalid_argument
/// "WHAT 'TEXT': expected a, b or c" for any other text.
template <class E, size_t N>
E parse_enum(const EnumName<E> (&table)[N], std::string_view text, std::string_view what) {
  for (const auto& row : table)
    if (text == row.name) return row.value;
  throw std::invalid_argument(std::string(what) + " '" + std::string(text) + "': expected " + enum_choices(table));
}

/// The canonical name of `value`; "?" for a value outside the table (a cast integer).
template <class E, size_t N>
const char* enum_name(const EnumName<E> (&table)[N], E value) {
  for (const auto& row : table)
    if (row.value == value) return row.name;
  return "?";
}

}  // namespace ddpm::util
