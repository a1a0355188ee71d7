#pragma once
// The SplitMix64 finaliser (Steele, Lea & Flood 2014): a well-mixed 64-bit hash, used to key
// the loader's permutations and flips and the trainer's per-step stream families.
#include <cstdint>

namespace ddpm {

inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace ddpm
