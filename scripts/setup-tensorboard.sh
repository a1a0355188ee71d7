#!/usr/bin/env bash
# Installs, only when missing, the `tensorboard` package that tests/train/test_tensorboard.cpp reads
# the events files with (its EventAccumulator), into the venv of scripts/setup-torch2.sh, and
# prints that venv's python. The same venv serves `tensorboard --logdir runs`.
#   scripts/setup-tensorboard.sh           install when missing, print the python
#   scripts/setup-tensorboard.sh --check   install nothing; print the python or fail
# Environment: DDPM_TORCH2_VENV (default ~/.cache/libddpm/torch-<version>),
#              DDPM_PYTHON (the python that makes the venv; default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
TENSORBOARD=tensorboard==2.21.0
case "${1:-}" in
  --check|"") ;;
  *) echo "setup-tensorboard: unknown option '$1' (expected --check)" >&2; exit 2 ;;
esac
has_tensorboard() { "$VENV/bin/python" -c "import tensorboard.backend.event_processing.event_accumulator" 2>/dev/null; }
if [ -x "$VENV/bin/python" ] && has_tensorboard; then
  echo "$VENV/bin/python"
  exit 0
fi
if [ "${1:-}" = --check ]; then
  echo "setup-tensorboard: no tensorboard in $VENV (run scripts/setup-tensorboard.sh to install it)" >&2
  exit 1
fi
venv_install setup-tensorboard "$TENSORBOARD"
has_tensorboard || { echo "setup-tensorboard: tensorboard did not import from $VENV after installing" >&2; exit 1; }
echo "$VENV/bin/python"
