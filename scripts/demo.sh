#!/usr/bin/env bash
# The main job on a fresh machine: installs dependencies, builds, trains a DDPM on
# Fashion-MNIST (configs/fashion-mnist-28.toml, CPU, ~10 min on 2 cores) and writes
# out/demo/samples.png (one row of 8 per class) and out/demo/trajectory.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/build.sh -DDDPM_BUILD_TESTS=OFF
BIN=${BUILD_DIR:-build}
OUT=out/demo
mkdir -p "$OUT"
# A fresh run each time (ddpm-train refuses to overwrite one), unless asked to --resume it.
case " $* " in *" --resume "*) ;; *) rm -rf "$OUT/run" ;; esac
# Two local ranks of one thread each when there are two cores or more: 1.25× the images/s of one
# process with two threads on the 2-core VM (88–104 against 63–78 images/s, bench/README.md), and
# the same training (the data-parallel trainer is world-size-invariant). Not with --device:
# data parallel on CUDA (NCCL) is not written, and one process is what a GPU wants here.
ranks=()
[ "$(nproc)" -ge 2 ] && ranks=(--nproc-per-node 2)
case " $* " in *" --device"*) ranks=() ;; esac
"$BIN/ddpm-train" --config configs/fashion-mnist-28.toml --run-dir "$OUT/run" "${ranks[@]}" "$@"
# One row of 8 per class (the config is class-conditional), classifier-free guidance w = 2 on the
# noise levels σ in (0.28, 5.42] only, with iPNDM at 10 steps (trailing spacing): on the demo
# checkpoint of 7 Dec 2026, FID 4.85 on 500 samples against 5.27 for dpm++2m at 20 steps, in half the
# calls (bench/README.md "Samplers"); the ancestral 100 steps drawn before gave 9.99 with 10× the calls.
"$BIN/ddpm-sample" --checkpoint "$OUT/run" --class all --nrow 8 --guidance 2 --guidance-interval 0.28,5.42 \
  --seed 1 --sampler ipndm --steps 10 --out "$OUT/samples.png" --trajectory "$OUT/trajectory.png"
echo "demo: samples:    $OUT/samples.png"
echo "demo: trajectory: $OUT/trajectory.png"
# The run's curves, grids and config in TensorBoard (the venv scripts/setup-tensorboard.sh makes has it).
TB=$HOME/.cache/libddpm/torch-$(tr -d ' \n' < scripts/torch2-version)/bin/tensorboard
echo "demo: TensorBoard: bash scripts/setup-tensorboard.sh  # once; then"
echo "      $TB --logdir $OUT/run"
