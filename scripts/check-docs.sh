#!/usr/bin/env bash
# Checks that the shell commands of README.md and docs/*.md run as written.
#
#   scripts/check-docs.sh [--bin DIR] [--quick] [--work DIR] [--list] [FILE.md ...]
#
# Every ```sh block is a unit. A marker comment on the line(s) just above a block says how to
# treat it (no marker = run it as written):
#   <!-- docs-check: quick -->               cheap (--help, ddpm-schedule, a dry run): run in both modes
#   <!-- docs-check: long: TOOL OPTS; ... --> trains or samples for minutes: run with OPTS replacing
#                                            (or added to) TOOL's options, e.g. `ddpm-train --steps 20`
#   <!-- docs-check: skip: REASON -->        never run; REASON is printed (needs a GPU, needs data, ...)
# Modes: the default runs quick, unmarked and long blocks; --quick (the ctest) runs the quick
# blocks only and says which others it did not run. In both modes every option given to a
# ddpm-* tool in any block (skipped ones too) must be one that tool's --help lists.
# Blocks run in order, one `bash -e -o pipefail` each, in a fresh folder per page (configs/,
# bench/ and scripts/ linked from the repository) with the tools of --bin (default build/)
# first on PATH. Exit 0 when every block that ran passed and every option was known.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build
QUICK=0
LIST=0
WORK=
FILES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --bin=*) BIN=${1#--bin=}; shift ;;
    --quick) QUICK=1; shift ;;
    --list) LIST=1; shift ;;
    --work) WORK=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "check-docs: unknown option '$1'" >&2; exit 2 ;;
    *) FILES+=("$1"); shift ;;
  esac
done
if [ ${#FILES[@]} -eq 0 ]; then
  FILES=("$ROOT/README.md")
  for f in "$ROOT"/docs/*.md; do [ -e "$f" ] && FILES+=("$f"); done
fi
BIN=$(cd "$BIN" 2>/dev/null && pwd) || { echo "check-docs: --bin: no such folder" >&2; exit 2; }
[ -n "$WORK" ] || WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-docs.XXXXXX")
mkdir -p "$WORK"
EXTRACT=$WORK/.blocks
rm -rf "$EXTRACT"; mkdir -p "$EXTRACT"

# ---- extraction: $EXTRACT/NNNN.sh (the block) and NNNN.meta (file, line, kind, argument)
n=0
for f in "${FILES[@]}"; do
  [ -f "$f" ] || { echo "check-docs: $f: no such file" >&2; exit 2; }
  n=$(awk -v out="$EXTRACT" -v n="$n" -v file="$f" '
    function flush_marker() { marker = ""; }
    /^```sh[[:space:]]*$/ && !inblock {
      inblock = 1; n++; start = NR
      name = sprintf("%s/%04d", out, n)
      kind = "run"; arg = ""
      if (marker != "") {
        m = marker
        sub(/^[[:space:]]*<!--[[:space:]]*docs-check:[[:space:]]*/, "", m)
        sub(/[[:space:]]*-->[[:space:]]*$/, "", m)
        if (m ~ /^quick$/) kind = "quick"
        else if (m ~ /^long:/) { kind = "long"; arg = m; sub(/^long:[[:space:]]*/, "", arg) }
        else if (m ~ /^skip:/) { kind = "skip"; arg = m; sub(/^skip:[[:space:]]*/, "", arg) }
        else { kind = "bad"; arg = m }
      }
      printf "%s\t%d\t%s\t%s\n", file, start, kind, arg > (name ".meta")
      printf "" > (name ".sh")
      flush_marker(); next
    }
    inblock && /^```[[:space:]]*$/ { inblock = 0; close(name ".sh"); close(name ".meta"); next }
    inblock { print > (name ".sh"); next }
    /^[[:space:]]*<!--[[:space:]]*docs-check:/ { marker = $0; next }
    /^[[:space:]]*$/ { next }
    { flush_marker() }
    END { if (inblock) { printf "%s:%d: unterminated ```sh block\n", file, start > "/dev/stderr"; exit 1 } print n }
  ' "$f") || exit 2
done

if [ "$LIST" = 1 ]; then
  for meta in "$EXTRACT"/*.meta; do
    IFS=$'\t' read -r file line kind arg < "$meta"
    printf '%s:%s\t%s\t%s\n' "${file#"$ROOT"/}" "$line" "$kind" "$arg"
  done
  exit 0
fi

# ---- option check: every --option after a ddpm-* tool must be in that tool's --help
declare -A HELP
load_help() {  # tool [subcommand]: caches the help text in HELP (no subshell, so it stays)
  local key="$1 ${2:-}"
  [ -n "${HELP[$key]+x}" ] && return
  if [ -x "$BIN/$1" ]; then
    HELP[$key]=$("$BIN/$1" ${2:+"$2"} --help 2>&1)
  else
    HELP[$key]="<missing>"
  fi
}
SUBCOMMANDS_ddpm_eval="fit-classifier compare stats"
option_errors=0
option_count=0
check_options() {  # block file, doc location
  local block=$1 where=$2
  # Join continued lines, drop comments, split commands on ; | & && ||.
  local text
  text=$(sed -e ':a' -e '/\\$/{N;s/\\\n/ /;ba' -e '}' "$block" | sed -e 's/[[:space:]]#.*$//' -e 's/^#.*$//' \
         | sed -e 's/&&/\n/g' -e 's/||/\n/g' -e 's/[;|&]/\n/g')
  local cmdline
  while IFS= read -r cmdline; do
    # shellcheck disable=SC2206
    local words=($cmdline)
    local i tool="" sub=""
    for ((i = 0; i < ${#words[@]}; i++)); do
      local w=${words[$i]}
      if [ -z "$tool" ]; then
        case "$w" in ddpm-*) tool=$w ;; */ddpm-*) tool=${w##*/} ;; esac
        [ -n "$tool" ] && [ "$tool" = ddpm-eval ] && [ $((i + 1)) -lt ${#words[@]} ] \
          && case " $SUBCOMMANDS_ddpm_eval " in *" ${words[$((i + 1))]} "*) sub=${words[$((i + 1))]} ;; esac
        continue
      fi
      case "$w" in
        --*)
          local opt=${w%%=*}
          option_count=$((option_count + 1))
          load_help "$tool" "$sub"
          local help=${HELP["$tool $sub"]}
          if [ "$help" = "<missing>" ]; then
            echo "  $where: $tool is not in $BIN (build it: cmake --build ... --target $tool)"
            option_errors=$((option_errors + 1))
            return
          fi
          if ! grep -qE -- "(^|[ ,])$opt([ ,=]|\$)" <<<"$help"; then
            echo "  $where: $tool${sub:+ $sub}: unknown option $opt"
            option_errors=$((option_errors + 1))
          fi
          ;;
      esac
    done
  done <<<"$text"
}

# ---- overrides for long blocks: "ddpm-train --steps 20 --sample-every 0; ddpm-sample --n 4"
override_prelude() {  # the marker's argument -> bash functions wrapping the tools
  local spec=$1 part
  echo 'docs_check_override() {'
  echo '  local tool=$1 ov=$2; shift 2'
  echo '  local -a keep=() add=(); local -A key=()'
  echo '  read -r -a add <<<"$ov"'
  echo '  local a; for a in "${add[@]}"; do case "$a" in --*) key[${a%%=*}]=1 ;; esac; done'
  echo '  while [ $# -gt 0 ]; do'
  echo '    local k=${1%%=*}'
  echo '    if [ -n "${key[$k]+x}" ]; then'
  echo '      if [ "$k" = "$1" ] && [ $# -gt 1 ] && [[ "$2" != --* ]]; then shift; fi; shift; continue'
  echo '    fi'
  echo '    keep+=("$1"); shift'
  echo '  done'
  echo '  echo "docs-check: $tool ${keep[*]} ${add[*]}" >&2'
  echo '  command "$tool" "${keep[@]}" "${add[@]}"'
  echo '}'
  IFS=';' read -r -a parts <<<"$spec"
  for part in "${parts[@]}"; do
    part=$(echo "$part" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
    [ -n "$part" ] || continue
    local tool=${part%% *} opts=${part#* }
    printf '%s() { docs_check_override %s %q "$@"; }\n' "$tool" "$tool" "$opts"
  done
}

# ---- run
ran=0; passed=0; failed=0; skipped=0; not_run=0
declare -a skipped_lines failed_lines
declare -A FRESH
page_dir() {  # sets PAGE_DIR: a fresh folder per page (emptied once per invocation), data folders linked
  local page=$1 dir
  dir=$WORK/$(basename "$page" .md)
  PAGE_DIR=$dir
  if [ -z "${FRESH[$dir]+x}" ]; then
    FRESH[$dir]=1
    rm -rf "$dir"; mkdir -p "$dir"
    for d in configs bench scripts tests; do ln -s "$ROOT/$d" "$dir/$d"; done
  fi
}
echo "check-docs: tools from $BIN; work folder $WORK; mode: $([ $QUICK = 1 ] && echo quick || echo full)"
for meta in "$EXTRACT"/*.meta; do
  block=${meta%.meta}.sh
  IFS=$'\t' read -r file line kind arg < "$meta"
  where="${file#"$ROOT"/}:$line"
  check_options "$block" "$where"
  case "$kind" in
    bad)
      echo "FAIL $where: unknown docs-check marker '$arg' (quick | long: ... | skip: REASON)"
      failed=$((failed + 1)); failed_lines+=("$where (bad marker)"); continue ;;
    skip)
      echo "skip $where: $arg"
      skipped=$((skipped + 1)); skipped_lines+=("$where: $arg"); continue ;;
  esac
  if [ "$QUICK" = 1 ] && [ "$kind" != quick ]; then
    echo "skip $where: not run in --quick mode ($kind block; options checked)"
    not_run=$((not_run + 1)); continue
  fi
  page_dir "$file"; dir=$PAGE_DIR
  script=$WORK/.run.sh
  {
    echo 'set -e -o pipefail'
    [ "$kind" = long ] && override_prelude "$arg"
    cat "$block"
  } > "$script"
  start=$(date +%s%N)
  log=$WORK/.log.$(basename "$block" .sh)
  (cd "$dir" && PATH="$BIN:$PATH" timeout "${DOCS_CHECK_TIMEOUT:-900}" bash "$script") > "$log" 2>&1
  rc=$?
  tenths=$(( ($(date +%s%N) - start) / 100000000 )); secs="$((tenths / 10)).$((tenths % 10))"
  ran=$((ran + 1))
  label=$kind; [ "$kind" = long ] && label="long, with $arg"
  if [ $rc -eq 0 ]; then
    printf 'ok   %s (%s, %s s)\n' "$where" "$label" "$secs"
    passed=$((passed + 1))
  else
    printf 'FAIL %s (%s, exit %d, %s s); its output ends:\n' "$where" "$label" "$rc" "$secs"
    tail -n 15 "$log" | sed 's/^/    /'
    failed=$((failed + 1)); failed_lines+=("$where")
  fi
done

total=$(ls "$EXTRACT"/*.meta 2>/dev/null | wc -l)
echo "check-docs: $total sh blocks in ${#FILES[@]} files: $passed ran and passed, $failed failed," \
     "$skipped skipped by their marker, $not_run not run in --quick mode;" \
     "$option_count tool options checked against --help, $option_errors unknown"
if [ "$skipped" -gt 0 ]; then
  echo "check-docs: skipped by marker (not run in any mode):"
  printf '  %s\n' "${skipped_lines[@]}"
fi
if [ "$failed" -gt 0 ] || [ "$option_errors" -gt 0 ]; then
  [ "$failed" -gt 0 ] && { echo "check-docs: failed:"; printf '  %s\n' "${failed_lines[@]}"; }
  exit 1
fi
exit 0
