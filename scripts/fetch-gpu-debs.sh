#!/usr/bin/env bash
# Fetches, on a machine with a Debian/Ubuntu package registry, the .deb files that
# scripts/gpu-check.sh needs on a machine without one: the -dev packages of the build
# (CLI11, spdlog + fmt, stb, zlib, GoogleTest), their runtime libraries, and Fashion-MNIST for
# the 60 s training run. They go to .deps/debs/ (ignored by git); copy the clone over.
# Needs only apt-get (no root: `apt-get download` writes to the current folder).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.deps/debs
packages=(libcli11-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libstb-dev libstb0 zlib1g-dev zlib1g
          libgtest-dev googletest dataset-fashion-mnist)
command -v apt-get >/dev/null || { echo "fetch-gpu-debs: apt-get not found: run this on a Debian/Ubuntu machine" >&2; exit 1; }
mkdir -p "$DEST"
cd "$DEST"
missing=()
for p in "${packages[@]}"; do
  compgen -G "${p}_*.deb" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get download "${missing[@]}" || {
    echo "fetch-gpu-debs: apt-get download failed for ${missing[*]} (run 'apt-get update' first?)" >&2
    exit 1
  }
fi
echo "fetch-gpu-debs: $(ls ./*.deb | wc -l) packages in $DEST ($(du -sh . | cut -f1))"
