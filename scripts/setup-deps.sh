#!/usr/bin/env bash
# Installs, only when missing, the Debian packages libddpm needs. Idempotent.
#   --torch2: also the pip torch of the LibTorch 2.x build (scripts/setup-torch2.sh).
set -euo pipefail
if [ "${1:-}" = "--torch2" ]; then
  bash "$(dirname "$0")/setup-deps.sh"
  bash "$(dirname "$0")/setup-torch2.sh" >/dev/null
  exit 0
fi

packages=(cmake g++ make ccache python3-venv pkg-config libtorch-dev libcli11-dev libstb-dev zlib1g-dev libspdlog-dev libgtest-dev
          libgloo-dev libopenblas0-pthread dataset-fashion-mnist
          python3-torch iproute2  # torchrun and ip netns: the data-parallel tests
          doxygen)                # the API reference (cmake --build build --target docs) and its ctest
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-deps: all dependencies present"
  exit 0
fi

echo "setup-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo)
else
  echo "setup-deps: need root to install packages. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
