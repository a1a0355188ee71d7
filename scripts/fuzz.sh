#!/usr/bin/env bash
# Longer fuzzing runs with libFuzzer (+ AddressSanitizer, UndefinedBehaviorSanitizer) of the
# readers of untrusted files, each seeded with its tests/data/fuzz/<dir> corpus:
#   checkpoint  the checkpoint reader (zip directory + CRC-32 + the restricted unpickler in
#               archive mode + the layout checks)                                 -> checkpoint/
#   unpickler   the .pt/.bin/.ckpt state-dict reader (zip and legacy torch.save)   -> torch_file/
#   toml        the TOML reader (configs, a checkpoint's config)                   -> toml/
#   json        the strict JSON reader (safetensors headers, diffusers configs)   -> json/
#   image       the image loader (stb_image + libddpm's checks) and the resize    -> image/
#
#   scripts/fuzz.sh [seconds-per-target=300] [target...]     (default: every target)
#
# Needs clang++ with libFuzzer (Debian: clang; installed here when missing and root) and LibTorch's
# headers and libraries (Debian's libtorch-dev; TORCH_INCLUDE / TORCH_LIB for another). Memory
# over 2 GB (-rss_limit_mb) and a single input over 10 s count as findings, not just crashes.
# New crashing inputs are written to build-fuzz/<target>/; copy minimized ones into
# tests/data/fuzz/<dir> so that ctest (FuzzCorpus.*) replays them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(checkpoint unpickler toml json image)

if ! command -v clang++ >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang >/dev/null
  else
    echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2
    exit 2
  fi
fi

out=build-fuzz
torch_include=${TORCH_INCLUDE:-/usr/include}
torch_lib=${TORCH_LIB:-/usr/lib/x86_64-linux-gnu}
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -D_GLIBCXX_USE_CXX11_ABI=1 -Iinclude -Isrc
       -isystem "$torch_include/torch/csrc/api/include")
# /usr/include itself must stay a system directory (-isystem on it breaks libstdc++'s include_next).
[ "$torch_include" = /usr/include ] || flags+=(-isystem "$torch_include")
torch_libs=(-L"$torch_lib" -Wl,-rpath,"$torch_lib" -ltorch -ltorch_cpu -lc10)
core=(src/io/unpickler.cpp src/io/zip.cpp src/io/atomic_file.cpp src/io/read_file.cpp src/io/crc32.cpp src/io/inflate.cpp -lz)
build() {  # build <target> <sources and link flags...>
  local name=$1
  shift
  mkdir -p "$out/$name/corpus"
  clang++ "${flags[@]}" "$@" -o "$out/fuzz_$name"
}

for t in "${targets[@]}"; do
  case $t in
    checkpoint)
      build checkpoint tests/fuzz/fuzz_checkpoint_reader.cpp src/io/torch_archive.cpp "${core[@]}" "${torch_libs[@]}"
      seed=checkpoint
      cp tests/data/checkpoint/* "$out/$t/corpus/"
      ;;
    unpickler)
      build unpickler tests/fuzz/fuzz_unpickler.cpp src/io/torch_file.cpp "${core[@]}" "${torch_libs[@]}"
      seed=torch_file
      cp tests/data/ddpm_ref/original/*.pt "$out/$t/corpus/"
      ;;
    toml)
      build toml tests/fuzz/fuzz_toml.cpp src/io/toml.cpp
      seed=toml
      cp configs/*.toml "$out/$t/corpus/" 2>/dev/null || true
      ;;
    json)
      build json tests/fuzz/fuzz_json.cpp src/io/json.cpp
      seed=json
      cp tests/data/schedules.json "$out/$t/corpus/"
      ;;
    image)
      # stb is compiled in (instrumented, so its decoders' coverage guides the fuzzer); image.cpp
      # uses ATen for its tensor helpers: LibTorch's headers and libraries, not instrumented.
      build image tests/fuzz/fuzz_image.cpp tests/fuzz/stb_impl.cpp src/data/image.cpp src/io/read_file.cpp src/io/atomic_file.cpp -I/usr/include/stb \
        -ltorch_cpu -lc10
      seed=image
      ;;
    *) echo "fuzz.sh: unknown target '$t' (checkpoint, unpickler, toml, json, image)" >&2; exit 2 ;;
  esac
  cp "tests/data/fuzz/$seed"/* "$out/$t/corpus/"
  echo "fuzz.sh: $t for ${seconds}s (log: $out/$t/log.txt)" >&2
  # ASan's allocator would report LibTorch's own 1-byte leaks at exit: leaks are not what is sought.
  if ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} \
    "$out/fuzz_$t" -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$out/$t/" "$out/$t/corpus" >"$out/$t/log.txt" 2>&1; then
    echo "fuzz.sh: $t: no finding ($(grep -E '^#[0-9]+.*(DONE|pulse)' "$out/$t/log.txt" | tail -1))" >&2
  else
    echo "fuzz.sh: $t: FINDING, see $out/$t/log.txt and $out/$t/crash-* / oom-* / timeout-*" >&2
    tail -30 "$out/$t/log.txt" >&2
    status=1
  fi
done
exit "${status:-0}"
