#!/usr/bin/env bash
# Why libddpm keeps its own TOML reader (src/io/toml.hpp) instead of Debian's toml++
# (libtomlplusplus-dev): feeds toml++ the hostile configs of issue 27 item 2 and prints how each
# ends. toml++ 3.3.0 bounds the nesting of arrays and inline tables (TOML_MAX_NESTED_VALUES) but
# not the depth of dotted keys or [table.headers]: 200,000 parts (400 KB, under the 1 MiB cap)
# end in SIGSEGV (a stack overflow) inside the library, where no check of ours could bound them
# short of tokenizing the keys first. libddpm's reader refuses them ("line 1: key 'a' nested more
# than 64 deep").
#   bash bench/tomlpp-depth.sh
set -euo pipefail
[ -f /usr/include/toml++/toml.h ] || { echo "tomlpp-depth.sh: needs libtomlplusplus-dev" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/t.cpp" <<'CPP'
#include <toml++/toml.h>
#include <iostream>
#include <string>
int main(int argc, char** argv) {
  const std::string which = argv[1];
  const int n = std::stoi(argv[2]);
  std::string doc;
  if (which == "dotted-key") { doc = "a"; for (int i = 1; i < n; ++i) doc += ".a"; doc += " = 1\n"; }
  if (which == "table-header") { doc = "[a"; for (int i = 1; i < n; ++i) doc += ".a"; doc += "]\n"; }
  if (which == "nested-array") doc = "x = " + std::string(n, '[') + std::string(n, ']') + "\n";
  try {
    toml::parse(doc);
    std::cout << "parsed";
  } catch (const toml::parse_error& e) {
    std::cout << "error at line " << e.source().begin.line << ": " << e.description();
  }
}
CPP
g++ -std=c++17 -O2 "$dir/t.cpp" -o "$dir/t"
dpkg-query -W -f='toml++ ${Version}\n' libtomlplusplus-dev 2>/dev/null || true
for c in "dotted-key 20000" "dotted-key 200000" "table-header 200000" "nested-array 200000"; do
  set +e
  out=$("$dir/t" $c 2>&1)
  rc=$?
  set -e
  if [ $rc -ge 128 ]; then out="killed by signal $((rc - 128))"; fi
  echo "$c parts: $out"
done
