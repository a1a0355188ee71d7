#!/usr/bin/env bash
# Pictures of TensorBoard showing a run, taken from a real TensorBoard in headless Chromium (how
# docs/tensorboard-*.png were made): the scalars dashboard (train/loss, lr, images/s) and the grids.
#   scripts/tensorboard-screenshot.sh RUN_DIR [OUT_PREFIX=docs/tensorboard]
# Needs the venv of scripts/setup-tensorboard.sh and Debian's chromium (apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/tensorboard-screenshot.sh RUN_DIR [OUT_PREFIX]" >&2; exit 2; }
run=$1 out=${2:-docs/tensorboard}
[ -d "$run" ] || { echo "tensorboard-screenshot: no run directory '$run'" >&2; exit 2; }
python=$(bash scripts/setup-tensorboard.sh)
command -v chromium >/dev/null || { echo "tensorboard-screenshot: chromium not found (apt-get install chromium)" >&2; exit 2; }
logdir=$(mktemp -d)
ln -s "$(realpath "$run")" "$logdir/demo"
port=6123
"$(dirname "$python")/tensorboard" --logdir "$logdir" --port "$port" >"$logdir.log" 2>&1 &
tb=$!
trap 'kill $tb 2>/dev/null; rm -rf "$logdir" "$logdir.log"' EXIT
for _ in $(seq 60); do curl -sf "localhost:$port/data/runs" | grep -q demo && break; sleep 1; done
shot() {  # shot FILE HEIGHT URL-FRAGMENT
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,"$2" \
    --virtual-time-budget=30000 --screenshot="$1" "http://localhost:$port/$3" >/dev/null 2>&1
}
shot "$out-scalars.png" 1100 "#scalars&tagFilter=loss%7Clr%7Cimages_per_s"
shot "$out-images.png" 900 "#images"
echo "tensorboard-screenshot: $out-scalars.png $out-images.png"
