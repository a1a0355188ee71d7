#!/usr/bin/env bash
# Keeps libddpm's layers (README "Architecture"): a file may include its own layer and the layers
# below it, never one above it or beside it.
#
#   util, version, runtime              0   (no libddpm includes but each other)
#   io                                  1   files: zip, npy/npz, safetensors, pickles, JSON, TOML
#   data, dist, math                    2   image folders; the c10d engine; schedules and q(x_t|x_0)
#   models                              3   the U-Net
#   samplers                            4   steppers over a denoiser callback (never models/)
#   pipeline                            5   what a saved model is: config, checkpoint, LoadedModel
#   eval, interop                       6   metrics; diffusers/original weights in and out
#   train                               7   the trainer, EMA, data parallel, distillation
#   ddpm.hpp (the umbrella header)      8
#   apps/ (the tools)                   9
#
#   scripts/check-layers.sh [ROOT]       checks ROOT (default: this checkout); exit 1 on a violation
#   scripts/check-layers.sh --self-test  plants a wrong-way include in a copy; must be caught
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

layer_of() {  # layer_of <first path component>: the top-level files belong to util
  case $1 in
    version.hpp | version.cpp | runtime.hpp | runtime.cpp) echo util ;;
    *) echo "$1" ;;
  esac
}

rank_of() {  # rank_of <layer>; prints nothing for an unknown one
  case $1 in
    util) echo 0 ;;
    io) echo 1 ;;
    data | dist | math) echo 2 ;;
    models) echo 3 ;;
    samplers) echo 4 ;;
    pipeline) echo 5 ;;
    eval | interop) echo 6 ;;
    train) echo 7 ;;
    ddpm.hpp) echo 8 ;;
    apps) echo 9 ;;
  esac
}

check() {  # check <root>
  local root=$1 bad=0 file rel layer rank line inc target trank
  while IFS= read -r file; do
    rel=${file#"$root"/}
    case $rel in
      include/ddpm/*) layer=${rel#include/ddpm/}; layer=${layer%%/*} ;;
      src/*) layer=${rel#src/}; layer=${layer%%/*} ;;
      apps/*) layer=apps ;;
    esac
    layer=$(layer_of "$layer")
    rank=$(rank_of "$layer")
    if [ -z "$rank" ]; then
      echo "check-layers: $rel: '$layer' is in no layer (add it to scripts/check-layers.sh)"
      bad=1
      continue
    fi
    while IFS= read -r line; do
      inc=${line#*:}
      inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"$inc")
      inc=${inc#ddpm/}
      target=$(layer_of "${inc%%/*}")
      trank=$(rank_of "$target")
      [ -z "$trank" ] && continue  # a file beside it, stb, CLI11: not a libddpm layer
      if [ "$target" != "$layer" ] && [ "$trank" -ge "$rank" ]; then
        echo "check-layers: $rel:${line%%:*}: $layer (layer $rank) includes \"$inc\" ($target, layer $trank)"
        bad=1
      elif [ "$layer" = samplers ] && [ "$target" = models ]; then
        echo "check-layers: $rel:${line%%:*}: samplers see the network only as a denoiser callback, not \"$inc\""
        bad=1
      fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
  done < <(find "$root/include/ddpm" "$root/src" "$root/apps" -type f \( -name '*.hpp' -o -name '*.h' -o -name '*.cpp' \) | sort)
  return $bad
}

if [ "${1:-}" = --self-test ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp -r "$here/include" "$here/src" "$here/apps" "$tmp/"
  check "$tmp" >/dev/null || { echo "check-layers --self-test: the clean tree already fails"; exit 1; }
  # samplers must never see the trainer (or the network)
  victim=$(find "$tmp/src/samplers" -name '*.cpp' | sort | head -1)
  printf '#include "ddpm/train/trainer.hpp"\n' >>"$victim"
  if out=$(check "$tmp"); then
    echo "check-layers --self-test: a planted wrong-way include in ${victim#"$tmp"/} was not caught"
    exit 1
  fi
  echo "check-layers --self-test: caught: $out"
  exit 0
fi

root=${1:-$here}
if check "$root"; then
  echo "check-layers: every include in include/ddpm, src and apps runs down the layers"
else
  exit 1
fi
