#pragma once
// Steering a sampler without retraining (all on top of sample()'s Steering and its one loop):
//   classifier-free guidance  Ho & Salimans 2022: ε̃ = (1 + w) ε(x_t, c) − w ε(x_t)
//   SDEdit                    Meng et al. 2022: start from a noised image (strength)
//   RePaint                   Lugmayr et al. 2022: inpainting, the known region replaced by a
//                             forward-noised copy of the image at every step, with time travel
//   ILVR                      Choi et al. 2021: the low frequencies of x_t replaced by those of the
//                             forward-noised reference (super-resolution with an unconditional model)
#include <ATen/Tensor.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>

#include "ddpm/math/labels.hpp"
#include "ddpm/math/schedule.hpp"
#include "ddpm/samplers/guidance.hpp"
#include "ddpm/samplers/sampler.hpp"

namespace ddpm {

/// (x_t [B,C,H,W], t [B] (int64, or float64 between table points: see Denoiser), labels int64 [B]:
/// class ids or kNoClass = −1) → model output.
using ConditionalDenoiser =
    std::function<at::Tensor(const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& labels)>;

/// The Denoiser of `model` for images of the given labels (int64 [n], one per image of the run).
Denoiser with_labels(ConditionalDenoiser model, at::Tensor labels);

/// Classifier-free guidance with weight w ≥ 0: out = (1 + w) out(x, c) − w out(x, ∅), the
/// conditional and unconditional halves in one forward of 2B images. Right for ε, x₀ and v
/// outputs alike: at fixed x_t each is an affine function of the others, and an affine
/// combination with weights summing to 1 commutes with affine maps. w = 0 gives the
/// conditional output bit for bit (1·c − 0·u = c).
Denoiser classifier_free_guidance(ConditionalDenoiser model, at::Tensor labels, double w);

/// Classifier-free guidance only where the noise level σ_t = √((1 − ᾱ_t)/ᾱ_t) lies in
/// (sigma_low, sigma_high] (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval
/// improves sample and distribution quality in diffusion models": guidance at high noise
/// collapses the variety of the samples, at low noise it does little). Elsewhere the output
/// is the plain conditional one, from one forward of B images. sigma_low = 0 and sigma_high
/// = ∞ give classifier_free_guidance above.
Denoiser classifier_free_guidance(ConditionalDenoiser model, at::Tensor labels, double w,
                                  const NoiseSchedule& schedule, double sigma_low, double sigma_high);

/// with_labels when g.weight == 0, else classifier-free guidance (on its interval when limited).
Denoiser guided(ConditionalDenoiser model, at::Tensor labels, const Guidance& g, const NoiseSchedule& schedule);

/// The labels of images first .. first+count−1 of a run that draws K classes equally:
/// image k asks for class k mod K (int64 [count]). Any n that is a multiple of K is exactly
/// balanced, which is the class distribution of a balanced training set (Fashion-MNIST,
/// CIFAR-10), and image k's class does not depend on the batching.
at::Tensor balanced_labels(int64_t num_classes, int64_t first, int64_t count);

/// The denoiser for images first .. first+count−1 of a sample set, as ddpm-eval and the trainer's
/// evaluations draw them: num_classes == 0 (unconditional model) gives the plain output; otherwise
/// image k asks for class k mod num_classes (balanced_labels) under guidance g (guided).
Denoiser balanced_denoiser(ConditionalDenoiser model, int64_t num_classes, int64_t first, int64_t count,
                           const Guidance& g, const NoiseSchedule& schedule);

/// SDEdit from `init` [n, C, H, W] in [−1, 1] at `strength` in [0, 1] (see Steering).
Steering sdedit(at::Tensor init, double strength);

/// RePaint: `keep` [n or 1, 1 or C, H, W] bool, true where init's pixels are known and kept.
/// After every step to t the known region is √ᾱ_t init + √(1−ᾱ_t) z (a fresh z per step);
/// after the last it is init itself, so the known pixels of the result equal init exactly.
/// jump_length, resample: the paper's j and r (10 and 10).
Steering repaint(const NoiseSchedule& schedule, at::Tensor init, at::Tensor keep, int64_t jump_length = 10,
                 int64_t resample = 10);

/// φ_N: average over N×N blocks, then repeat each block mean N×N times. A projection
/// (φ_N ∘ φ_N = φ_N); H and W must divide by N.
at::Tensor low_pass(const at::Tensor& x, int64_t factor);

/// ILVR super-resolution from `lowres` [n, C, H/N, W/N] in [−1, 1], N = factor: after every
/// step to t, x ← x − φ_N(x) + φ_N(y_t), y_t = √ᾱ_t y + √(1−ᾱ_t) z with y the lowres image
/// repeated N×N. After the last step (ᾱ = 1) the N×N block means of the result are lowres
/// (up to float32 rounding).
Steering ilvr(const NoiseSchedule& schedule, at::Tensor lowres, int64_t factor);

}  // namespace ddpm
