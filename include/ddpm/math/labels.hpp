#pragma once
// The class-label convention shared by the network (models/) and the denoiser callbacks of the
// samplers (samplers/steering.hpp), which never see the network: it lives below both.
#include <cstdint>

namespace ddpm {

/// The label of "no class": the unconditional output of a class-conditional network, the ∅ of
/// classifier-free guidance (Ho & Salimans 2022) and of cond-drop in training.
inline constexpr int64_t kNoClass = -1;

}  // namespace ddpm
