#pragma once
// Every bound libddpm puts on untrusted input, in one place. A file from anywhere (image,
// checkpoint, weights, statistics, config) is refused with a one-line error naming it when it
// goes past one of these, before the memory or the recursion is spent. Each bound is far above
// what a legitimate file of its kind needs (the comment says how far).
#include <cstddef>
#include <cstdint>

namespace ddpm::limits {

// ---------------------------------------------------------------- nesting (stack depth)
/// TOML: tables nested deeper than this ([a.b.c] headers, dotted keys a.b.c = 1, arrays and
/// inline tables, counted together) are refused. libddpm's configs nest 1 deep.
inline constexpr int kMaxTomlDepth = 64;
/// JSON (safetensors headers, diffusers config.json): arrays/objects nested deeper are refused.
/// Real headers nest 3 deep.
inline constexpr size_t kMaxJsonDepth = 64;
/// Pickle (.pt state dicts, diffusers .bin, checkpoints' data.pkl): tuples, lists and dicts
/// nested deeper are refused. A state dict nests about 5 deep.
inline constexpr int kMaxPickleDepth = 256;

// ---------------------------------------------------------------- text sizes and counts
/// TOML text (a config file, or the config stored in a checkpoint). A config is a few KiB.
inline constexpr size_t kMaxTomlBytes = size_t{1} << 20;
/// JSON text (a safetensors header may be this large; diffusers configs are a few KiB).
inline constexpr size_t kMaxJsonBytes = size_t{100} << 20;
/// JSON values (every number, string, array and object counts one) in one document. Each
/// costs 88 bytes parsed (up to twice that while a vector grows), so this bounds a document's
/// memory at ~150 MB plus its strings, whatever its text: `[1,1,1,…]` is 2 bytes of text per
/// value. A safetensors header holds ~10 values per tensor: 1M values is 100k tensors.
inline constexpr size_t kMaxJsonValues = size_t{1} << 20;

// ---------------------------------------------------------------- decoded sizes
/// Images: more pixels than this (from the header, before decoding) are refused: 256 MB as
/// RGBA. Resizing never builds an intermediate larger than the source or the target.
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 26;
/// ddpm-schedule --strip: frames × height × width of the strip (K float copies of the image
/// and a few temporaries, ~60 bytes a pixel): 8 frames of 724², or use --size.
inline constexpr int64_t kMaxStripPixels = int64_t{1} << 22;
/// IDX (MNIST-family) files, after gunzip: 4 GiB (Fashion-MNIST's training images are 47 MB).
/// A gzip stream is inflated into a buffer of the size its IDX header declares (checked against
/// this and against the gzip trailer first), and inflation stops there.
inline constexpr uint64_t kMaxIdxBytes = uint64_t{1} << 32;
/// One deflated zip member (.npz statistics): its declared size is checked against this and
/// against deflate's largest ratio (1032:1) before inflating, and inflation stops at it. 2 GiB
/// holds the largest statistics accepted (sigma of 16383² float64).
inline constexpr uint64_t kMaxZipMemberBytes = 0x7FFFFFFF;

// ---------------------------------------------------------------- whole files read into memory
/// Model files read whole (checkpoints, classifiers, .pt/.bin/.ckpt state dicts, safetensors):
/// 64 GiB, far above the largest diffusion U-Net's weights (a few GB).
inline constexpr uint64_t kMaxModelFileBytes = uint64_t{1} << 36;
/// Image files read whole: 16 bytes a pixel of the largest image accepted (kMaxImagePixels),
/// more than any format spends on one (16-bit RGBA is 8).
inline constexpr uint64_t kMaxImageFileBytes = uint64_t{16} * kMaxImagePixels;
/// FID statistics (.npz): mu and sigma of the largest members accepted (kMaxZipMemberBytes),
/// with room for the small ones.
inline constexpr uint64_t kMaxStatsFileBytes = 4 * kMaxZipMemberBytes;

}  // namespace ddpm::limits
