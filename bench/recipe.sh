#!/usr/bin/env bash
# One demo-recipe trial: train a config (plus overrides), then time the demo's sampling of
# 64 images and measure FID / KID / precision / recall of N samples against the Fashion-MNIST
# test split with the fit-classifier features. Prints one summary line (and writes NAME.json).
#
#   bench/recipe.sh NAME CONFIG [ddpm-train options...]
#   SAMPLER=dpm++2m SAMPLE_STEPS=25 CLIP=--no-clip-x0 N=2000 bench/recipe.sh v-minsnr configs/fashion-mnist-28.toml \
#     --prediction v --loss-weighting min-snr
#   PROBE=40 bench/recipe.sh NAME CONFIG ...   # only a 40-step run: prints its training steps/s
#
# Environment: BIN (build), RUNS (runs/recipe), THREADS (2), N (2000 samples),
# NPROC (train with --nproc-per-node NPROC, one thread per rank, instead of one process with THREADS),
# SAMPLER / SAMPLE_STEPS / CLIP (ddpm / 100 / --clip-x0: the demo's sampler),
# FEATURES (bench/fmnist-clf.pt, the committed `ddpm-eval fit-classifier` network, see bench/README.md), FM (dataset folder),
# SKIP_TRAIN=1 to re-evaluate an existing run with another sampler,
# GUIDANCE=w for a class-conditional run (trained with --labels): the demo grid is --class all (one row
# per class) and the evaluation draws every class equally, both with classifier-free guidance w
# (GUIDANCE_INTERVAL=LOW,HIGH: only on those noise levels σ, as scripts/demo.sh).
# Wall times depend on the machine's load: the script prints the 1-minute load average.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bench/recipe.sh NAME CONFIG [ddpm-train options...]" >&2; exit 2; }
NAME=$1 CONFIG=$2
shift 2
BIN=${BIN:-build} RUNS=${RUNS:-runs/recipe} THREADS=${THREADS:-2} N=${N:-2000}
SAMPLER=${SAMPLER:-ddpm} SAMPLE_STEPS=${SAMPLE_STEPS:-100} CLIP=${CLIP:---clip-x0}
FEATURES=${FEATURES:-bench/fmnist-clf.pt} FM=${FM:-/usr/share/datasets/fashion-mnist}
RUN=$RUNS/$NAME
mkdir -p "$RUNS"
load() { cut -d' ' -f1 /proc/loadavg; }
now() { date +%s.%N; }
TRAIN_PAR=(--threads "$THREADS")
[ -n "${NPROC:-}" ] && TRAIN_PAR=(--nproc-per-node "$NPROC")

if [ -n "${PROBE:-}" ]; then  # throughput only: steps/s of the last logged interval
  rm -rf "$RUN-probe"
  "$BIN/ddpm-train" --config "$CONFIG" --run-dir "$RUN-probe" "${TRAIN_PAR[@]}" "$@" \
    --steps "$PROBE" --log-every 10 --sample-every 0 --eval-every 0 --save-every 100000 >/dev/null 2>&1
  awk -F'"images_per_s":' 'NF > 1 { split($2, a, /[,}]/); ips = a[1] } END { print ips }' "$RUN-probe/metrics.jsonl" |
    { read -r ips; echo "probe $NAME: $ips images/s (last 10 of $PROBE steps), load $(load)"; }
  rm -rf "$RUN-probe"
  exit 0
fi

load0=$(load)
if [ -z "${SKIP_TRAIN:-}" ]; then
  rm -rf "$RUN"
  t0=$(now)
  "$BIN/ddpm-train" --config "$CONFIG" --run-dir "$RUN" "${TRAIN_PAR[@]}" "$@" --sample-every 0 \
    >"$RUN.train.log" 2>&1
  train_s=$(echo "$(now) - $t0" | bc)
else
  train_s=NA
fi
steps=$(grep -o '"step":[0-9]*' "$RUN/metrics.jsonl" | tail -1 | cut -d: -f2)
SAMPLING=(--sampler "$SAMPLER" --steps "$SAMPLE_STEPS" "$CLIP")
GRID=(--n 64) EVAL_GUIDE=() TAG=$SAMPLER-$SAMPLE_STEPS
if [ -n "${GUIDANCE:-}" ]; then
  EVAL_GUIDE=(--guidance "$GUIDANCE") TAG=$TAG-w$GUIDANCE
  [ -n "${GUIDANCE_INTERVAL:-}" ] && EVAL_GUIDE+=(--guidance-interval "$GUIDANCE_INTERVAL") TAG=$TAG-int
  GRID=(--class all "${EVAL_GUIDE[@]}")
fi
# The demo's own sampling cost: 64 images (80, one row per class, when conditional), seed 1, as scripts/demo.sh draws them.
t0=$(now)
"$BIN/ddpm-sample" --checkpoint "$RUN" "${GRID[@]}" --nrow 8 --seed 1 "${SAMPLING[@]}" --threads "$THREADS" \
  --out "$RUN/samples-$TAG.png" >/dev/null 2>&1
sample64_s=$(echo "$(now) - $t0" | bc)
load1=$(load)
t0=$(now)
"$BIN/ddpm-eval" compare --real "idx:$FM/t10k-images-idx3-ubyte.gz" --checkpoint "$RUN" --n "$N" \
  "${SAMPLING[@]}" "${EVAL_GUIDE[@]}" --features "$FEATURES" --threads "$THREADS" --json "$RUN.$TAG.json" \
  >"$RUN.$TAG.eval.log" 2>&1
eval_s=$(echo "$(now) - $t0" | bc)
python3 - "$RUN.$TAG.json" <<EOF
import json, sys
r = json.load(open(sys.argv[1]))
def g(*keys):
    for k in keys:
        if k in r: return r[k]
    return None
print("recipe $NAME | steps $steps | sampler $SAMPLER $SAMPLE_STEPS $CLIP ${EVAL_GUIDE[*]} | train ${train_s} s, sample64 ${sample64_s} s, "
      "eval ${eval_s} s | load $load0 -> $load1 | " + json.dumps(r))
EOF
