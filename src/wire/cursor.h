// Bounds-checked reading and writing of byte buffers (docs/design.md §4.3: parsers read through a
// cursor whose Read…() returns false and does not advance when too few bytes are left).
#ifndef DPM_WIRE_CURSOR_H_
#define DPM_WIRE_CURSOR_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/types/span.h"

namespace dpm::wire {

/// Reads fixed-size values from a byte span. Each Read… returns false, leaving the cursor
/// where it was, when fewer bytes remain than the value needs.
class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> bytes) : bytes_(bytes) {}

  size_t remaining() const { return bytes_.size() - offset_; }
  size_t offset() const { return offset_; }

  bool ReadBytes(void* out, size_t n) {
    if (remaining() < n) return false;
    if (n != 0) std::memcpy(out, bytes_.data() + offset_, n);
    offset_ += n;
    return true;
  }
  /// Host byte order (for local IPC between processes of the same host).
  template <typename T>
  bool ReadHost(T* out) { return ReadBytes(out, sizeof(T)); }
  /// Network (big-endian) byte order.
  bool ReadU8(uint8_t* out) { return ReadBytes(out, 1); }
  bool ReadBe16(uint16_t* out) {
    uint8_t b[2];
    if (!ReadBytes(b, 2)) return false;
    *out = static_cast<uint16_t>((b[0] << 8) | b[1]);
    return true;
  }
  bool ReadBe32(uint32_t* out) {
    uint8_t b[4];
    if (!ReadBytes(b, 4)) return false;
    *out = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
    return true;
  }
  /// The rest of the span, consumed.
  absl::Span<const uint8_t> ReadRest() {
    auto rest = bytes_.subspan(offset_);
    offset_ = bytes_.size();
    return rest;
  }

 private:
  absl::Span<const uint8_t> bytes_;
  size_t offset_ = 0;
};

/// Appends values to a growing byte vector.
class Writer {
 public:
  explicit Writer(std::vector<uint8_t>* out) : out_(out) {}
  void WriteBytes(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    out_->insert(out_->end(), p, p + n);
  }
  template <typename T>
  void WriteHost(T value) { WriteBytes(&value, sizeof(T)); }
  void WriteU8(uint8_t v) { out_->push_back(v); }
  void WriteBe16(uint16_t v) { WriteU8(static_cast<uint8_t>(v >> 8)); WriteU8(static_cast<uint8_t>(v)); }
  void WriteBe32(uint32_t v) { WriteBe16(static_cast<uint16_t>(v >> 16)); WriteBe16(static_cast<uint16_t>(v)); }

 private:
  std::vector<uint8_t>* out_;
};

}  // namespace dpm::wire

#endif  // DPM_WIRE_CURSOR_H_
