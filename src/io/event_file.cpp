#include "ddpm/io/event_file.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "io/crc32.hpp"
#include "io/little_endian.hpp"

namespace fs = std::filesystem;

namespace ddpm::io {
namespace {

// Protocol buffer wire format (developers.google.com/protocol-buffers/docs/encoding): a field
// is its key (number << 3 | wire type) then its value.
enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7F) | 0x80);
  out += static_cast<char>(v);
}
void put_key(std::string& out, uint32_t field, Wire wire) { put_varint(out, uint64_t{field} << 3 | wire); }
void put_varint_field(std::string& out, uint32_t field, uint64_t v) {
  put_key(out, field, kVarint);
  put_varint(out, v);
}
void put_bytes_field(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kBytes);
  put_varint(out, bytes.size());
  out.append(bytes.data(), bytes.size());
}
void put_double_field(std::string& out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  put_key(out, field, kFixed64);
  put_le(out, bits, 8);
}
void put_float_field(std::string& out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  put_key(out, field, kFixed32);
  put_le(out, bits, 4);
}

// Field numbers, from tensorboard/compat/proto/{event,summary,tensor,tensor_shape}.proto.
namespace event {
constexpr uint32_t kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5, kSessionLog = 7;
}
constexpr uint32_t kSummaryValue = 1;  // Summary.value (repeated)
namespace value {
constexpr uint32_t kTag = 1, kSimpleValue = 2, kImage = 4, kTensor = 8, kMetadata = 9;
}
namespace image {
constexpr uint32_t kHeight = 1, kWidth = 2, kColorspace = 3, kEncoded = 4;
}
constexpr uint32_t kMetadataPluginData = 1, kMetadataDataClass = 4, kPluginName = 1;
constexpr uint64_t kDataClassTensor = 2;
namespace tensor {
constexpr uint32_t kDtype = 1, kShape = 2, kStringVal = 8;
constexpr uint64_t kDtString = 7;  // types.proto DT_STRING
}  // namespace tensor
constexpr uint32_t kSessionLogStatus = 1;
constexpr uint64_t kSessionStart = 1;

// "events.out.tfevents.<T>...": T, or -1.
int64_t events_file_time(const std::string& name) {
  static const std::string prefix = "events.out.tfevents.";
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  int64_t t = -1;
  const char* b = name.data() + prefix.size();
  const char* e = name.data() + name.size();
  auto [p, ec] = std::from_chars(b, e, t);
  return ec == std::errc() && p != b ? t : -1;
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string h(buf);
  for (char& c : h)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) c = '_';
  return h;
}

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c_update(0, data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(out.data(), 8), 4);
  out.append(data.data(), data.size());
  put_le(out, masked_crc32c(data.data(), data.size()), 4);
  return out;
}

EventFileWriter::EventFileWriter(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("'" + dir + "': cannot create the directory for TensorBoard events (" + ec.message() + ")");
  int64_t time = static_cast<int64_t>(wall_time());
  for (const auto& entry : fs::directory_iterator(dir, ec))
    time = std::max(time, events_file_time(entry.path().filename().string()) + 1);
  path_ = (fs::path(dir) / ("events.out.tfevents." + std::to_string(time) + "." + hostname() + "." +
                            std::to_string(::getpid())))
              .string();
  file_ = std::fopen(path_.c_str(), "wbx");  // x: never append to another writer's file
  if (!file_) throw std::runtime_error("'" + path_ + "': cannot create (" + std::strerror(errno) + ")");
  std::string fields;
  put_bytes_field(fields, event::kFileVersion, "brain.Event:2");
  write_event(0, fields);
}

EventFileWriter::~EventFileWriter() {
  if (file_) std::fclose(file_);
}

void EventFileWriter::write_event(int64_t step, const std::string& fields) {
  std::string e;
  put_double_field(e, event::kWallTime, wall_time());
  if (step != 0) put_varint_field(e, event::kStep, static_cast<uint64_t>(step));
  e += fields;
  const std::string record = tfrecord(e);
  // One fwrite and a flush per record: a killed writer leaves whole records (and at worst a
  // torn last one, which readers stop before).
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() || std::fflush(file_) != 0)
    throw std::runtime_error("'" + path_ + "': cannot be written (" + std::strerror(errno) + ")");
}

void EventFileWriter::scalars(int64_t step, const std::vector<ScalarValue>& values) {
  std::string summary;
  for (const ScalarValue& v : values) {
    std::string value;
    put_bytes_field(value, value::kTag, v.tag);
    put_float_field(value, value::kSimpleValue, static_cast<float>(v.value));
    put_bytes_field(summary, kSummaryValue, value);
  }
  std::string fields;
  put_bytes_field(fields, event::kSummary, summary);
  write_event(step, fields);
}

void EventFileWriter::image(int64_t step, const PngValue& png) {
  std::string img;
  put_varint_field(img, image::kHeight, static_cast<uint64_t>(png.height));
  put_varint_field(img, image::kWidth, static_cast<uint64_t>(png.width));
  put_varint_field(img, image::kColorspace, static_cast<uint64_t>(png.channels));
  put_bytes_field(img, image::kEncoded, png.png);
  std::string value;
  put_bytes_field(value, value::kTag, png.tag);
  put_bytes_field(value, value::kImage, img);
  std::string summary, fields;
  put_bytes_field(summary, kSummaryValue, value);
  put_bytes_field(fields, event::kSummary, summary);
  write_event(step, fields);
}

void EventFileWriter::text(int64_t step, const std::string& tag, const std::string& markdown) {
  // The text plugin's summary: a scalar DT_STRING tensor with metadata naming the plugin.
  std::string plugin, metadata, shape, tensor, value, summary, fields;
  put_bytes_field(plugin, kPluginName, "text");
  put_bytes_field(metadata, kMetadataPluginData, plugin);
  put_varint_field(metadata, kMetadataDataClass, kDataClassTensor);
  put_varint_field(tensor, tensor::kDtype, tensor::kDtString);
  put_bytes_field(tensor, tensor::kShape, shape);  // no dims: a scalar
  put_bytes_field(tensor, tensor::kStringVal, markdown);
  put_bytes_field(value, value::kTag, tag);
  put_bytes_field(value, value::kMetadata, metadata);
  put_bytes_field(value, value::kTensor, tensor);
  put_bytes_field(summary, kSummaryValue, value);
  put_bytes_field(fields, event::kSummary, summary);
  write_event(step, fields);
}

void EventFileWriter::session_start(int64_t step) {
  std::string log, fields;
  put_varint_field(log, kSessionLogStatus, kSessionStart);
  put_bytes_field(fields, event::kSessionLog, log);
  write_event(step, fields);
}

}  // namespace ddpm::io
