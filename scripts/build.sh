#!/usr/bin/env bash
# Configures and builds libddpm (Release) into ${BUILD_DIR:-build}. Extra args go to CMake.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$BUILD_DIR" --parallel "$(nproc)"
