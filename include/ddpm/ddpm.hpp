#pragma once
// libddpm: denoising diffusion probabilistic models in C++.
#include "ddpm/checkpoint.hpp"
#include "ddpm/config.hpp"
#include "ddpm/data.hpp"
#include "ddpm/diffusion.hpp"
#include "ddpm/ema.hpp"
#include "ddpm/image.hpp"
#include "ddpm/runtime.hpp"
#include "ddpm/sampler.hpp"
#include "ddpm/schedule.hpp"
#include "ddpm/trainer.hpp"
#include "ddpm/unet.hpp"
#include "ddpm/version.hpp"
