#!/usr/bin/env bash
# Configures and builds libddpm (Release). Extra args go to CMake.
#   scripts/build.sh            Debian's LibTorch 1.13 into ${BUILD_DIR:-build}
#   scripts/build.sh --torch2   the pip LibTorch 2.x (scripts/setup-torch2.sh) into
#                               ${BUILD_DIR:-build-torch2}; same as DDPM_TORCH=pip
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=${DDPM_TORCH:-debian}
if [ "${1:-}" = "--torch2" ]; then
  TORCH=pip
  shift
fi
args=(-DCMAKE_BUILD_TYPE=Release)
case "$TORCH" in
  debian) BUILD_DIR=${BUILD_DIR:-build} ;;
  pip)
    BUILD_DIR=${BUILD_DIR:-build-torch2}
    prefix=$(bash scripts/setup-torch2.sh --check) || exit 1
    args+=("-DCMAKE_PREFIX_PATH=$prefix") ;;
  *) echo "build.sh: DDPM_TORCH=$TORCH: expected debian or pip" >&2; exit 2 ;;
esac
# ccache (when present) makes rebuilds of unchanged files free; paths relative to the clone.
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
  args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD_DIR" "${args[@]}" "$@"
cmake --build "$BUILD_DIR" --parallel "${DDPM_JOBS:-$(nproc)}"
