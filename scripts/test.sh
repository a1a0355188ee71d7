#!/usr/bin/env bash
# One command for the whole test suite on a fresh machine: installs dependencies, then
# builds (Release) and runs ctest against each LibTorch in turn:
#   debian  Debian's LibTorch 1.13 (CPU) in ${BUILD_DIR:-build}
#   pip     the pip LibTorch 2.x (CUDA-enabled, runs on the CPU without a GPU) in
#           ${BUILD_DIR_TORCH2:-build-torch2}; installed once by scripts/setup-torch2.sh
# DDPM_TEST_BUILDS="debian" (or "pip") runs one only. Exits non-zero if any build or test fails.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILDS=${DDPM_TEST_BUILDS:-debian pip}
bash scripts/setup-deps.sh || exit 1
case " $BUILDS " in *" pip "*) bash scripts/setup-torch2.sh >/dev/null || exit 1 ;; esac
# After torch (the same venv): tests/train/test_tensorboard.cpp reads events files with tensorboard.
bash scripts/setup-tensorboard.sh >/dev/null || exit 1

summary=()
status=0
for b in $BUILDS; do
  case "$b" in
    debian) dir=${BUILD_DIR:-build}; label="LibTorch 1.13 (Debian)" ;;
    pip) dir=${BUILD_DIR_TORCH2:-build-torch2}; label="LibTorch $(tr -d ' \n' < scripts/torch2-version) (pip)" ;;
    *) echo "test.sh: DDPM_TEST_BUILDS: unknown build '$b' (expected debian, pip)" >&2; exit 2 ;;
  esac
  echo "==== test.sh: building against $label in $dir/"
  if ! DDPM_TORCH=$b BUILD_DIR=$dir bash scripts/build.sh; then
    summary+=("$label, $dir/: BUILD FAILED")
    status=1
    continue
  fi
  echo "==== test.sh: ctest against $label in $dir/"
  (cd "$dir" && ctest --output-on-failure --parallel "$(nproc)" --timeout 900) 2>&1 | tee "$dir/ctest.log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$dir/ctest.log" | tail -1)
  skipped=$(grep -c '\*\*\*Skipped' "$dir/ctest.log")
  if [ "$rc" -eq 0 ]; then
    summary+=("$label, $dir/: PASSED: ${line:-no ctest summary} ($skipped skipped)")
  else
    summary+=("$label, $dir/: FAILED: ${line:-ctest exited $rc}")
    status=1
  fi
done
echo "==== test.sh: summary"
printf '  %s\n' "${summary[@]}"
exit "$status"
