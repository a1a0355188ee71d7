#!/usr/bin/env bash
# Installs, only when missing, the pip torch that the LibTorch 2.x build uses (the version
# is pinned in scripts/torch2-version) into a venv outside the clone, and prints the CMake
# prefix to build against (the torch package folder: its share/cmake holds TorchConfig).
#   scripts/setup-torch2.sh            install when missing, print the prefix
#   scripts/setup-torch2.sh --check    install nothing; print the prefix or fail
# Environment: DDPM_TORCH2_VENV (default ~/.cache/libddpm/torch-<version>),
#              DDPM_PYTHON (the python that makes the venv; default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
CHECK_ONLY=0
case "${1:-}" in
  --check) CHECK_ONLY=1 ;;
  "") ;;
  *) echo "setup-torch2: unknown option '$1' (expected --check)" >&2; exit 2 ;;
esac

# Prints the prefix when the venv holds torch==VERSION with its CMake files (no import:
# importing torch takes seconds); fails quietly otherwise.
prefix() {
  local d
  for d in "$VENV"/lib/python3*/site-packages; do
    if compgen -G "$d/torch-$VERSION.dist-info" >/dev/null || compgen -G "$d/torch-$VERSION+*.dist-info" >/dev/null; then
      [ -f "$d/torch/share/cmake/Torch/TorchConfig.cmake" ] && { echo "$d/torch"; return 0; }
    fi
  done
  return 1
}

if p=$(prefix); then
  echo "$p"
  exit 0
fi
if [ "$CHECK_ONLY" = 1 ]; then
  echo "setup-torch2: no pip torch $VERSION in $VENV (run scripts/setup-torch2.sh to install it)" >&2
  exit 1
fi

venv_install setup-torch2 "torch==$VERSION" "about 5 GB, once"
p=$(prefix) || { echo "setup-torch2: torch $VERSION did not import from $VENV after installing" >&2; exit 1; }
echo "$p"
