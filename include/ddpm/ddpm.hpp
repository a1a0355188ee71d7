#pragma once
// libddpm: denoising diffusion probabilistic models in C++.
#include "ddpm/train/checkpoint.hpp"
#include "ddpm/train/config.hpp"
#include "ddpm/data/dataset.hpp"
#include "ddpm/math/diffusion.hpp"
#include "ddpm/train/ema.hpp"
#include "ddpm/data/image.hpp"
#include "ddpm/runtime.hpp"
#include "ddpm/samplers/sampler.hpp"
#include "ddpm/math/schedule.hpp"
#include "ddpm/train/trainer.hpp"
#include "ddpm/models/unet.hpp"
#include "ddpm/version.hpp"
