# Shared by the data-parallel script tests: a tiny IDX data set, the common options, helpers.
# Usage: source common.sh DDPM_TRAIN SOURCE_DIR
set -euo pipefail
TRAIN=$1
SRC=$(cd "$2" && pwd)
TRAIN=$(cd "$(dirname "$TRAIN")" && pwd)/$(basename "$TRAIN")
WORK=$(mktemp -d /tmp/ddpm-dist-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "skipped: $*"; exit 77; }

# 64 8×8 grey images (a bright square at a different place in each), IDX format.
python3 - "$WORK/images.idx" <<'PY'
import struct, sys
n, h, w = 64, 8, 8
data = bytearray()
for k in range(n):
    y0, x0 = (k // 8) % 6, k % 6
    for y in range(h):
        for x in range(w):
            data.append(230 if y0 <= y < y0 + 3 and x0 <= x < x0 + 3 else 20 + 3 * k)
open(sys.argv[1], "wb").write(struct.pack(">IIII", 0x803, n, h, w) + bytes(data))
PY

COMMON=(--config "$SRC/configs/tiny.toml" --data "idx:$WORK/images.idx" --workers 0 --log-every 1 --batch-size 8
        --dropout 0 --threads 1)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Per-step losses of a run directory's metrics.jsonl, one per line.
losses() { python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "loss" in r: print(r["step"], repr(r["loss"]))' "$1/metrics.jsonl"; }

# Compares two loss lists (step loss) within a relative tolerance; prints the largest difference.
same_losses() { python3 - "$1" "$2" "$3" <<'PY'
import sys
a = dict(l.split() for l in open(sys.argv[1]))
b = dict(l.split() for l in open(sys.argv[2]))
tol = float(sys.argv[3])
if a.keys() != b.keys():
    sys.exit(f"steps differ: {sorted(map(int, a))} vs {sorted(map(int, b))}")
worst = max(abs(float(a[k]) - float(b[k])) / max(abs(float(a[k])), 1e-12) for k in a)
print(f"{len(a)} steps, largest relative loss difference {worst:.3g}")
sys.exit(0 if worst <= tol else f"relative difference {worst:.3g} > {tol}")
PY
}

# Whether this ddpm-train can form a group of 2 (built with c10d/Gloo).
has_gloo() {
  local out
  out=$(RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 LOCAL_RANK=1 LOCAL_WORLD_SIZE=2 \
        "$TRAIN" "${COMMON[@]}" --steps 1 --run-dir "$WORK/probe" --dist-timeout 1 2>&1 || true)
  ! grep -q "without c10d/Gloo" <<<"$out"
}

# The pid of the ddpm-train process with RANK=$2 whose command line has $1 (the run dir).
rank_pid() {
  local pid
  for pid in $(pgrep -f -- "$1" || true); do
    if tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep -qx "RANK=$2" &&
       [[ "$(readlink /proc/$pid/exe 2>/dev/null)" == *ddpm-train* ]]; then echo "$pid"; return 0; fi
  done
  return 1
}

wait_for_file() {  # path, seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do [[ -e $1 ]] && return 0; sleep 0.1; done
  return 1
}
