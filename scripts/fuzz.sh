#!/usr/bin/env bash
# Longer fuzzing runs of the readers of untrusted files with libFuzzer:
#   checkpoint  the checkpoint reader (zip directory + CRC-32 + the restricted unpickler in
#               archive mode + the layout checks), seeded with tests/data/fuzz/checkpoint and
#               tests/data/checkpoint
#   unpickler   the .pt/.bin/.ckpt state-dict reader (zip and legacy torch.save formats),
#               seeded with tests/data/fuzz/torch_file and tests/data/ddpm_ref/original/*.pt
#   scripts/fuzz.sh [seconds per target=300] [target...]   (needs clang++ with libFuzzer and
#   LibTorch's headers and libraries; Debian: apt-get install clang libtorch-dev)
# New crashing inputs are written to build-fuzz/<target>/; copy minimized ones into
# tests/data/fuzz/<checkpoint|torch_file> so that ctest (FuzzCorpus.*) replays them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(checkpoint unpickler)
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2; exit 2; }
torch_include=${TORCH_INCLUDE:-/usr/include}
torch_lib=${TORCH_LIB:-/usr/lib/x86_64-linux-gnu}
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -D_GLIBCXX_USE_CXX11_ABI=1 -Iinclude -Isrc
       -isystem "$torch_include/torch/csrc/api/include" -isystem /usr/include/stb)
# /usr/include itself must stay a system directory (-isystem on it breaks libstdc++'s include_next).
[ "$torch_include" = /usr/include ] || flags+=(-isystem "$torch_include")
libs=(-L"$torch_lib" -Wl,-rpath,"$torch_lib" -ltorch -ltorch_cpu -lc10 -lstb)
core=(src/io/unpickler.cpp src/io/zip_reader.cpp src/io/crc32.cpp)
for target in "${targets[@]}"; do
  out=build-fuzz/$target
  mkdir -p "$out/corpus"
  case $target in
    checkpoint)
      clang++ "${flags[@]}" tests/fuzz/fuzz_checkpoint_reader.cpp src/io/torch_archive.cpp "${core[@]}" "${libs[@]}" \
        -o "$out/fuzz"
      cp tests/data/fuzz/checkpoint/* tests/data/checkpoint/* "$out/corpus/" ;;
    unpickler)
      clang++ "${flags[@]}" tests/fuzz/fuzz_unpickler.cpp src/io/torch_file.cpp "${core[@]}" "${libs[@]}" -o "$out/fuzz"
      cp tests/data/fuzz/torch_file/* tests/data/ddpm_ref/original/*.pt "$out/corpus/" ;;
    *) echo "fuzz.sh: unknown target '$target' (checkpoint, unpickler)" >&2; exit 2 ;;
  esac
  # ASan's allocator would report LibTorch's own 1-byte leaks at exit: leaks are not what is sought.
  ASAN_OPTIONS=detect_leaks=0 "$out/fuzz" -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 \
    -artifact_prefix="$out/" "$out/corpus"
done
