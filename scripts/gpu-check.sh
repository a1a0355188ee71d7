#!/usr/bin/env bash
# One command for a machine with a GPU and no package registry: builds libddpm against a
# pip torch with CUDA, runs the whole test suite (CUDA cases included), benchmarks
# cifar10-32 at batch 128 in fp32 and bf16 + channels_last, trains the Fashion-MNIST demo
# config for 60 s on the GPU, and prints one summary.
#
# Needs: a pip torch with CUDA (found from $DDPM_PYTHON, the venv of
# scripts/setup-torch2.sh, or python3), the CUDA toolkit (nvcc: LibTorch's CMake files
# need it), CMake >= 3.18, ninja or make, g++; and the .deb files of
# scripts/fetch-gpu-debs.sh in .deps/debs/ (fetched beforehand on a machine with a
# registry), unpacked here into .deps/prefix with dpkg -x (or ar + tar).
# Environment: DDPM_GPU_BUILD_DIR (default build-gpu), DDPM_TRAIN_SECONDS (default 60).
# On a machine without a GPU it builds and runs the CPU tests, then fails with one line.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${DDPM_GPU_BUILD_DIR:-build-gpu}
DEBS=.deps/debs
PREFIX=$ROOT/.deps/prefix
OUT=$ROOT/out/gpu-check
TRAIN_SECONDS=${DDPM_TRAIN_SECONDS:-60}
die() { echo "gpu-check: $*" >&2; exit 1; }
start=$(date +%s)

# ---------------------------------------------------------------- tools and torch
command -v cmake >/dev/null || die "cmake not found"
command -v g++ >/dev/null || command -v c++ >/dev/null || die "no C++ compiler (g++) found"
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); elif ! command -v make >/dev/null; then die "neither ninja nor make found"; fi
python=""
for p in "${DDPM_PYTHON:-}" "$HOME/.cache/libddpm/torch-$(tr -d ' \n' < scripts/torch2-version)/bin/python" python3 python; do
  [ -n "$p" ] && command -v "$p" >/dev/null && "$p" -c 'import torch' 2>/dev/null && { python=$p; break; }
done
[ -n "$python" ] || die "no pip torch found: set DDPM_PYTHON to a python that can 'import torch' (a CUDA build)"
read -r TORCH_DIR TORCH_VERSION TORCH_CUDA < <("$python" -W ignore -c \
  'import os, torch; print(os.path.dirname(torch.__file__), torch.__version__, torch.version.cuda or "none")' 2>/dev/null)
[ "$TORCH_CUDA" != none ] || die "torch $TORCH_VERSION at $TORCH_DIR is a CPU-only build: a CUDA torch is needed"
if ! command -v nvcc >/dev/null && [ ! -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then
  die "nvcc not found (PATH, \$CUDA_HOME, /usr/local/cuda): LibTorch's CMake files need the CUDA toolkit"
fi
echo "gpu-check: torch $TORCH_VERSION (CUDA $TORCH_CUDA) at $TORCH_DIR"

# ---------------------------------------------------------------- the -dev packages, unpacked
compgen -G "$DEBS/*.deb" >/dev/null || die "no .deb files in $DEBS: run scripts/fetch-gpu-debs.sh on a machine with apt-get first"
if [ ! -f "$PREFIX/.unpacked" ] || [ -n "$(find "$DEBS" -name '*.deb' -newer "$PREFIX/.unpacked")" ]; then
  rm -rf "$PREFIX" && mkdir -p "$PREFIX"
  for deb in "$DEBS"/*.deb; do
    if command -v dpkg >/dev/null; then
      dpkg -x "$deb" "$PREFIX" || die "dpkg -x $deb failed"
    else  # a .deb is an ar archive holding data.tar.*
      tmp=$(mktemp -d) && (cd "$tmp" && ar x "$ROOT/$deb" && tar -xf data.tar.* -C "$PREFIX") || die "cannot unpack $deb"
      rm -rf "$tmp"
    fi
  done
  touch "$PREFIX/.unpacked"
fi
ARCH_LIB=$PREFIX/usr/lib/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
export LD_LIBRARY_PATH=$ARCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# ---------------------------------------------------------------- build and test
jobs=$(nproc)
cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DDDPM_CUDA=ON \
  "-DCMAKE_PREFIX_PATH=$TORCH_DIR;$PREFIX/usr;$ARCH_LIB/cmake" \
  "-DCMAKE_INCLUDE_PATH=$PREFIX/usr/include" "-DCMAKE_LIBRARY_PATH=$ARCH_LIB" >"$ROOT/$BUILD.configure.log" 2>&1 \
  || { tail -20 "$ROOT/$BUILD.configure.log" >&2; die "cmake configure failed (log: $BUILD.configure.log)"; }
cmake --build "$BUILD" --parallel "$jobs" || die "build failed"
built=$(date +%s)
(cd "$BUILD" && ctest --output-on-failure --parallel "$jobs" --timeout 900) 2>&1 | tee "$BUILD/ctest.log"
ctest_rc=${PIPESTATUS[0]}
tests_line=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$BUILD/ctest.log" | tail -1)
skipped=$(grep -c '\*\*\*Skipped' "$BUILD/ctest.log")
tested=$(date +%s)

# ---------------------------------------------------------------- the GPU itself
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
if ! "$python" -W ignore -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu-check: tests: ${tests_line:-ctest exited $ctest_rc} ($skipped skipped)"
  die "no usable CUDA GPU on this machine (torch.cuda.is_available() is false${gpu:+; nvidia-smi sees $gpu}): built and ran the CPU tests only"
fi

mkdir -p "$OUT"
bench() {  # label, extra args → JSON in $OUT/bench-<label>.json
  "$BUILD/ddpm-bench" --model cifar10-32 --batch-size 128 --device cuda --warmup 3 --iters 10 "${@:2}" \
    >"$OUT/bench-$1.json" 2>"$OUT/bench-$1.log" || { cat "$OUT/bench-$1.log" >&2; echo "{}" >"$OUT/bench-$1.json"; }
}
bench fp32 --dtype fp32
bench bf16 --dtype bf16 --channels-last
benched=$(date +%s)

# Fashion-MNIST from the unpacked dataset-fashion-mnist package (or the system's).
data=$PREFIX/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
[ -f "$data" ] || data=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
rm -rf "$OUT/train"
train_rc=0
if [ -f "$data" ]; then
  # SIGINT after the time: ddpm-train finishes the step, saves a checkpoint, exits 0.
  timeout --preserve-status -s INT -k 30 "$TRAIN_SECONDS" "$BUILD/ddpm-train" --config configs/fashion-mnist-28.toml \
    --data "idx:$data" --labels "idx:${data%/*}/train-labels-idx1-ubyte.gz" --device cuda --bf16 --channels-last --steps 1000000 --sample-every 0 --log-every 20 \
    --run-dir "$OUT/train" >"$OUT/train.log" 2>&1 || train_rc=$?
else
  echo "gpu-check: Fashion-MNIST not found ($data): no training run" >&2
  train_rc=1
fi
trained=$(date +%s)

# ---------------------------------------------------------------- one summary
"$python" - "$OUT" "${gpu:-unknown GPU}" "${tests_line:-ctest exited $ctest_rc}" "$skipped" "$train_rc" \
  "$((built - start))" "$((tested - built))" "$((benched - tested))" "$((trained - benched))" <<'PY'
import json, os, sys
out, gpu, tests, skipped, train_rc = sys.argv[1:6]
t_build, t_test, t_bench, t_train = map(int, sys.argv[6:10])
# Dense peak FLOP/s by GPU name (vendor figures, no sparsity): fp32 (no TF32), bf16.
PEAKS = {"H200": (67e12, 989e12), "H100": (67e12, 989e12), "A100": (19.5e12, 312e12),
         "L40S": (91.6e12, 362e12), "A10": (31.2e12, 125e12), "RTX 4090": (82.6e12, 165e12)}
peak = next((v for k, v in PEAKS.items() if k in gpu), None)
def load(label):
    try:
        with open(os.path.join(out, f"bench-{label}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
print("==== gpu-check summary")
print(f"  GPU: {gpu}")
print(f"  tests: {tests} ({skipped} skipped)")
for label, i in (("fp32", 0), ("bf16", 1)):
    b = load(label)
    if not b.get("train_images_per_s"):
        print(f"  bench cifar10-32 batch 128 {label}: failed (see {out}/bench-{label}.log)")
        continue
    mfu = f"{b['train_gflops'] * 1e9 / peak[i]:.1%}" if peak else "n/a (unknown GPU peak)"
    print(f"  bench cifar10-32 batch 128 {label}{' channels_last' if b.get('channels_last') else ''}: "
          f"train {b['train_images_per_s']:.0f} img/s, sample {b['sample_images_per_s']:.0f} img/s, "
          f"peak GPU memory {b.get('peak_gpu_allocated_mb', float('nan')):.0f} MiB, "
          f"MFU {mfu} ({b['train_gflops'] / 1e3:.1f} TFLOP/s; {b['train_efficiency']:.0%} of the measured conv)")
metrics = os.path.join(out, "train", "metrics.jsonl")
lines = []
if os.path.exists(metrics):
    with open(metrics) as f:
        lines = [json.loads(l) for l in f if l.strip()]
if lines:
    last = lines[-1]
    ips = [l["images_per_s"] for l in lines[1:]] or [last["images_per_s"]]
    print(f"  train fashion-mnist-28 (bf16, channels_last) for {t_train} s: {last['step']} steps, "
          f"{sorted(ips)[len(ips) // 2]:.0f} img/s (median of {len(ips)} log windows), loss {last['loss']:.4f}")
else:
    print(f"  train fashion-mnist-28: no metrics (exit {train_rc}; see {out}/train.log)")
print(f"  time: build {t_build} s, tests {t_test} s, bench {t_bench} s, train {t_train} s")
PY
[ "$ctest_rc" -eq 0 ] || die "some tests failed (see $BUILD/ctest.log)"
[ "$train_rc" -eq 0 ] || die "the training run failed (see $OUT/train.log)"
exit 0
