#!/usr/bin/env bash
# ctest api_docs_complete: every public declaration of include/ddpm/ has a doc comment.
#   check-api-docs.sh DOXYGEN SOURCE_DIR WORK_DIR
# Runs Doxygen with the project's docs/Doxyfile.in (read here, so an edit to it counts without a
# reconfigure) (WARN_IF_UNDOCUMENTED, WARN_IF_DOC_ERROR) and fails
# on any warning: an undocumented class, member, function, enum or variable, or a malformed
# comment. It first checks itself: a copy of the headers with a planted undocumented function
# and struct member must make Doxygen name both, so the test cannot pass by not looking.
set -uo pipefail
if [ $# -ne 3 ]; then echo "usage: $0 DOXYGEN SOURCE_DIR WORK_DIR" >&2; exit 2; fi
DOXYGEN=$1 SRC=$2 WORK=$3
rm -rf "$WORK"; mkdir -p "$WORK"
DOXYFILE=$WORK/Doxyfile
sed -e "s|@PROJECT_SOURCE_DIR@|$SRC|g" -e "s|@PROJECT_VERSION@||g" -e "s|@DDPM_DOCS_OUTPUT_DIR@|$WORK/out|g" \
    -e "s|@DDPM_DOCS_WARN_LOG@|$WORK/warnings.log|g" "$SRC/docs/Doxyfile.in" > "$DOXYFILE"
if grep -n "@[A-Z_]*@" "$DOXYFILE"; then echo "FAIL: docs/Doxyfile.in has a variable this script does not fill" >&2; exit 1; fi

run_doxygen() {  # headers folder, warning log
  mkdir -p "$WORK/out"
  { cat "$DOXYFILE"
    echo "INPUT = $1 $SRC/docs/api-namespaces.dox"
    echo "STRIP_FROM_PATH = $(dirname "$1")"
    echo "OUTPUT_DIRECTORY = $WORK/out"
    echo "WARN_LOGFILE = $2"
    echo "GENERATE_HTML = NO"
    echo "GENERATE_XML = YES"
    echo "QUIET = YES"
  } | "$DOXYGEN" - > "$WORK/doxygen-stdout.txt" 2>&1
}

# 1. The planted declarations are found.
mkdir -p "$WORK/planted"
cp -r "$SRC/include/ddpm" "$WORK/planted/ddpm"
cat > "$WORK/planted/ddpm/planted.hpp" <<'HPP'
#pragma once
namespace ddpm {
int planted_undocumented_function(int x);
/// A documented struct with one undocumented member.
struct PlantedDocumented {
  int planted_undocumented_member = 0;
};
}  // namespace ddpm
HPP
run_doxygen "$WORK/planted/ddpm" "$WORK/planted.log" || { echo "FAIL: doxygen failed:"; cat "$WORK/doxygen-stdout.txt"; exit 1; }
for name in planted_undocumented_function planted_undocumented_member; do
  if ! grep -q "$name" "$WORK/planted.log"; then
    echo "FAIL: self-check: Doxygen did not report the planted undocumented '$name'; its log:"
    cat "$WORK/planted.log"
    exit 1
  fi
done
echo "self-check: the planted undocumented function and member were reported"

# 2. The real headers: no warning at all.
run_doxygen "$SRC/include/ddpm" "$WORK/warnings.log" || { echo "FAIL: doxygen failed:"; cat "$WORK/doxygen-stdout.txt"; exit 1; }
count=$(grep -c "warning:" "$WORK/warnings.log")
if [ -s "$WORK/warnings.log" ]; then
  echo "FAIL: $count Doxygen warnings in include/ddpm/ (add a /// comment to each declaration named):"
  sed "s|$SRC/||" "$WORK/warnings.log"
  exit 1
fi
echo "ok: every public declaration in include/ddpm/ has a doc comment ($(find "$SRC/include/ddpm" -name '*.hpp' | wc -l) headers)"
