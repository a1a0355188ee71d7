#pragma once
// The image sets ddpm-eval compares: a folder, an IDX file, a PNG grid cut into its cells, or
// images sampled on the fly from a checkpoint. All hand out uint8 [N, C, H, W] batches.
#include <ATen/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ddpm/eval/features.hpp"
#include "ddpm/samplers/sampler.hpp"
#include "ddpm/samplers/steering.hpp"
#include "ddpm/pipeline/checkpoint.hpp"

namespace ddpm::eval {

/// A set of images to measure (a folder, an IDX file, a grid PNG, or samples drawn from a
/// checkpoint), read in batches.
class ImageSet {
 public:
  virtual ~ImageSet() = default;
  /// The number of images and their shape C × H × W.
  ///@{
  virtual int64_t size() const = 0;
  virtual int64_t channels() const = 0;
  virtual int64_t height() const = 0;
  virtual int64_t width() const = 0;
  ///@}
  /// uint8 [count, C, H, W]: images start .. start + count − 1.
  virtual at::Tensor batch(int64_t start, int64_t count) = 0;
  /// One line, e.g. "IDX 't10k-images-idx3-ubyte.gz': 10000 images, 1×28×28".
  virtual std::string describe() const = 0;
};

/// How a PNG grid is laid out: torchvision's make_grid (what ddpm-sample and the trainer's
/// grids write): `cols` images per row (nrow), `padding` pixels between and around them.
struct GridLayout {
  /// Images per row (nrow).
  int64_t cols = 8;
  int64_t rows = 0;     ///< 0 = from the height, assuming square cells
  /// Pixels between and around the images.
  int64_t padding = 2;
  int64_t count = 0;    ///< 0 = every cell (rows · cols); fewer when the last row is partial
};

/// `source`: "grid:PNG" (a grid, cut by `grid`), "idx:PATH", or a folder (data/dataset.hpp's
/// rules). channels: 0 keeps the images' own, 1/3/4 converts. limit > 0 keeps the first
/// `limit` images. Throws std::invalid_argument (one line naming the source) for a missing or
/// empty set or a grid whose size does not fit its layout.
std::unique_ptr<ImageSet> open_image_set(const std::string& source, const GridLayout& grid = {},
                                         int64_t channels = 0, int64_t limit = 0);

/// Wraps uint8 images [N, C, H, W] in memory.
std::unique_ptr<ImageSet> tensor_image_set(const at::Tensor& images, std::string name = "tensor");

/// `n` images drawn from a trained model, batch by batch as they are asked for (image k uses
/// noise index k, so the set is the same whatever the batching). `sampler` is used as given
/// (its prediction is set from the checkpoint). on_step(step, total) after each sampler step.
/// A class-conditional model draws every class equally (image k asks for class k mod K,
/// samplers/steering.hpp's balanced_labels), with classifier-free guidance when
/// guidance.weight > 0 (0: plain conditional sampling, one forward per step). An
/// unconditional model refuses guidance > 0 (std::invalid_argument naming --guidance).
std::unique_ptr<ImageSet> sampled_image_set(LoadedModel model, SamplerConfig sampler, int64_t n,
                                            std::function<void(int64_t, int64_t)> on_step = nullptr,
                                            Guidance guidance = {});

/// [−1, 1] floats → uint8 with the rounding of make_grid (x·127.5 + 127.5 + 0.5, clamped, floored).
at::Tensor to_uint8_images(const at::Tensor& images);

/// Features of every image of `set`, batch_size at a time: float32 [N, D].
/// progress(done, total) after each batch.
at::Tensor compute_features(FeatureNetwork& network, ImageSet& set, int64_t batch_size = 256,
                            const std::function<void(int64_t, int64_t)>& progress = nullptr);

}  // namespace ddpm::eval
