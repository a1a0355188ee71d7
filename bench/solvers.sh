#!/usr/bin/env bash
# FID against steps for samplers × spacings on one checkpoint: every combination of SAMPLERS,
# SPACINGS and STEPS is one `ddpm-eval compare` of N samples against the Fashion-MNIST test split
# with the committed classifier features (bench/fmnist-clf.pt), with the demo's guidance. Prints
# and appends one tab-separated line per run to OUT:
#   sampler spacing steps nfe fid kid precision recall seconds seconds_per_image load
#
#   bench/solvers.sh RUN                                   # the defaults below
#   SAMPLERS="dpm++2m unipc" SPACINGS=logsnr STEPS="6 10" N=500 bench/solvers.sh out/demo/run
#
# Environment: BIN (build), N (2000), THREADS (2), GUIDANCE (2) and GUIDANCE_INTERVAL (0.28,5.42)
# as scripts/demo.sh (GUIDANCE=0 for an unconditional run), EXTRA (more sampler options, e.g.
# "--clip-x0"), FEATURES, FM (dataset folder), OUT (bench/solvers.tsv).
# "nfe" counts network evaluations per image as the steps take them (heun: 2 per step but the
# last); a guided step's second pass is not counted. Wall times depend on the machine's load:
# each line carries the 1-minute load average at its end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: bench/solvers.sh RUN_DIR_OR_CHECKPOINT" >&2; exit 2; }
RUN=$1
BIN=${BIN:-build} N=${N:-2000} THREADS=${THREADS:-2} OUT=${OUT:-bench/solvers.tsv}
GUIDANCE=${GUIDANCE:-2} GUIDANCE_INTERVAL=${GUIDANCE_INTERVAL:-0.28,5.42}
SAMPLERS=${SAMPLERS:-"dpm++2m dpm++3m unipc ipndm"} SPACINGS=${SPACINGS:-"trailing logsnr karras"}
STEPS=${STEPS:-"4 6 8 10 15 20"}
FEATURES=${FEATURES:-bench/fmnist-clf.pt} FM=${FM:-/usr/share/datasets/fashion-mnist} EXTRA=${EXTRA:-}
GUIDE=()
[ "$GUIDANCE" != 0 ] && GUIDE=(--guidance "$GUIDANCE" --guidance-interval "$GUIDANCE_INTERVAL")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for sampler in $SAMPLERS; do
  for spacing in $SPACINGS; do
    for steps in $STEPS; do
      nfe=$steps
      [ "$sampler" = heun ] && nfe=$((2 * steps - 1))
      t0=$(date +%s.%N)
      # shellcheck disable=SC2086
      if ! "$BIN/ddpm-eval" compare --real "idx:$FM/t10k-images-idx3-ubyte.gz" --checkpoint "$RUN" --n "$N" \
        --sampler "$sampler" --spacing "$spacing" --steps "$steps" "${GUIDE[@]}" $EXTRA --features "$FEATURES" \
        --threads "$THREADS" --json "$tmp/r.json" >"$tmp/log" 2>&1; then
        echo "bench/solvers.sh: $sampler $spacing $steps failed:" >&2
        tail -3 "$tmp/log" >&2
        continue
      fi
      secs=$(echo "$(date +%s.%N) - $t0" | bc)
      python3 - "$tmp/r.json" "$sampler" "$spacing" "$steps" "$nfe" "$secs" "$N" "$(cut -d' ' -f1 /proc/loadavg)" <<'EOF' | tee -a "$OUT"
import json, sys
r = json.load(open(sys.argv[1]))
sampler, spacing, steps, nfe, secs, n, load = sys.argv[2:]
def get(*keys):
    for k in keys:
        v = r
        for part in k.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        if v is not None:
            return v
    return float("nan")
fid = get("fid")
kid = get("kid.mean", "kid")
pr = (get("precision"), get("recall"))
print("\t".join([sampler, spacing, steps, nfe, f"{fid:.2f}", f"{kid:.3f}" if isinstance(kid, float) else str(kid),
                 f"{pr[0]:.3f}", f"{pr[1]:.3f}", f"{float(secs):.0f}", f"{float(secs) / int(n):.3f}", load]))
EOF
    done
  done
done
