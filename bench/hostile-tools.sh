#!/usr/bin/env bash
# Every hostile file of tests/data/fuzz/ through the tool a user would open it with, for one or
# more builds side by side: exit code, peak memory and time. A build that keeps libddpm's promise
# shows exit 2 (one line naming the file) or 0 where the file is valid, never a signal
# (>= 128), a timeout (124) or memory past its bound; ctest checks the same files in-process
# (FuzzCorpus.*), this shows what the tools do with them — e.g. an older build against today's:
#   bash bench/hostile-tools.sh /path/to/old/build build
# Each run is limited to 60 s and 6 GiB of address space (an unbounded allocation fails there
# instead of on the machine; it shows as a crash). Output: one tab-separated line per file and build:
#   build  file  exit  peak_MB  seconds  first line of the output
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bench/hostile-tools.sh BUILD_DIR..." >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tool_for() {  # tool_for BIN FILE: the command line that opens FILE
  local bin=$1 f=$2
  case $f in
    */checkpoint/*) echo "$bin/ddpm-sample --checkpoint $f --n 1 --out $tmp/s.png --device cpu --threads 1" ;;
    */torch_file/* | */pickle/* | */json/*) echo "$bin/ddpm-convert $f --from original --out $tmp/c.pt --threads 1" ;;
    */toml/*) echo "$bin/ddpm-train --config $f --dry-run --threads 1" ;;
    */idx/*) echo "$bin/ddpm-train --config configs/tiny.toml --data idx:$f --steps 1 --run-dir $tmp/run --threads 1" ;;
    */image/*) echo "$bin/ddpm-schedule --timesteps 10 --strip $f --frames 2 --out $tmp/strip.png" ;;
  esac
}
for f in tests/data/fuzz/*/*; do
  for bin in "$@"; do
    rm -rf "$tmp/run" "$tmp"/*.png "$tmp"/*.pt
    cmd=$(tool_for "$bin" "$f")
    [ -n "$cmd" ] || continue
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    /usr/bin/time -f %M -o "$tmp/rss" prlimit --as=6442450944 timeout 60 $cmd >"$tmp/out" 2>&1
    code=$?
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    rss=$(tail -1 "$tmp/rss" | grep -E '^[0-9]+$' || echo 0)
    line=$(grep -v '^\[' "$tmp/out" | grep -v '^Command ' | head -1 | cut -c1-150)
    printf '%s\t%s\t%s\t%d\t%.1f\t%s\n' "$bin" "${f#tests/data/fuzz/}" "$code" "$((rss / 1024))" "$secs" "$line"
  done
done
