#!/usr/bin/env bash
# One command for the whole test suite on a fresh machine:
# installs dependencies, builds (Release), runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --parallel "$(nproc)" --timeout 900
