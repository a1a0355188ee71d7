#include "zip_check.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "ddpm/io/crc32.hpp"

namespace ddpm {
namespace {

class File {
 public:
  explicit File(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)) {
    if (fd_ < 0) throw std::runtime_error(std::string("cannot open: ") + std::strerror(errno));
    struct stat st{};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw std::runtime_error("not a regular file");
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~File() { ::close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  uint64_t size() const { return size_; }
  // Reads exactly n bytes at `offset` (bounds checked against the file size).
  void read(uint64_t offset, void* out, size_t n) const {
    if (offset > size_ || n > size_ - offset) throw std::runtime_error("zip directory points past the end of the file");
    auto* p = static_cast<char*>(out);
    while (n > 0) {
      const ssize_t got = ::pread(fd_, p, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) throw std::runtime_error(std::string("read error: ") + (got < 0 ? std::strerror(errno) : "short read"));
      p += got, n -= static_cast<size_t>(got), offset += static_cast<uint64_t>(got);
    }
  }

 private:
  int fd_;
  uint64_t size_ = 0;
};

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t le32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t le64(const uint8_t* p) { return uint64_t(le32(p)) | uint64_t(le32(p + 4)) << 32; }

constexpr uint32_t kEocd = 0x06054b50, kEocd64 = 0x06064b50, kLocator64 = 0x07064b50, kCentral = 0x02014b50,
                   kLocal = 0x04034b50;
constexpr uint64_t kMaxRecords = 1u << 20;  // a checkpoint has hundreds; bounds a hostile directory

struct Directory {
  uint64_t entries = 0, size = 0, offset = 0;
};

Directory find_directory(const File& f) {
  // The end-of-central-directory record: 22 bytes plus a comment of up to 65535 bytes, at the end.
  const uint64_t tail = std::min<uint64_t>(f.size(), 22 + 65535);
  if (tail < 22) throw std::runtime_error("too short for a zip file");
  std::vector<uint8_t> b(static_cast<size_t>(tail));
  f.read(f.size() - tail, b.data(), b.size());
  size_t at = b.size() - 22;
  for (;; --at) {
    if (le32(&b[at]) == kEocd) break;
    if (at == 0) throw std::runtime_error("no zip end-of-directory record (truncated file?)");
  }
  Directory d{le16(&b[at + 10]), le32(&b[at + 12]), le32(&b[at + 16])};
  if (d.entries == 0xFFFF || d.size == 0xFFFFFFFFu || d.offset == 0xFFFFFFFFu) {
    const uint64_t eocd = f.size() - tail + at;
    if (eocd < 20) throw std::runtime_error("zip64 locator missing");
    uint8_t loc[20];
    f.read(eocd - 20, loc, sizeof loc);
    if (le32(loc) != kLocator64) throw std::runtime_error("zip64 locator missing");
    uint8_t e[56];
    f.read(le64(loc + 8), e, sizeof e);
    if (le32(e) != kEocd64) throw std::runtime_error("zip64 end-of-directory record damaged");
    d = Directory{le64(e + 32), le64(e + 40), le64(e + 48)};
  }
  if (d.entries > kMaxRecords) throw std::runtime_error("zip directory claims " + std::to_string(d.entries) + " records");
  if (d.offset > f.size() || d.size > f.size() - d.offset) throw std::runtime_error("zip directory points past the end of the file");
  return d;
}

}  // namespace

std::vector<ZipRecord> read_zip_records(const std::string& path) {
  File f(path);
  const Directory d = find_directory(f);
  std::vector<uint8_t> dir(static_cast<size_t>(d.size));
  f.read(d.offset, dir.data(), dir.size());
  std::vector<ZipRecord> records;
  size_t pos = 0;
  for (uint64_t i = 0; i < d.entries; ++i) {
    if (pos + 46 > dir.size() || le32(&dir[pos]) != kCentral) throw std::runtime_error("zip directory damaged");
    const uint8_t* h = &dir[pos];
    ZipRecord r;
    r.method = le16(h + 10);
    r.crc = le32(h + 16);
    uint64_t csize = le32(h + 20), usize = le32(h + 24), local = le32(h + 42);
    const size_t nlen = le16(h + 28), xlen = le16(h + 30), clen = le16(h + 32);
    if (pos + 46 + nlen + xlen + clen > dir.size()) throw std::runtime_error("zip directory damaged");
    r.name.assign(reinterpret_cast<const char*>(h + 46), nlen);
    // Zip64 extended information: the 8-byte values of the fields that are 0xFFFFFFFF, in order.
    for (size_t x = 46 + nlen; x + 4 <= 46 + nlen + xlen;) {
      const uint16_t id = le16(h + x), len = le16(h + x + 2);
      if (x + 4 + len > 46 + nlen + xlen) throw std::runtime_error("zip directory damaged");
      if (id == 0x0001) {
        size_t v = x + 4;
        auto take = [&](uint64_t& field) {
          if (field != 0xFFFFFFFFu) return;
          if (v + 8 > x + 4 + len) throw std::runtime_error("zip64 field damaged");
          field = le64(h + v);
          v += 8;
        };
        take(usize);
        take(csize);
        take(local);
      }
      x += 4 + len;
    }
    uint8_t lh[30];
    f.read(local, lh, sizeof lh);
    if (le32(lh) != kLocal) throw std::runtime_error("record '" + r.name + "': local header damaged");
    const uint16_t lnlen = le16(lh + 26), lxlen = le16(lh + 28);
    std::string lname(lnlen, '\0');
    f.read(local + 30, lname.data(), lname.size());
    if (lname != r.name) throw std::runtime_error("record '" + r.name + "': local header names '" + lname + "'");
    r.data_offset = local + 30 + lnlen + lxlen;
    r.size = csize;
    if (r.method == 0 && csize != usize) throw std::runtime_error("record '" + r.name + "': sizes disagree");
    if (r.data_offset > f.size() || r.size > f.size() - r.data_offset)
      throw std::runtime_error("record '" + r.name + "' extends past the end of the file");
    records.push_back(std::move(r));
    pos += 46 + nlen + xlen + clen;
  }
  return records;
}

std::string verify_zip_records(const std::string& path) {
  try {
    const std::vector<ZipRecord> records = read_zip_records(path);
    File f(path);
    std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(f.size(), 1 << 20)));
    for (const ZipRecord& r : records) {
      if (r.method != 0) continue;  // compressed: its inflater checks it
      uint32_t crc = 0;
      for (uint64_t done = 0; done < r.size;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), r.size - done));
        f.read(r.data_offset + done, buf.data(), n);
        crc = crc32_update(crc, buf.data(), n);
        done += n;
      }
      if (crc != r.crc) return "record '" + r.name + "' fails its CRC-32 check (the file is corrupt)";
    }
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace ddpm
