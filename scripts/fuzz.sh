#!/usr/bin/env bash
# A longer fuzzing run of the checkpoint integrity check (zip directory parser + CRC-32) with
# libFuzzer, seeded with tests/data/fuzz/checkpoint and a real checkpoint.
#   scripts/fuzz.sh [seconds=300]      (needs clang++ with libFuzzer; Debian: apt-get install clang)
# New crashing inputs are written to build-fuzz/; copy minimized ones into tests/data/fuzz/checkpoint
# so that ctest (FuzzCorpus.*) replays them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2; exit 2; }
out=build-fuzz
mkdir -p "$out/corpus"
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude \
  tests/fuzz/fuzz_zip_records.cpp src/train/zip_check.cpp src/io/crc32.cpp -o "$out/fuzz_zip_records"
cp tests/data/fuzz/checkpoint/* "$out/corpus/"
# A real checkpoint as a seed, when a build has one lying around.
find build -name 'ckpt-*.pt' -size -2M 2>/dev/null | head -1 | xargs -r -I{} cp {} "$out/corpus/real.pt"
"$out/fuzz_zip_records" -max_total_time="$seconds" -max_len=65536 -artifact_prefix="$out/" "$out/corpus"
