// The samplers' per-image noise: one xoshiro256++ stream per image, seeded from
// (seed, image index) through SplitMix64, normals by Box–Muller. Kept independent of
// LibTorch's generators so that a seed means the same images on every LibTorch version.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <algorithm>

#include <cmath>
#include <stdexcept>

#include "ddpm/samplers/sampler.hpp"

namespace ddpm {
namespace {

// SplitMix64 (Steele, Lea & Flood 2014): a good 64-bit mixer for seeding.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// xoshiro256++ (Blackman & Vigna 2019).
inline uint64_t next_u64(std::array<uint64_t, 4>& s) {
  const uint64_t result = rotl(s[0] + s[3], 23) + s[0];
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

// Uniform in (0, 1] with 53 random bits (never 0, so the logarithm is finite).
inline double uniform_open0(std::array<uint64_t, 4>& s) {
  return static_cast<double>((next_u64(s) >> 11) + 1) * 0x1.0p-53;
}

}  // namespace

NoiseStream::NoiseStream(uint64_t seed, int64_t first_index, int64_t n, std::vector<int64_t> image_shape)
    : image_shape_(std::move(image_shape)) {
  if (n < 0 || first_index < 0) throw std::invalid_argument("NoiseStream: n and first_index must be >= 0");
  states_.resize(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    // Two mixing rounds so that nearby (seed, index) pairs give unrelated streams.
    uint64_t sm = seed;
    uint64_t key = splitmix64(sm) ^ static_cast<uint64_t>(first_index + k);
    uint64_t sm2 = splitmix64(key);
    auto& st = states_[static_cast<size_t>(k)];
    for (auto& w : st) w = splitmix64(sm2);
  }
}

at::Tensor NoiseStream::next() {
  std::vector<int64_t> shape{static_cast<int64_t>(states_.size())};
  int64_t per_image = 1;
  for (auto d : image_shape_) {
    shape.push_back(d);
    per_image *= d;
  }
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
  float* data = out.data_ptr<float>();
  constexpr double two_pi = 6.283185307179586476925;
  // Images are independent streams, so they may be filled in parallel without changing a
  // bit; chunks of ≥ 16k values keep small draws on one thread.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(per_image, 1));
  at::parallel_for(0, static_cast<int64_t>(states_.size()), grain, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      auto& st = states_[static_cast<size_t>(k)];
      float* img = data + k * per_image;
      // Box–Muller pairs; an odd last value discards its partner, so every draw starts fresh.
      for (int64_t j = 0; j < per_image; j += 2) {
        const double r = std::sqrt(-2.0 * std::log(uniform_open0(st)));
        const double theta = two_pi * uniform_open0(st);
        img[j] = static_cast<float>(r * std::cos(theta));
        if (j + 1 < per_image) img[j + 1] = static_cast<float>(r * std::sin(theta));
      }
    }
  });
  return out;
}

at::Tensor NoiseStream::uniform() {
  at::Tensor out = at::empty({static_cast<int64_t>(states_.size())}, at::TensorOptions().dtype(at::kDouble));
  double* data = out.data_ptr<double>();
  for (size_t k = 0; k < states_.size(); ++k) data[k] = static_cast<double>(next_u64(states_[k]) >> 11) * 0x1.0p-53;
  return out;
}

}  // namespace ddpm
