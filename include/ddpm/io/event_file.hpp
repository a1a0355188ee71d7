#pragma once
// TensorBoard event files, written natively: the TFRecord format of TensorFlow's summary
// writers. A file is a sequence of records
//   uint64 length (little-endian) · uint32 masked CRC-32C of those 8 bytes · data · uint32 masked CRC-32C of data
// and each record's data is one `Event` protocol buffer (tensorboard/compat/proto/event.proto),
// hand-encoded here: the few fields TensorBoard reads for scalars, images, text and restarts.
// Every record is written whole and flushed, so a killed writer leaves a file that reads up to
// its last record.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace ddpm::io {

/// CRC-32C as TFRecord stores it: ((c >> 15) | (c << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t n);
/// One TFRecord: the framing above around `data`.
std::string tfrecord(std::string_view data);

/// A scalar of a Summary (`simple_value`).
struct ScalarValue {
  std::string tag;  ///< e.g. "train/loss"
  double value = 0;  ///< written as a float32 simple_value
};

/// An image of a Summary: PNG file bytes and their size.
struct PngValue {
  std::string tag;            ///< e.g. "samples"
  std::string png;            ///< the PNG file's bytes
  int64_t height = 0;         ///< pixels
  int64_t width = 0;          ///< pixels
  int64_t channels = 0;       ///< 1 gray, 3 RGB, 4 RGBA
};

/// Writes one TensorBoard events file: records flushed whole, so a killed writer leaves a file
/// readers load up to its last record.
class EventFileWriter {
 public:
  /// Creates `dir` if needed and a new file in it, events.out.tfevents.T.HOST.PID,
  /// whose Unix time T is raised past that of every events file already there, so that the
  /// new file sorts (and readers read it) after them. Writes the file_version record.
  /// Throws std::runtime_error naming the file.
  explicit EventFileWriter(const std::string& dir);
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  /// One event holding the scalars, at `step`.
  void scalars(int64_t step, const std::vector<ScalarValue>& values);
  /// One event holding the image, at `step`.
  void image(int64_t step, const PngValue& image);
  /// Text for TensorBoard's text plugin (rendered as Markdown).
  void text(int64_t step, const std::string& tag, const std::string& markdown);
  /// SessionLog START at `step`: readers drop what earlier files logged at steps >= step (what a
  /// run resumed from an older checkpoint logged after it).
  void session_start(int64_t step);

  /// The file's path.
  const std::string& path() const { return path_; }

 private:
  // Writes an Event of these fields (after wall_time and step), as one record, flushed.
  void write_event(int64_t step, const std::string& fields);

  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace ddpm::io
