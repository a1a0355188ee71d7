#pragma once
// Training data: image folders and MNIST-family IDX files, and a deterministic
// multi-threaded batch loader.
#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ddpm {

/// Where the images come from and how they are shaped. Bound to --data --hflip
/// --workers --prefetch --cache by add_data_options (src/cli/options_data.hpp);
/// channels/height/width are filled by the tool (--channels, --image-size).
struct DataConfig {
  /// A folder (searched recursively for .png .jpg .jpeg .bmp .tga .gif, any case),
  /// or "idx:PATH" for an MNIST-family IDX image file (PATH or PATH.gz; gzip is read
  /// directly). A path naming a regular file is read as IDX too.
  std::string source;
  int64_t channels = 0;  ///< 0 = from the first readable image (IDX: 1); 1, 3 or 4 converts
  int64_t height = 0;    ///< 0 (both) = the first readable image's size (IDX: rows × cols)
  /// Image width; 0 with height = 0: the first readable image's
  int64_t width = 0;
  bool hflip = false;    ///< random horizontal flip, p = 1/2
  static constexpr int64_t kMaxWorkers = 256;  ///< as the key table's bound
  int64_t workers = 2;   ///< loader threads; 0 = build batches in the calling thread
  int64_t prefetch = 4;  ///< batches prepared ahead (bounded queue), >= 1
  bool cache = true;     ///< keep decoded, resized images in memory as uint8
  /// Class labels: "idx:PATH" (or PATH) of an IDX labels file, one per image in order
  /// (e.g. Fashion-MNIST's train-labels-idx1-ubyte.gz); "" = none.
  std::string labels;
  /// Class labels from the first-level sub-folders of the image folder: sorted names → 0, 1, ...
  bool class_folders = false;

  /// Throws std::invalid_argument naming the option (--data, --channels, ...).
  void validate() const;
};

/// A fixed, indexable set of images, all C × H × W. get() is thread-safe.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// The number of images and their shape C × H × W.
  ///@{
  virtual int64_t size() const = 0;
  virtual int64_t channels() const = 0;
  virtual int64_t height() const = 0;
  virtual int64_t width() const = 0;
  ///@}
  /// uint8 [C,H,W], a fresh tensor the caller may modify. Throws std::out_of_range
  /// for a bad index, std::runtime_error naming the file if it cannot be read.
  virtual at::Tensor get(int64_t index) const = 0;
  /// One line for the log, e.g. "image folder 'x': 16 images, 3×32×32".
  virtual std::string describe() const = 0;
  /// Files that were skipped because they could not be decoded (folders only).
  virtual std::vector<std::string> skipped() const { return {}; }

  /// Class labels int64 [size()] in [0, num_classes()), undefined when the data has none.
  const at::Tensor& labels() const { return labels_; }
  /// The number of classes of labels() (0 without labels).
  int64_t num_classes() const { return num_classes_; }
  /// Names of the classes (class folders), empty when only ids are known (IDX labels).
  const std::vector<std::string>& class_names() const { return class_names_; }
  /// Attaches labels (checked: one per image, in [0, num_classes), no class without an image;
  /// num_classes 0 = max + 1). Throws std::invalid_argument naming `option`.
  void set_labels(at::Tensor labels, int64_t num_classes, std::vector<std::string> names, const std::string& option);

 private:
  at::Tensor labels_;
  int64_t num_classes_ = 0;
  std::vector<std::string> class_names_;
};

/// Class ids of image files under `folder` by their first-level sub-folder (sorted names → ids),
/// with the names. Throws std::invalid_argument naming --class-folders for a file outside a
/// class folder, a name containing ',', or a class folder without a readable image.
std::pair<at::Tensor, std::vector<std::string>> class_folder_labels(const std::string& folder,
                                                                    const std::vector<std::string>& files);
/// Reads --labels (idx:PATH or PATH, gzip or not) for `dataset` and attaches them.
void attach_idx_labels(Dataset& dataset, const std::string& source);

/// Opens config.source (see DataConfig). For a folder, every candidate file is
/// decoded once here (on max(1, workers) threads) so that unreadable or truncated
/// files are known up front: each is skipped with a warning naming it, and the
/// count is logged. Throws std::invalid_argument naming the folder/file when it does
/// not exist, holds no readable image, or is not a valid IDX file.
std::shared_ptr<Dataset> open_dataset(const DataConfig& config);

/// Wraps uint8 images [N,C,H,W] already in memory (tests, custom sources).
std::shared_ptr<Dataset> make_tensor_dataset(const at::Tensor& images_nchw_uint8, std::string name = "tensor");

/// Reads an IDX file of unsigned bytes with 3 dimensions [N, rows, cols] (gzip or
/// not) into a uint8 tensor [N, 1, rows, cols]. Throws std::invalid_argument naming
/// the file on a bad magic number, type, dimension count or size.
at::Tensor read_idx_images(const std::string& path);
/// Reads an IDX label file: unsigned bytes, 1 dimension [N] (gzip or not), as int64 [N].
/// Throws std::invalid_argument naming the file like read_idx_images.
at::Tensor read_idx_labels(const std::string& path);

/// Where the loader is: the epoch and the index, within that epoch's shuffled order,
/// of the next sample to be drawn. Saved in checkpoints to resume exactly.
struct LoaderState {
  /// The epoch (each a fresh permutation of the dataset).
  int64_t epoch = 0;
  /// The index within that epoch's order of the next sample.
  int64_t position = 0;
};

/// Which part of each batch this process loads (data parallel: rank r of W takes images
/// [r·B/W, (r+1)·B/W) of every global batch of B). The stream of global batches, and so the
/// loader state, does not depend on the slice.
struct LoaderSlice {
  /// The first image of each batch this process loads.
  int64_t begin = 0;
  int64_t count = 0;  ///< 0: the whole batch
};

/// A loaded (slice of a) batch.
struct Batch {
  at::Tensor images;   ///< float32 [b,C,H,W] in [−1, 1]
  at::Tensor indices;  ///< int64 [b]: each image's index in the dataset (labels are gathered by it)
};

/// Batches of batch_size images as float32 [B,C,H,W] in [−1, 1] (x / 127.5 − 1).
///
/// The stream is a pure function of (dataset, batch_size, seed, hflip), whatever the
/// number of workers: epoch e visits the dataset in a permutation drawn from
/// (seed, e) (Fisher–Yates on mt19937_64, no std:: distributions, so it is the same
/// on every platform); the sample at (e, position) is flipped when hflip is on and a
/// hash of (seed, e, position) says so.
/// If batch_size <= size, batches never straddle epochs: the last size mod batch_size
/// samples of each epoch are dropped (drop_last). If batch_size > size (say 16 images,
/// batch 64), batches wrap across epochs, each epoch reshuffled, nothing dropped.
/// Workers prepare up to `prefetch` batches ahead; the destructor stops and joins
/// them. An error while building a batch is rethrown by next().
class DataLoader {
 public:
  /// Batches of `batch_size` from `dataset`, the stream seeded by `seed`, with `config`'s flips,
  /// workers, prefetch; starting at `start` and loading only `slice` of every batch.
  DataLoader(std::shared_ptr<Dataset> dataset, int64_t batch_size, uint64_t seed, const DataConfig& config,
             LoaderState start = {}, LoaderSlice slice = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// The next batch, float32 [B,C,H,W] in [−1, 1], on the CPU.
  at::Tensor next();
  /// The same, with the dataset indices of its images.
  Batch next_batch();
  /// The state of the batch next() will return next (save it with a checkpoint).
  LoaderState state() const;
  /// Continues from `state` exactly (drops prefetched batches).
  void reset(LoaderState state);

  int64_t batch_size() const;  ///< the global batch (the stream's unit)
  LoaderSlice slice() const;     ///< count filled in
  /// Batches in one epoch under drop_last (0 when batches wrap: batch_size > size).
  int64_t batches_per_epoch() const;
  /// The dataset the batches are drawn from.
  const Dataset& dataset() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The loader's rules, exposed for tests and tools: the order of epoch `epoch`
/// (a permutation of 0..n−1), and whether the sample at (epoch, position) is flipped.
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);
/// Whether the sample at (epoch, position) is flipped (when hflip is on).
bool flip_decision(uint64_t seed, int64_t epoch, int64_t position);

}  // namespace ddpm
