#!/usr/bin/env bash
# The main job on a fresh machine: installs dependencies, builds, trains a DDPM on
# Fashion-MNIST (configs/fashion-mnist-28.toml, CPU, ~15 min on 2 cores) and writes
# out/demo/samples.png (8×8 grid) and out/demo/trajectory.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/build.sh -DDDPM_BUILD_TESTS=OFF
BIN=${BUILD_DIR:-build}
OUT=out/demo
mkdir -p "$OUT"
# A fresh run each time (ddpm-train refuses to overwrite one), unless asked to --resume it.
case " $* " in *" --resume "*) ;; *) rm -rf "$OUT/run" ;; esac
"$BIN/ddpm-train" --config configs/fashion-mnist-28.toml --run-dir "$OUT/run" "$@"
"$BIN/ddpm-sample" --checkpoint "$OUT/run" --n 64 --nrow 8 --seed 1 --sampler ddpm --steps 100 --clip-x0 \
  --out "$OUT/samples.png" --trajectory "$OUT/trajectory.png"
echo "demo: samples:    $OUT/samples.png"
echo "demo: trajectory: $OUT/trajectory.png"
