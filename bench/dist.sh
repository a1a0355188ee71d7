#!/usr/bin/env bash
# Data-parallel step time on this machine's CPU: configs/fashion-mnist-28.toml (batch 32) for
# STEPS steps at world size 1 (all cores) and world size 2 (ddpm-train --nproc-per-node 2, the
# cores shared out), and the part of the gradient all-reduce hidden behind backward.
# Usage: bench/dist.sh [BUILD_DIR] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build}/ddpm-train
STEPS=${2:-60}
FM=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
W=$(mktemp -d /tmp/ddpm-bench-dist-XXXXXX)
trap 'rm -rf "$W"' EXIT
CONFIG=${CONFIG:-configs/fashion-mnist-28.toml}
opts=(--config "$CONFIG" --data "idx:$FM" --steps "$STEPS" --sample-every 0 --save-every 100000
      --log-every 10 --log-level info)
step_ms() {  # the mean step time of steps 11..STEPS from metrics.jsonl (images/s → ms/step)
  python3 - "$1/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][1:]
ips = sum(r["images_per_s"] for r in rows) / len(rows)
print("%.1f ms/step (%.0f images/s, steps 11-%d)" % (1000 * 32 / ips, ips, rows[-1]["step"]))
PY
}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" "${opts[@]}" --run-dir "$W/w1" >"$W/w1.log" 2>&1
echo "world size 1 ($(nproc) threads):        $(step_ms "$W/w1")"
"$BIN" "${opts[@]}" --run-dir "$W/w2" --nproc-per-node 2 >"$W/w2.log" 2>&1
echo "world size 2 ($(( $(nproc) / 2 )) thread(s) per rank): $(step_ms "$W/w2")"
grep -o "data parallel: .*" "$W/w2.log" | sed 's/^/  /'
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
